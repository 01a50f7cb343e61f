"""The faults table in words: one readable line per fault kind and per nemesis event.

The records below are what ``harness.nemesis.faults`` and the fault driver
write (copied from a real run's history, toxic lists shortened).
"""

from __future__ import annotations

from typing import Any

from harness.history import History, Op, OpType
from harness.report import data, faults
from harness.testing import history, invoke, ok

ISOLATE_N1 = {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}
RING_3 = {"n1": ["n2"], "n3": ["n1"], "n2": ["n3"]}  # each node drops one neighbour
SCHEDULE: dict[str, Any] = {"seed": 1, "faults": [
    {"kind": "partition", "start_s": 1.0, "duration_s": 4.0,
     "params": {"plan": "isolate-leader", "recipe": "kill-new-leader"}},
    {"kind": "kill", "start_s": 4.5, "duration_s": 3.0,
     "params": {"node": "leader", "recipe": "kill-new-leader"}},
    {"kind": "latency", "start_s": 9.0, "duration_s": 2.0,
     "params": {"node": "n1", "to": "n2", "latency_ms": 300}},
    {"kind": "partition", "start_s": 8.0, "duration_s": 1.0,
     "params": {"plan": "majorities-ring", "seed": 5}},
    {"kind": "pause", "start_s": 12.0, "duration_s": 60.0, "params": {"node": "n3"}},
    {"kind": "stall", "start_s": 13.0, "duration_s": 1.0, "params": {"node": "n1"}},
    {"kind": "kill", "start_s": 14.0, "duration_s": 1.0, "params": {"node": "cut-off"}},
]}


def nem(f: str, value: Any) -> Op:
    return Op(-1, -1, OpType.INFO, "nemesis", f, value)


def run_history() -> History:
    return history(
        nem("start-partition", {"fault": "partition", "grudge": ISOLATE_N1,
                                "toxics": ["n1-to-n2-peer/upstream"], "added": ["x"],
                                "plan": "isolate-leader", "recipe": "kill-new-leader"}),  # 0
        invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]),
        nem("start-kill", {"fault": "kill", "node": "n2", "recipe": "kill-new-leader"}),   # 3
        nem("stop-partition", {"fault": "heal-network", "removed": ["a", "b"]}),          # 4
        nem("stop-kill", {"fault": "restart", "node": "n2"}),                              # 5
        nem("start-partition", {"fault": "partition", "grudge": RING_3,
                                "plan": "majorities-ring"}),                               # 6
        nem("stop-partition", {"fault": "heal-network", "removed": []}),                   # 7
        nem("start-latency", {"fault": "latency", "latency_ms": 300, "jitter_ms": 0,
                              "links": ["n1-to-n2-peer", "n1-to-n2-client"],
                              "added": ["n1-to-n2-peer/harness-slow-upstream"]}),          # 8
        nem("stop-latency", {"fault": "heal-network", "removed": ["y"]}),                  # 9
        nem("start-pause", {"fault": "pause", "node": "n3"}),                              # 10
        nem("start-stall", {"fault": "stall", "links": ["n1-to-n2-peer", "n2-to-n1-peer",
                                                        "n1-to-n3-peer", "n3-to-n1-peer"],
                            "added": []}),                                                 # 11
        nem("start-kill", {"error": "no leader is known, so no cut-off node"}),            # 12
        nem("heal-all", {"fault": "heal-all", "resumed": ["n3"], "restarted": [],
                         "removed": ["p", "q", "r"]}),                                     # 13
        nem("recovered", {}),                                                              # 14
        nem("settle", {"backlog_start": 12, "backlog_end": 0, "completion_rate_hz": 4.0,
                       "limit_s": 30.0, "waited_s": 3.5, "stopped": "drained"}),          # 15
        invoke("replicas", "replica-state", {"node": "n1"}),                              # 16
        ok("replicas", "replica-state", {"applied": 9, "digest": "abc", "items": {}}),    # 17
    )


def summaries(h: History) -> dict[int, str]:
    params = faults.schedule_params(h, SCHEDULE)
    return {i.start_index: faults.fault_summary(i, params.get(i.start_index))
            for i in data.fault_intervals(h)}


