"""The final phase waits for the work, and a backlog left at the end is never "lost"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.generator import FaultSchedule
from harness.pytest_plugin import require
from harness.testing import FakeClock
from harness.workloads.settle import settle


def run_settle(levels: list[int], **kw: object) -> tuple[object, FakeClock]:
    clock = FakeClock()
    it = iter(levels)
    last = [levels[0]]

    def backlog() -> int:
        last[0] = next(it, last[0])
        return last[0]

    rec = settle(backlog, clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]
    return rec, clock


def test_waits_as_long_as_the_backlog_shrinks() -> None:
    # 100 items finishing 5 per poll (10/s): 10 s of work, longer than any fixed wait
    rec, _ = run_settle([100 - 5 * i for i in range(21)], stall_s=3.0, poll_s=0.5)
    assert rec.stopped == "drained" and rec.backlog_end == 0  # type: ignore[attr-defined]
    assert rec.waited_s == pytest.approx(10.0)  # type: ignore[attr-defined]
    assert rec.completion_rate_hz == pytest.approx(10.0, rel=0.1)  # type: ignore[attr-defined]


def test_stops_when_nothing_finishes_for_the_stall_time() -> None:
    rec, clock = run_settle([10, 8, 6] + [6] * 100, stall_s=3.0, poll_s=0.5)
    assert rec.stopped == "stalled" and rec.backlog_end == 6  # type: ignore[attr-defined]
    assert 3.0 <= clock.t <= 4.5


def test_stops_at_the_limit_the_first_window_gives() -> None:
    # 20/s over the first 5 s (10 per poll), then one item every 10 polls: it
    # never stalls, but the limit from the first window's rate is
    # stall + 2 * 1000 / 20 = 106 s
    levels = [1000 - 10 * i for i in range(11)] + [900 - i // 10 for i in range(9000)]
    rec, clock = run_settle(levels, stall_s=6.0, poll_s=0.5)
    assert rec.stopped == "limit"  # type: ignore[attr-defined]
    assert rec.limit_s == pytest.approx(106.0, rel=0.02)  # type: ignore[attr-defined]
    assert clock.t == pytest.approx(rec.limit_s, abs=1.0)  # type: ignore[attr-defined]
    assert rec.completion_rate_hz == pytest.approx(20.0, rel=0.02)  # type: ignore[attr-defined]


def test_a_slow_count_is_not_a_stall() -> None:
    """Counting a big backlog may take longer than the stall time; only time
    after a count without progress is a stall."""
    clock = FakeClock()
    levels = iter([500, 400, 300, 200, 100, 0])

    def backlog() -> int:
        clock.t += 8.0  # each count reads hundreds of items
        return next(levels)

    rec = settle(backlog, stall_s=5.0, poll_s=0.5, clock=clock, sleep=clock.sleep)
    assert rec.stopped == "drained" and rec.backlog_end == 0


def test_the_run_cap_wins() -> None:
    clock = FakeClock()
    rec = settle(lambda: 5, stall_s=100.0, poll_s=1.0, clock=clock, sleep=clock.sleep,
                 cap_passed=lambda: clock.t >= 3)
    assert rec.stopped == "cap" and clock.t == 3


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        settle(lambda: 0, stall_s=0)


def test_slow_correct_system_is_unfinished_never_lost(tmp_path: Path) -> None:
    """The false alarm, reproduced on purpose: workers far slower than the enqueue
    rate (80 items, 3 workers at 1 s an item) and a final phase capped short,
    so the backlog cannot finish, even with the re-read after the stuck bound. The
    correct system must come out unknown with unfinished items, and nothing lost."""
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    from harness.runner import RunConfig, run

    r = run(RunConfig(workload="takeover", nemesis=(), time_limit_s=4, seed=3,
                      schedule=FaultSchedule((), seed=3), reports_dir=tmp_path, rate_hz=20,
                      final_timeout_s=1.0, system_options={"work_ms": 1000.0}))
    assert r.error is None
    q = r.results["queue"]
    assert q.valid == "unknown", q.to_dict()
    d = q.details
    assert d["lost_count"] == 0 and d["anomalies"] == []
    assert d["unfinished_count"] > 10 and "unfinished" in d["progress"]
    assert d["settle"]["stopped"] == "cap" and d["settle"]["backlog_end"] > 10
    assert r.valid == "unknown"
    # the report says so: an unfinished group (reported, not an anomaly), no lost
    # group, and how long the final phase waited
    page = (r.run_dir / "report.html").read_text()
    assert 'id="queue-unfinished"' in page and 'id="queue-lost"' not in page
    assert 'id="settle"' in page and "the run&#39;s cap on the final phase" in page
