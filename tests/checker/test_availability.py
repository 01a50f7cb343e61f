"""The availability checker: requests a healthy, quiet cluster failed to serve are a
progress finding (unknown, never invalid); failures during a fault or within the
system's recovery grace, and refusals on the merits, are not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import plan_checks, summarize
from harness.checker.availability import PROMISES, availability, quiet_windows
from harness.history import NEMESIS, History, Op
from harness.testing import fail, info, invoke, ok

S = 1_000_000_000
PROMISE = {"availability": {"refusals": {"cas": ["mismatch"]}, "recovery_grace_ms": 2000.0}}


def at(t_s: float, op: Op) -> Op:
    return replace(op, time=int(t_s * S))


def build(*timed: Op) -> History:
    ops = sorted(timed, key=lambda o: o.time)
    return History(replace(op, index=i) for i, op in enumerate(ops))


def promise(t_s: float = 0.0, value: Any = None) -> Op:
    return at(t_s, info(NEMESIS, PROMISES, PROMISE if value is None else value, error=None))


def nem(t_s: float, f: str) -> Op:
    return at(t_s, info(NEMESIS, f, {}, error=None))


def call(t_s: float, process: int, f: str, outcome: str, error: Any = None,
         value: Any = None) -> list[Op]:
    """An invocation at ``t_s`` and its completion 10 ms later."""
    end = {"ok": ok(process, f, value), "fail": fail(process, f, value, error=error),
           "info": info(process, f, value, error=error)}[outcome]
    return [at(t_s, invoke(process, f, value)), at(t_s + 0.01, end)]


def test_a_quiet_cluster_refusing_requests_is_a_progress_finding() -> None:
    ops = [promise()]
    for i in range(20):  # over 4 s: one in three served
        ops += call(0.1 + i * 0.2, i % 3, "write", "ok" if i % 3 == 0 else "fail",
                    error="bad_request", value=["k", i])
    r = availability(build(*ops))
    assert r.valid == "unknown"
    assert r.details["progress"] == ["unavailable"]
    assert r.details["unserved_count"] == 13
    assert r.details["judged"] == 20
    assert r.details["bad_seconds"] == [0, 1, 2, 3]
    assert "write: bad_request (13)" in r.details["reason"]
    assert summarize(replace(r, checker="availability")).startswith("13 of 20 requests")


def test_a_burst_of_refusals_on_a_starved_machine_is_not_a_finding() -> None:
    ops = [promise()]
    for i in range(60):  # 6 s; everything refused in the first 1.5 s (an election storm)
        bad = i < 15
        ops += call(0.1 + i * 0.1, i % 3, "write", "fail" if bad else "ok",
                    error="no_leader", value=["k", i])
    r = availability(build(*ops))
    assert r.valid is True
    assert r.details["bad_seconds"] == [0, 1] and r.details["judged_seconds"] == 6


def test_refusals_on_the_merits_are_served() -> None:
    ops = [promise()]
    for i in range(20):
        ops += call(0.1 + i * 0.05, i % 3, "cas", "fail", error="mismatch", value=["k", [1, 2]])
    r = availability(build(*ops))
    assert r.valid is True
    assert r.details["unserved_count"] == 0 and r.details["judged"] == 20


def test_failures_during_a_fault_and_its_grace_are_not_judged() -> None:
    ops = [promise(), nem(1.0, "start-partition"), nem(3.0, "stop-partition")]
    for i in range(40):  # 1.0 .. 4.9 s: in the fault, then inside the 2 s grace
        ops += call(1.0 + i * 0.1, i % 3, "write", "info", error="timeout", value=["k", i])
    for i in range(10):  # after the grace: served
        ops += call(5.1 + i * 0.05, i % 3, "write", "ok", value=["k", i])
    h = build(*ops)
    assert quiet_windows(h, 2 * S) == [(5 * S, 2**63 - 1)]
    r = availability(h)
    assert r.valid is True
    assert r.details["judged"] == 10


def test_recovered_opens_a_window_at_once() -> None:
    ops = [promise(), nem(1.0, "start-kill"), nem(1.5, "heal-all"), nem(1.6, "recovered")]
    for i in range(10):
        ops += call(1.7 + i * 0.3, 0, "read", "fail", error="no_leader", value=["k", None])
    r = availability(build(*ops))
    assert r.valid == "unknown" and r.details["unserved_count"] == 10


def test_a_few_timeouts_are_not_a_finding() -> None:
    ops = [promise()]
    for i in range(100):
        bad = i in (10, 50, 90, 95)
        ops += call(0.1 + i * 0.02, i % 5, "write", "info" if bad else "ok",
                    error="timeout" if bad else None, value=["k", i])
    r = availability(build(*ops))
    assert r.valid is True
    assert r.details["unserved_count"] == 4 and len(r.details["bad_seconds"]) < 2


def test_without_a_promise_it_is_unknown_and_not_planned() -> None:
    ops: list[Op] = []
    for i in range(5):
        ops += call(0.1 + i * 0.05, 0, "write", "ok", value=["k", i])
    h = build(*ops)
    assert availability(h).valid == "unknown"
    assert "availability" not in plan_checks(h).checkers
    assert "availability" in plan_checks(build(promise(), *ops)).checkers


@settings(max_examples=150, deadline=None)
@given(faults=st.lists(st.tuples(st.floats(0.5, 20.0), st.floats(0.0, 5.0)), max_size=4),
       outcomes=st.lists(st.tuples(st.floats(0.0, 30.0), st.sampled_from(["ok", "fail", "info"])),
                         max_size=60))
def test_only_calls_in_quiet_windows_are_judged(faults: list[tuple[float, float]],
                                                outcomes: list[tuple[float, str]]) -> None:
    """Whatever the schedule, a call is judged only when it lies wholly inside a quiet
    window, and unserved calls outside them never count."""
    ops = [promise()]
    for start, dur in faults:
        ops += [nem(start, "start-pause"), nem(start + dur, "stop-pause")]
    for p, (t, kind) in enumerate(outcomes):
        ops += call(t, p, "write", kind, error="timeout", value=["k", p])
    h = build(*ops)
    windows = quiet_windows(h, 2 * S)
    r = availability(h)
    inside = [c for c in h.calls() if c.complete is not None and any(
        a <= c.invoke.time and c.complete.time <= b for a, b in windows)]
    assert r.details["judged"] == len(inside)
    assert r.details["unserved_count"] == sum(c.complete is not None and c.complete.type.value
                                              != "ok" for c in inside)
    assert r.valid in (True, "unknown")


@settings(max_examples=100, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(
                              st.text(max_size=5), c, max_size=3), max_leaves=10))
def test_a_damaged_promise_does_not_crash(value: Any) -> None:
    ops = [promise(value={"availability": value} if isinstance(value, dict) else value)]
    ops += call(0.1, 0, "write", "fail", error="x", value=["k", 1])
    r = availability(build(*ops))
    assert r.valid in (True, "unknown")


# ------------------------------------------------------------ a majority up and connected

MAJORITY = {"availability": {"refusals": {"cas": ["mismatch"]}, "recovery_grace_ms": 2000.0,
                             "failover_grace_ms": 1000.0, "nodes": ["n1", "n2", "n3"]}}


def fault(t_s: float, f: str, **value: Any) -> Op:
    return at(t_s, info(NEMESIS, f, value, error=None))


def served_until(t0: float, t1: float, outcome: str, error: Any = None) -> list[Op]:
    """Three clients' calls every 0.25 s over [t0, t1)."""
    ops: list[Op] = []
    t = t0
    while t < t1:
        for p in range(3):
            ops += call(t + p * 0.01, p, "write", outcome, error=error)
        t += 0.25
    return ops


