"""The timeline's rows and time span, as data: one row per client thread, from the first op."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from report_helpers import synthetic_register_history

from harness.history import History, Op, OpType
from harness.report.data import time_axis
from harness.report.timeline import infer_concurrency, lane_of, paginate, timeline_columns
from harness.testing import history, info, invoke, ok

SETUP_NS = 20_000_000_000
"""A cold start: the cluster took 20 s before the first client operation."""


def at(ops: list[Op], *, start_ns: int = SETUP_NS, step_ns: int = 1_000_000) -> History:
    """These ops one step apart from ``start_ns`` on."""
    h = history(*ops)
    return History(replace(op, time=start_ns + op.index * step_ns) for op in h)


def retry(process: int, f: str, value: Any, *, of: int) -> Op:
    """A resend of op ``of`` under a new process, as the runner records it."""
    return replace(invoke(process, f, value),
                   extra=(("idempotency", "request-id"), ("retry_of", of)))


def two_workers() -> History:
    """Concurrency 2. Worker 0 gets an indeterminate write, goes on as process 2, its
    retry as process 4; worker 1 runs alongside; the final phase reads twice."""
    return at([
        invoke(0, "write", ["x", 1]),               # 0
        invoke(1, "read", ["x", None]),             # 1
        info(0, "write", ["x", 1]),                 # 2
        retry(2, "write", ["x", 1], of=0),          # 3
        ok(1, "read", ["x", None]),                 # 4
        invoke(1, "read", ["x", None]),             # 5
        info(2, "write", ["x", 1]),                 # 6
        invoke(4, "read", ["x", None]),             # 7
        ok(1, "read", ["x", 1]),                    # 8
        ok(4, "read", ["x", 1]),                    # 9
        invoke(1_000_020, "read", ["x", None]),     # 10
        info(1_000_020, "read", ["x", None]),       # 11
        invoke(2_000_020, "read", ["x", None]),     # 12
        ok(2_000_020, "read", ["x", 1]),            # 13
        invoke("replicas", "replica-state", {"node": "n1"}),
        ok("replicas", "replica-state", {"applied": 3, "items": {"x": "big state"}}),
    ])


def test_one_row_per_worker_and_one_for_the_final_phase() -> None:
    cols = timeline_columns(two_workers(), concurrency=2)
    assert cols.lanes == ("w0", "w1", "final")
    rows = [cols.lanes[i] for i in cols.lane]
    assert list(zip(cols.process, rows, strict=True)) == [
        (0, "w0"), (1, "w1"), (2, "w0"), (1, "w1"), (4, "w0"), (1_000_020, "final"),
        (2_000_020, "final")]
    # the retry says what it retries; the replicas' reads are not client calls
    assert cols.retry_of == (-1, -1, 0, -1, -1, -1, -1)
    assert "replica-state" not in cols.fs


def test_a_long_run_has_a_row_per_worker_not_per_process() -> None:
    h = synthetic_register_history(20_000, processes=10)  # one op in 200 is info
    cols = timeline_columns(h, concurrency=10)
    assert len(set(cols.process)) > 20
    assert cols.lanes == tuple(f"w{i}" for i in range(10))


def test_lane_of_a_process() -> None:
    assert lane_of(0, 5) == "w0" and lane_of(13, 5) == "w3"
    assert lane_of(1_000_050, 5) == "final" and lane_of(3_000_050, 5) == "final"


def test_concurrency_is_inferred_when_the_results_are_missing() -> None:
    """A killed run has no results.json: the rows come from the calls themselves."""
    h = two_workers()
    assert infer_concurrency(h.calls()) == 2
    assert timeline_columns(h).lanes == ("w0", "w1", "final")
    # the synthetic history's ten processes overlap in time: ten rows, no fewer
    assert infer_concurrency(synthetic_register_history(3_000, processes=10).calls()) == 10
    assert infer_concurrency(()) == 1


def test_no_row_holds_two_calls_at_once() -> None:
    h = synthetic_register_history(5_000, processes=7)
    cols = timeline_columns(h)
    busy: dict[int, int] = {}
    for s, e, lane in zip(cols.start_us, cols.end_us, cols.lane, strict=True):
        assert busy.get(lane, -1) < s
        busy[lane] = e if e >= 0 else 1 << 62


def test_the_timeline_starts_at_the_first_client_operation() -> None:
    """On a cold start the first page began at 0: 20 s of empty setup before any call."""
    h = History([
        Op(0, 1_000_000, OpType.INFO, "nemesis", "start-partition", {"grudge": {}}),
        *(replace(op, index=op.index + 1) for op in two_workers()),
    ])
    cols = timeline_columns(h, concurrency=2)
    pages = paginate(cols, per_page=3)
    assert pages[0].lo_us == SETUP_NS // 1000 == cols.start_us[0]
    axis = time_axis(h)
    assert axis.lo_ns == SETUP_NS
    # it ends with the last client call, not with the replicas' reads after it
    last_client = max(op.time for op in h.client_ops())
    assert axis.hi_ns == last_client < h[len(h) - 1].time
