"""The clock-offset lane: offsets per node from the clock records, and the drift sentence."""

from __future__ import annotations

from typing import Any

from harness.history import Op, OpType
from harness.report import clock, data
from harness.testing import history, invoke, ok

S = 1_000_000_000


def nem(t_s: float, f: str, value: Any) -> Op:
    return Op(-1, int(t_s * S), OpType.INFO, "nemesis", f, value)


def client(t_s: float) -> list[Op]:
    return [Op(-1, int(t_s * S), OpType.INVOKE, 0, "claim"),
            Op(-1, int(t_s * S) + 1, OpType.OK, 0, "claim")]


def _run(*extra: Op) -> Any:
    return history(
        *client(0.5),
        nem(1, "start-clock", {"fault": "clock", "mode": "bump", "node": "n1",
                               "offsets": {"n1": 30.0}, "moved": ["realtime"]}),
        nem(3, "stop-clock", {"fault": "clock", "mode": "bump", "offsets": {"n1": 0.0}}),
        nem(4, "start-clock", {"fault": "clock", "mode": "strobe", "node": "n2",
                               "offsets": {"n2": -5.0}, "moved": ["realtime"],
                               "period_ms": 100}),
        nem(5, "start-clock", {"error": "no node matches 'leader'"}),  # not applied
        *extra,
        *client(9.0),
    )


def test_lanes_follow_the_records_and_an_unended_fault_runs_to_the_end() -> None:
    h = _run()
    lanes = clock.clock_lanes(h, end_ns=10 * S)
    assert lanes is not None and lanes.faults == 2 and lanes.nodes == ("n1", "n2")
    assert [(s.node, s.start_ns, s.end_ns, s.offset_s, s.strobe) for s in lanes.segments] == [
        ("n1", 1 * S, 3 * S, 30.0, False), ("n2", 4 * S, 10 * S, -5.0, True)]
    assert "held throughout" in clock.drift_sentence(lanes)
    svg = clock.clock_svg(lanes, axis=data.time_axis(h))
    assert svg.startswith("<svg") and svg.count("<title>") == 2 and "+30 s" in svg


def test_a_record_that_moved_a_monotonic_clock_is_named_as_breaking_the_assumption() -> None:
    h = _run(nem(6, "start-clock", {"fault": "clock", "mode": "bump", "node": "n3",
                                    "offsets": {"n3": 2.0}, "moved": ["realtime", "monotonic"]}))
    lanes = clock.clock_lanes(h, end_ns=10 * S)
    assert lanes is not None and [t for t, _ in lanes.monotonic] == [6 * S]
    text = clock.drift_sentence(lanes)
    assert "did not hold" in text and "6.0 s" in text


def test_no_clock_fault_no_lane() -> None:
    assert clock.clock_lanes(history(invoke(0, "claim"), ok(0, "claim")), end_ns=S) is None
