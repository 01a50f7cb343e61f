"""The runner's replica reads, against a fake system: it waits (bounded) for the
replicas to agree on a position, and records every read, failures included."""

from __future__ import annotations

import sys
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


class Versioned:
    """A multi-version store: n3 is stuck at ``n3_at``; ``bad`` holds another value from
    position ``bad_from`` on. Any node shows its state at an earlier position."""

    def __init__(self, *, n3_at: int, top: int = 10, bad: str | None = None,
                 bad_from: int = 0) -> None:
        self.n3_at, self.top, self.bad, self.bad_from = n3_at, top, bad, bad_from
        self.asked_at: list[tuple[str, int]] = []

    def _state(self, node: str, at: int) -> dict[str, Any]:
        value = "x" if node == self.bad and at >= self.bad_from else "ok"
        return {"applied": at, "digest": f"{value}@{at}", "state": {"k": value}}

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> Mapping[str, Any]:
        return self._state(node, self.n3_at if node == "n3" else self.top)

    def replica_state_at(self, node: str, addresses: Mapping[str, Address], at: int, *,
                         timeout_s: float) -> Mapping[str, Any]:
        now = self.n3_at if node == "n3" else self.top
        assert at <= now, "asked past the node's own position"
        self.asked_at.append((node, at))
        return {**self._state(node, at), "now": now}


def test_nodes_that_never_agree_are_compared_at_the_lowest_position_they_reached() -> None:
    """A node left behind no longer leaves convergence unknown for want of a comparison:
    every node is read at the lowest common position; the stuck node is still named
    lagging (a progress finding), and a divergence below it is invalid."""
    fake = Versioned(n3_at=6)
    h = recorded(fake, wait_s=0.1)
    assert sorted(fake.asked_at) == [("n1", 6), ("n2", 6), ("n3", 6)]
    assert all(op.value["at"] == 6 for op in h if op.type is OpType.INVOKE)
    r = convergence(h)
    assert r.valid == "unknown" and r.details["lagging"] == ["n3"]
    assert r.details["progress"] == ["lagging-replica"]
    assert {d["status"] for d in r.details["nodes"].values()} == {"same"}
    # n2 diverged at position 4, below where n3 got: found although n3 is behind
    r = convergence(recorded(Versioned(n3_at=6, bad="n2", bad_from=4), wait_s=0.1))
    assert r.valid is False and r.details["anomalies"] == ["divergent-replicas"]
    assert r.details["nodes"]["n2"]["status"] == "differs"
    # a divergence past the common position cannot be seen there: not invalid
    r = convergence(recorded(Versioned(n3_at=6, bad="n2", bad_from=8), wait_s=0.1))
    assert r.valid == "unknown"


class Stalled:
    """n3 stays one position behind in the quiet cluster; the final phase's writes would
    carry it along (``level()``), as a catch-up reply missing its last entry does."""

    def __init__(self) -> None:
        self.positions = {"n1": 10, "n2": 10, "n3": 9}

    def level(self) -> None:
        self.positions = {"n1": 12, "n2": 12, "n3": 12}

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> Mapping[str, Any]:
        at = self.positions[node]
        return {"applied": at, "digest": f"d{at}"}


class Chasing:
    """The others keep moving (a primary's periodic pings) and n3 follows one behind."""

    def __init__(self) -> None:
        self.top = 10

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> Mapping[str, Any]:
        if node == "n1":
            self.top += 1
        at = self.top - 1 if node == "n3" else self.top
        return {"applied": at, "digest": f"d{at}"}


def quiet_then_final(system: Any, monkeypatch: Any) -> History:
    from harness.replicas import record_quiet_catch_up

    # the module, not the function the package exports under its name
    monkeypatch.setattr(sys.modules["harness.checker.convergence"], "STALL_S", 0.1)
    ops: list[Op] = []

    def record(t: OpType, process: str, f: str, value: Any, error: Any) -> Op:
        op = Op(len(ops), len(ops), t, process, f, value, error)
        ops.append(op)
        return op

    record_quiet_catch_up(system, record, NODES, timeout_s=1.0, wait_s=0.3, poll_s=0.01)
    if isinstance(system, Stalled):
        system.level()
    record_replica_states(system, record, NODES, timeout_s=1.0, poll_s=0.01, wait_s=1.0)
    return History(ops)


def test_a_replica_that_catches_up_only_with_new_writes_is_lagging(monkeypatch: Any) -> None:
    h = quiet_then_final(Stalled(), monkeypatch)
    (quiet,) = [op for op in h if op.f == "catch-up"]
    assert quiet.value["caught_up"] is False and quiet.value["behind_s"]["n3"] >= 0.1
    assert quiet.value["behind_s"]["n1"] == 0.0
    r = convergence(h)
    # the final reads agree (the traffic carried n3 along), but the quiet wait saw it stall
    assert r.details["nodes"]["n3"]["applied"] == 12
    assert r.valid == "unknown" and list(r.details["progress"]) == ["lagging-replica"]
    assert set(r.details["quiet_lagging"]) == {"n3"}
    assert "needed new writes" in r.details["reason"]


def test_a_replica_following_a_moving_top_is_not_lagging(monkeypatch: Any) -> None:
    h = quiet_then_final(Chasing(), monkeypatch)
    (quiet,) = [op for op in h if op.f == "catch-up"]
    assert quiet.value["caught_up"] is False and quiet.value["behind_s"]["n3"] < 0.1
    assert "quiet_lagging" not in convergence(h).details


def test_a_quiet_cluster_that_agrees_records_a_short_wait(monkeypatch: Any) -> None:
    h = quiet_then_final(Lagging(n3_start=8), monkeypatch)
    (quiet,) = [op for op in h if op.f == "catch-up"]
    assert quiet.value["caught_up"] is True
    assert convergence(h).valid is True
