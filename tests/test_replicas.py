"""The runner's replica reads, against a fake system: it waits (bounded) for the
replicas to agree on a position, and records every read, failures included."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checker.convergence import REPLICA_STATE, REPLICAS, convergence
from harness.history import History, Op, OpType
from harness.replicas import record_replica_states, wait_caught_up
from harness.system import Address, HasReplicaState

NODES = {n: {"client": Address("127.0.0.1", 1 + i)} for i, n in enumerate(("n1", "n2", "n3"))}


class Lagging:
    """n3 applies one position per read until it reaches the others (or never)."""

    def __init__(self, *, n3_start: int, top: int = 10, down: str | None = None) -> None:
        self.n3 = n3_start
        self.top = top
        self.down = down
        self.reads = 0

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> Mapping[str, Any]:
        self.reads += 1
        if node == self.down:
            raise ConnectionRefusedError("connection refused")
        if node == "n3":
            at, self.n3 = self.n3, min(self.top, self.n3 + 1)
            return {"applied": at, "digest": f"d{at}"}
        return {"applied": self.top, "digest": f"d{self.top}"}


def recorded(system: Any, **kw: Any) -> History:
    ops: list[Op] = []

    def record(t: OpType, process: str, f: str, value: Any, error: Any) -> Op:
        op = Op(len(ops), len(ops), t, process, f, value, error)
        ops.append(op)
        return op

    record_replica_states(system, record, NODES, timeout_s=1.0, poll_s=0.01, **kw)
    return History(ops)


def test_the_fake_has_the_ability_and_a_plain_object_does_not() -> None:
    assert isinstance(Lagging(n3_start=0), HasReplicaState)
    assert len(recorded(object())) == 0  # no ability: nothing read, nothing recorded


def test_waits_until_every_node_is_at_one_position_then_records_each() -> None:
    fake = Lagging(n3_start=7)
    wait = wait_caught_up(fake, NODES, timeout_s=1.0, wait_s=5.0, poll_s=0.01)
    assert wait["caught_up"] is True and wait["applied"] == {"n1": 10, "n2": 10, "n3": 10}
    h = recorded(Lagging(n3_start=7), wait_s=5.0)
    assert [(op.process, op.f, op.type) for op in h] == \
        [(REPLICAS, REPLICA_STATE, t) for _ in range(3) for t in (OpType.INVOKE, OpType.OK)]
    assert h[1].value["node"] == "n1" and h[0].value["wait"]["caught_up"] is True
    assert convergence(h).valid is True


def test_a_node_that_never_catches_up_is_recorded_as_it_is_and_judged_unknown() -> None:
    h = recorded(Lagging(n3_start=0, top=10_000), wait_s=0.1)
    assert h[0].value["wait"]["caught_up"] is False
    r = convergence(h)
    assert r.valid == "unknown" and r.details["nodes"]["n3"]["status"] == "behind"


def test_an_unreadable_node_is_a_fail_with_the_reason() -> None:
    h = recorded(Lagging(n3_start=10, down="n2"), wait_s=0.1)
    (failed,) = [op for op in h if op.type is OpType.FAIL]
    assert failed.value == {"node": "n2"}
    assert failed.error == "ConnectionRefusedError: connection refused"
    assert convergence(h).valid == "unknown"
