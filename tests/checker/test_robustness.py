"""Malformed requests: the robustness checker's verdicts, the thread that sends them,
and how they stay out of the workload's checkers.

A malformed request the system accepted, or failed on with its own 5xx, is an
anomaly whatever the faults; a refusal or no answer at all is not (a timeout
proves nothing by itself). The sender draws from its own random stream, so the
same seed gives the same requests, and stops at the run's end.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import check_history, plan_checks, summarize
from harness.checker.robustness import robustness
from harness.history import History, Op, OpType
from harness.hostile import (
    ACCEPTED,
    ANSWERS,
    DROPPED,
    ERROR,
    HOSTILE,
    NO_ANSWER,
    REFUSED,
    drive_hostile,
    hostile_calls,
)
from harness.report.findings import robustness_view
from harness.system import Address, TakesHostileInput
from harness.testing import invoke, ok

_TYPES = {ACCEPTED: OpType.OK, REFUSED: OpType.FAIL, ERROR: OpType.INFO, DROPPED: OpType.INFO,
          NO_ANSWER: OpType.INFO}


def hostile_pair(answer: str, why: str = "too deep", at: int = 0, target: str = "n1"
                 ) -> list[Op]:
    request = {"why": why, "path": "/enqueue", "target": target}
    return [Op(0, at, OpType.INVOKE, HOSTILE, HOSTILE, request),
            Op(0, at + 1, _TYPES[answer], HOSTILE, HOSTILE, request,
               {"answer": answer, "detail": f"HTTP for {answer}"}, "n1")]


def build(ops: list[Op]) -> History:
    return History(replace(op, index=i, time=i) for i, op in enumerate(ops))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ANSWERS), max_size=30))
def test_only_an_acceptance_or_a_systems_own_error_is_an_anomaly(answers: list[str]) -> None:
    h = build([op for a in answers for op in hostile_pair(a)])
    r = robustness(h)
    if not answers:
        assert r.valid == "unknown"
        return
    expected = sorted({"accepted-bad-input": ACCEPTED in answers,
                       "error-on-bad-input": ERROR in answers,
                       "dropped-bad-input": DROPPED in answers}.items())
    anomalies = [name for name, present in expected if present]
    assert r.valid is (not anomalies)
    assert list(r.details.get("anomalies") or []) == anomalies
    assert r.details["requests"] == len(answers)
    assert sum(r.details["answers"].values()) == len(answers)
    view = robustness_view(r)
    assert (view is None) == (not anomalies)
    if view is not None:
        assert view["total"] == sum(answers.count(a) for a in (ACCEPTED, ERROR, DROPPED))


def test_a_hang_up_counts_only_from_a_node_asked_directly_away_from_its_faults() -> None:
    """A node being killed resets its connections, and a load balancer's hang-up is not
    the node's: only a node asked directly, with no fault on it (or of unknown reach)
    within 2 s, hung up on the input itself."""
    from harness.history import NEMESIS
    from harness.testing import info

    def at(t_s: float, ops: list[Op]) -> list[Op]:
        return [replace(op, time=int(t_s * 1e9) + i) for i, op in enumerate(ops)]

    def judge(*ops: Op) -> Any:
        h = History(replace(op, index=i) for i, op in enumerate(sorted(ops,
                                                                        key=lambda o: o.time)))
        return robustness(h)

    kill_n1 = [*at(10.0, [info(NEMESIS, "start-kill", {"faulty": ["n1"]}, error=None)]),
               *at(12.0, [info(NEMESIS, "stop-kill", {}, error=None)])]
    latency = [*at(10.0, [info(NEMESIS, "start-latency", {}, error=None)]),
               *at(12.0, [info(NEMESIS, "stop-latency", {}, error=None)])]
    near = at(13.5, hostile_pair(DROPPED))
    far = at(20.0, hostile_pair(DROPPED))
    assert judge(*kill_n1, *near).valid is True
    assert judge(*latency, *near).valid is True
    assert judge(*at(11.0, hostile_pair(DROPPED, target="lb"))).valid is True
    r = judge(*kill_n1, *near, *far)
    assert r.valid is False and list(r.details["anomalies"]) == ["dropped-bad-input"]
    assert r.details["drops_near_faults"] == 1 and r.details["anomalous_count"] == 1
    other = at(11.0, hostile_pair(DROPPED, target="n2"))  # n1's kill does not excuse n2
    assert judge(*kill_n1, *other).valid is False


def test_an_unanswered_request_at_the_end_counts_as_no_answer() -> None:
    h = build(hostile_pair(REFUSED) + hostile_pair(REFUSED)[:1])
    calls = hostile_calls(h)
    assert len(calls) == 2 and calls[1][1] is None
    r = robustness(h)
    assert r.valid is True and r.details["answers"][NO_ANSWER] == 1


def test_malformed_requests_add_the_checker_and_stay_out_of_the_workloads() -> None:
    """A register history with malformed requests among its calls: the register model
    never sees them (they are not client ops), and robustness judges them."""
    ops = [invoke(0, "write", ["k", 1]), ok(0, "write", ["k", 1]),
           *hostile_pair(ACCEPTED, why="id is an int"),
           invoke(0, "read", ["k", None]), ok(0, "read", ["k", 1])]
    h = build(ops)
    plan = plan_checks(h)
    assert "robustness" in plan.checkers and "linearizable" in plan.checkers
    _, result = check_history(h)
    results = result.details["results"]
    assert results["linearizable"].valid is True
    assert results["robustness"].valid is False
    assert "1 accepted" in summarize(results["robustness"])


class FakeHostile:
    """Draws a numbered request; answers by a rule on the number."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[tuple[dict[str, Any], Address]] = []
        self.delay_s = delay_s

    def hostile_request(self, rng: random.Random) -> dict[str, Any]:
        return {"why": "numbered", "n": rng.randrange(1000)}

    def send_hostile(self, request: Any, address: Address, *,
                     timeout_s: float) -> tuple[str, str]:
        time.sleep(self.delay_s)
        self.sent.append((dict(request), address))
        if request["n"] % 7 == 0:
            raise RuntimeError("adapter bug")
        return (REFUSED, "400") if request["n"] % 2 else ("bogus", "?")