def minority(faulty: Any = ("n1",), outcome: str = "fail", **extra: Any) -> History:
    """A 10 s fault from 1 s to 11 s; calls served before and after, ``outcome`` in it."""
    start = {"faulty": list(faulty)} if faulty is not None else {}
    return build(promise(0.0, MAJORITY), *served_until(0.0, 1.0, "ok"),
                 fault(1.0, "start-kill", **start, **extra),
                 *served_until(1.0, 11.0, outcome, error="no-leader"),
                 fault(11.0, "stop-kill"), *served_until(11.0, 12.0, "ok"))


def test_a_majority_that_stops_serving_while_one_node_is_down_is_a_finding() -> None:
    r = availability(minority())
    assert r.valid == "unknown" and r.details["progress"] == ["unavailable"]
    m = r.details["minority"]
    assert m["windows"] == [[2.0, 11.0]]  # the failover grace after the fault started
    assert len(m["bad_seconds"]) == 9 and "only a minority of nodes" in r.details["reason"]
    assert "while no fault was in force" not in r.details["reason"]  # the quiet part served


def test_a_majority_that_serves_while_one_node_is_down_is_valid() -> None:
    r = availability(minority(outcome="ok"))
    assert r.valid is True and r.details["minority"]["judged"] > 0


@pytest.mark.parametrize("faulty", [("n1", "n2"), None])
def test_a_fault_that_takes_a_majority_or_names_no_nodes_is_not_judged(faulty: Any) -> None:
    r = availability(minority(faulty=faulty))
    assert r.valid is True and r.details["minority"]["judged"] == 0