def test_each_fault_kind_in_words() -> None:
    assert summaries(run_history()) == {
        0: "partition isolate-leader: n1 | n2 n3, healed · recipe kill-new-leader",
        3: "kill n2 (leader), restarted · recipe kill-new-leader",
        6: "partition majorities-ring: cut n1→n3 n2→n1 n3→n2, healed",
        8: "latency 300 ms n1→n2, removed",
        10: "pause n3, resumed by heal-all",
        11: "stall n1↔n2 n1↔n3, removed by heal-all",
        12: "kill was not applied: no leader is known, so no cut-off node",
    }


def test_the_schedule_names_each_start_by_kind_and_order() -> None:
    """Starts are matched to the schedule per kind in start-time order: the ring
    partition is scheduled after the latency in the list, but starts before it."""
    params = faults.schedule_params(run_history(), SCHEDULE)
    assert params[0]["plan"] == "isolate-leader" and params[6]["plan"] == "majorities-ring"
    assert params[3]["node"] == "leader" and params[12]["node"] == "cut-off"
    assert faults.schedule_params(run_history(), None) == {}
    assert faults.schedule_params(run_history(), {"faults": "junk"}) == {}


def test_a_fault_still_in_force_and_a_leader_rule_that_fell_back() -> None:
    h = history(nem("start-kill", {"fault": "kill", "node": "n1", "leader": None}))
    (iv,) = data.fault_intervals(h)
    assert faults.fault_summary(iv, {"node": "leader"}) == (
        "kill n1 (meant the leader; none was named, so the first node up), "
        "still in force when the history ended")
    h = history(nem("start-partition", {"fault": "partition", "grudge": ISOLATE_N1,
                                        "plan": "isolate-leader", "leader": None,
                                        "recipe": "isolate-leader"}))
    (iv,) = data.fault_intervals(h)
    assert faults.fault_summary(iv) == (  # the recipe that only repeats the plan is left out
        "partition isolate-leader: n1 | n2 n3 (meant the leader; none was named, so the "
        "first node up), still in force when the history ended")
    h = history(nem("start-pause", {"fault": "pause", "node": "n2"}),
                nem("stop-pause", {"error": "docker unpause failed"}))
    (iv,) = data.fault_intervals(h)
    assert faults.fault_summary(iv) == "pause n2, could not be undone: docker unpause failed"


def test_nemesis_events_in_words_and_replica_reads_left_out() -> None:
    events = faults.nemesis_events(run_history())
    assert [(e.index, e.text) for e in events] == [
        (13, "heal-all: resumed n3; removed 3 toxics"),
        (14, "recovered: the cluster was ready again after the heal"),
        (15, "settle: the final phase waited 3.5 s for a backlog of 12 (4.0 items/s, "
             "limit 30 s) and stopped because the backlog was empty, 0 left"),
    ]
    assert faults.event_text("heal-all", {"resumed": [], "restarted": []}) == \
        "heal-all: nothing was left to undo"
    assert faults.event_text("not-recovered", {"error": "n2 down"}) == \
        "not recovered after the heal: n2 down"


def test_the_faults_table_reads_as_words_in_time_order() -> None:
    """The table once quoted each record as JSON cut at 400 characters."""
    h = run_history()
    rows = faults.fault_rows(data.fault_intervals(h), faults.nemesis_events(h),
                             faults.schedule_params(h, SCHEDULE), data.history_end_ns(h))
    assert [r.start_index for r in rows] == [0, 3, 6, 8, 10, 11, 12, 13, 14, 15]
    for r in rows:
        assert not any(c in r.what for c in '{}[]"'), r.what
    by = {r.start_index: r for r in rows}
    assert by[0].end_s is not None and by[0].duration_s == by[0].end_s - by[0].start_s
    assert by[13].kind == "heal-all" and by[13].end_s is None and by[13].duration_s is None
    assert '"grudge"' in by[0].raw  # the full record stays, as the row's tooltip


def test_timeline_marks_are_nemesis_events_only() -> None:
    h = run_history()
    marks = faults.marks(h, data.fault_intervals(h), faults.schedule_params(h, SCHEDULE))
    assert [f for _, _, f, _ in marks][:3] == ["start-partition", "start-kill", "stop-partition"]
    assert "replica-state" not in {f for _, _, f, _ in marks}
    texts = {i: text for _, i, _, text in marks}
    assert texts[4] == "heal-network: removed 2 toxics" and texts[5] == "restart n2"
    assert texts[3] == "kill n2 (leader), restarted · recipe kill-new-leader"
