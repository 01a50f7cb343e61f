"""The introspection probes and checker: a stated ability that never answers on
the healthy cluster makes the verdict unknown (never invalid, never valid)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import summarize, with_recorded_checks
from harness.checker.introspection import introspection
from harness.checker.result import UNKNOWN
from harness.history import History, Op, OpType
from harness.probes import INTROSPECTION, PROBES, probe_introspection
from harness.system import Address
from harness.testing import FakeClock

NODES = {n: {"client": Address("127.0.0.1", 10_000 + i)} for i, n in enumerate(("n1", "n2"))}
CLIENTS = {n: a["client"] for n, a in NODES.items()}


class Recorded:
    """The recorder's ``_record``, keeping ops in a list."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def __call__(self, type_: OpType, process: str, f: str, value: Any, error: Any) -> Op:
        op = Op(index=len(self.ops), time=len(self.ops), type=type_, process=process, f=f,
                value=value, error=error)
        self.ops.append(op)
        return op

    def history(self) -> History:
        return History(self.ops)


class Adapter:
    """Leader lookup, per-node state and per-node leader views, each broken on demand."""

    def __init__(self, *, leader_after: int = 1, unreadable: tuple[str, ...] = (),
                 raises: bool = False) -> None:
        self.calls = 0
        self.leader_after = leader_after
        self.unreadable = unreadable
        self.raises = raises

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float
               ) -> str | None:
        self.calls += 1
        if self.raises:
            raise OSError("connection refused")
        return "n1" if self.calls >= self.leader_after else None

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> dict[str, Any]:
        if node in self.unreadable:
            raise RuntimeError(f"{node}: /replica answered HTTP 404")
        return {"applied": 3}

    def leadership(self, node: str, addresses: Mapping[str, Address], *,
                   timeout_s: float) -> tuple[str | None, int | None]:
        return "n1", 4


def _run(adapter: Any, wait_s: float = 3.0) -> tuple[dict[str, Any], History]:
    rec, clock = Recorded(), FakeClock()
    seen = probe_introspection(adapter, rec, NODES, CLIENTS, wait_s=wait_s, clock=clock,
                     sleep=clock.sleep)
    return seen, rec.history()


def test_a_healthy_adapter_passes_and_a_settling_leader_is_waited_for() -> None:
    seen, h = _run(Adapter(leader_after=3))
    assert set(seen) == {"leader", "replica-state n1", "replica-state n2", "leadership n1",
                         "leadership n2"}
    assert all(e["ok"] for e in seen.values()) and seen["leader"]["attempts"] == 3
    r = introspection(h)
    assert r.valid is True and r.details["probes"] == 5
    assert "introspection" in with_recorded_checks(("queue",), h)
    assert summarize(replace(r, checker="introspection")).startswith("5 introspection probes")


def test_a_probe_that_never_answers_is_unknown_with_its_consequence() -> None:
    seen, h = _run(Adapter(unreadable=("n2",), raises=True))
    assert not seen["leader"]["ok"] and "OSError" in seen["leader"]["answer"]
    assert seen["leader"]["attempts"] > 1  # retried for the whole wait
    r = introspection(h)
    assert r.valid == UNKNOWN and list(r.details["progress"]) == ["introspection-failed"]
    failed = {f["probe"]: f for f in r.details["failed"]}
    assert set(failed) == {"leader", "replica-state n2"}
    assert "404" in failed["replica-state n2"]["answer"]
    assert "convergence" in failed["replica-state n2"]["consequence"]
    assert "2 of 5" in summarize(replace(r, checker="introspection"))


def test_a_system_stating_no_ability_records_nothing() -> None:
    seen, h = _run(object())
    assert seen == {} and not list(h.nemesis_ops())
    assert "introspection" not in with_recorded_checks(("queue",), h)
    assert introspection(h).valid == UNKNOWN


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                          max_size=3),
                     max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_json, st.dictionaries(st.text(max_size=12), _json, max_size=5)))
def test_any_recorded_probes_are_judged_without_crashing(value: Any) -> None:
    h = History([Op(index=0, time=0, type=OpType.INVOKE, process=PROBES, f=INTROSPECTION,
                    value={"probes": []}, error=None),
                 Op(index=1, time=1, type=OpType.OK, process=PROBES, f=INTROSPECTION,
                    value=value, error=None)])
    r = introspection(h)
    assert r.valid in (True, UNKNOWN)  # never invalid: it proves the run saw less
    summarize(replace(r, checker="introspection"))