def test_a_start_that_failed_is_not_judged() -> None:
    r = availability(minority(error="no such node"))
    assert r.valid is True and r.details["minority"]["judged"] == 0


def test_overlapping_faults_are_judged_on_their_union() -> None:
    h = build(promise(0.0, MAJORITY), fault(1.0, "start-kill", faulty=["n1"]),
              fault(3.0, "start-partition", faulty=["n2"]),
              *served_until(1.0, 11.0, "fail", error="no-leader"),
              fault(9.0, "stop-partition"), fault(11.0, "stop-kill"))
    # n1 alone from 2 s; n1 and n2 (a majority) from 3 s; n1 alone again only a
    # recovery grace after 9 s, when the kill ends too
    assert availability(h).details["minority"]["windows"] == [[2.0, 3.0]]


def test_without_a_failover_grace_only_quiet_windows_are_judged() -> None:
    h = build(promise(0.0), fault(1.0, "start-kill", faulty=["n1"]),
              *served_until(1.0, 11.0, "fail", error="no-leader"), fault(11.0, "stop-kill"))
    r = availability(h)
    assert r.valid is True and "minority" not in r.details


@settings(max_examples=30, deadline=None)
@given(served=st.integers(0, 20), why=st.sampled_from(["n1, n2, n3 exited", ""]))
def test_a_cluster_that_never_came_back_is_a_progress_finding_whatever_it_served(
        served: int, why: str) -> None:
    ops = [promise(), nem(1.0, "start-kill"), nem(2.0, "stop-kill"), nem(3.0, "heal-all"),
           at(4.0, info(NEMESIS, "not-recovered", {"error": why} if why else {}, error=None))]
    for i in range(served):  # served well before the fault: still no excuse for the end
        ops += call(0.05 + i * 0.04, i % 3, "write", "ok", value=["k", i])
    r = availability(build(*ops))
    assert r.valid == "unknown"
    assert r.details["progress"] == ["not-recovered"]
    assert "did not recover" in r.details["reason"]
    assert (why or "no reason recorded") in r.details["reason"]
    # without a stated promise there is nothing to judge against, as for unavailability
    assert availability(build(*ops[1:])).valid == "unknown"
    assert "progress" not in availability(build(*ops[1:])).details