def drive(system: FakeHostile, seed: int, *, rate_hz: float = 200.0,
          duration_s: float = 0.2) -> list[Op]:
    ops: list[Op] = []

    def record(type_: OpType, process: Any, f: str, value: Any, error: Any = None,
               node: str | None = None) -> Op:
        op = Op(len(ops), time.monotonic_ns(), type_, process, f, value, error, node)
        ops.append(op)
        return op

    targets = [("lb", Address("127.0.0.1", 1)), ("n1", Address("127.0.0.1", 2))]
    sent = drive_hostile(system, record, targets, rng=random.Random(seed), rate_hz=rate_hz,
                         timeout_s=1.0, end=time.monotonic() + duration_s,
                         stop=threading.Event())
    assert sent == len(system.sent)
    return ops


def test_the_sender_records_pairs_in_turn_and_classifies_what_it_cannot_trust() -> None:
    system = FakeHostile()
    assert isinstance(system, TakesHostileInput)
    ops = drive(system, seed=3)
    calls = hostile_calls(History(ops))
    assert len(calls) == len(system.sent) >= 5
    targets = [inv.value["target"] for inv, _ in calls]
    assert targets[:4] == ["lb", "n1", "lb", "n1"]
    for inv, comp in calls:
        assert comp is not None
        n = inv.value["n"]
        answer = comp.error["answer"]
        # an exception or an answer outside ANSWERS is no answer, never an anomaly
        assert answer == (REFUSED if n % 2 and n % 7 else NO_ANSWER)
        assert comp.node == (None if inv.value["target"] == "lb" else "n1")


def test_the_same_seed_draws_the_same_requests() -> None:
    a, b = FakeHostile(), FakeHostile()
    drive(a, seed=11, rate_hz=100.0, duration_s=0.1)
    drive(b, seed=11, rate_hz=100.0, duration_s=0.1)
    n = min(len(a.sent), len(b.sent))
    assert n >= 3 and [r for r, _ in a.sent[:n]] == [r for r, _ in b.sent[:n]]


def test_the_sender_stops_at_the_end_even_when_answers_are_slow() -> None:
    system = FakeHostile(delay_s=0.05)
    t0 = time.monotonic()
    drive(system, seed=1, rate_hz=1000.0, duration_s=0.3)
    assert time.monotonic() - t0 < 0.3 + 0.2


def test_no_rate_or_no_target_sends_nothing() -> None:
    system = FakeHostile()
    ops: list[Op] = []
    assert drive_hostile(system, lambda *a, **k: ops.append(a[0]), [], rng=random.Random(1),
                         rate_hz=10.0, timeout_s=1.0, end=time.monotonic() + 1,
                         stop=threading.Event()) == 0
    assert drive(system, seed=1, rate_hz=0.0) == [] and not system.sent
