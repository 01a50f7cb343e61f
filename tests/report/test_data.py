"""The report's data on small handmade histories: what the page draws, tested without a page."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checker import get_model, linearizable
from harness.checker.queue import item_key
from harness.history import History, Op, OpType
from harness.report import data
from harness.report.logs import excerpt, parse_log
from harness.report.timeline import lb_lanes, paginate, timeline_columns
from harness.testing import fail, history, info, invoke, ok

MODEL = "cas-register-per-key"


def timed(h: History, step_ns: int = 1_000_000) -> History:
    """The same history with event i at i * step_ns (builders put it at i ns)."""
    return History(replace(op, time=op.index * step_ns) for op in h)


def stale_read() -> History:
    """write 1, write 2, then a read of 1 on key x: the read is stale."""
    return timed(history(
        invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]),
        invoke(1, "write", ["x", 2]), ok(1, "write", ["x", 2]),
        invoke(2, "read", ["x", None]), ok(2, "read", ["x", 1]),
        invoke(0, "write", ["y", 3]), ok(0, "write", ["y", 3]),
    ))


def checked(h: History) -> dict[str, Any]:
    r = linearizable(h, model=get_model(MODEL))
    assert r.valid is False
    return r.to_dict()


# --------------------------------------------------------------------------- counterexample


def test_counterexample_layout_marks_prefix_unplaced_and_state() -> None:
    h = stale_read()
    res = checked(h)
    cx = res["counterexample"]
    lay = data.counterexample_layout(h, res, model=get_model(MODEL))
    assert lay is not None
    assert lay.key == "x" and lay.state == cx["state"]
    assert lay.prefix_length == len(cx["linearized_prefix"])
    assert lay.unplaced == tuple(cx["could_not_place"])
    by_index = {b.index: b for b in lay.bars}
    # every op of partition x is drawn, the y op is not
    assert set(by_index) == {0, 2, 4}
    for n, i in enumerate(cx["linearized_prefix"], start=1):
        assert by_index[i].order == n
        assert by_index[i].state_after is not None
    for i in cx["could_not_place"]:
        assert by_index[i].unplaced and by_index[i].order is None
    # the model's view: the partition's value without the key, a read's observed value
    assert by_index[4].f == "read" and by_index[4].value == "1"
    assert lay.lanes == (0, 1, 2)
    assert lay.lo_ns <= min(b.start_ns for b in lay.bars)
    assert lay.hidden_prefix == 0 and lay.partition_ops == 3


def test_counterexample_states_follow_the_prefix() -> None:
    h = timed(history(
        invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]),
        invoke(1, "cas", ["x", [1, 4]]), ok(1, "cas", ["x", [1, 4]]),
        invoke(2, "read", ["x", None]), ok(2, "read", ["x", 1]),
    ))
    res = checked(h)
    lay = data.counterexample_layout(h, res, model=get_model(MODEL))
    assert lay is not None
    prefix = sorted((b for b in lay.bars if b.order is not None), key=lambda b: b.order or 0)
    assert prefix and prefix[0].state_after == "1"
    # the replayed state at the end of the prefix is the state the checker got stuck in
    assert prefix[-1].state_after == lay.state


def test_counterexample_window_hides_old_prefix_but_counts_it() -> None:
    ops = []
    for v in range(30):  # a long legal prefix, then the stale read
        ops += [invoke(0, "write", ["x", v]), ok(0, "write", ["x", v])]
    ops += [invoke(1, "read", ["x", None]), ok(1, "read", ["x", 3])]
    h = timed(history(*ops))
    res = checked(h)
    lay = data.counterexample_layout(h, res, model=get_model(MODEL), context=5)
    assert lay is not None
    shown_prefix = [b for b in lay.bars if b.order is not None]
    assert len(shown_prefix) == 5
    assert lay.hidden_prefix == lay.prefix_length - 5
    assert max(b.order or 0 for b in shown_prefix) == lay.prefix_length


def test_counterexample_without_model_draws_prefix_and_unplaced_only() -> None:
    h = stale_read()
    res = checked(h)
    lay = data.counterexample_layout(h, res, model=None)
    assert lay is not None
    cx = res["counterexample"]
    assert {b.index for b in lay.bars} == set(cx["linearized_prefix"]) | set(
        cx["could_not_place"])
    assert all(b.state_after is None for b in lay.bars)


def test_no_counterexample_no_layout() -> None:
    h = stale_read()
    assert data.counterexample_layout(h, {"valid": True, "checker": "linearizable"}) is None


def test_open_ops_have_no_end() -> None:
    h = timed(history(
        invoke(0, "write", ["x", 1]), info(0, "write", ["x", 1]),
        invoke(1, "write", ["x", 2]), ok(1, "write", ["x", 2]),
        invoke(2, "read", ["x", None]), ok(2, "read", ["x", 3]),
    ))
    res = checked(h)
    lay = data.counterexample_layout(h, res, model=get_model(MODEL))
    assert lay is not None
    bar = next(b for b in lay.bars if b.index == 0)
    assert bar.end_ns is None and bar.type == "info"


# --------------------------------------------------------------------------- faults


def nemesis(f: str, value: Any = None) -> Op:
    return Op(-1, -1, OpType.INFO, "nemesis", f, value)


def test_fault_intervals_pair_start_stop_and_heal_all() -> None:
    grudge = {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}
    h = history(
        nemesis("start-partition", {"grudge": grudge, "plan": "isolate-one"}),
        nemesis("start-kill", {"node": "n2"}),
        nemesis("stop-partition", {"fault": "heal-network"}),
        nemesis("start-pause", {"node": "n3"}),
        nemesis("heal-all", {}),
        nemesis("recovered", {}),
        nemesis("start-latency", {"latency_ms": 100}),
    )
    iv = data.fault_intervals(h)
    assert [(i.kind, i.start_ns, i.end_ns) for i in iv] == [
        ("partition", 0, 2), ("kill", 1, 4), ("pause", 3, 4), ("latency", 6, None)]
    assert iv[0].label == "partition isolate-one [n1 | n2 n3]"
    assert iv[1].label == "kill n2"
    assert iv[3].label == "latency 100 ms"
    assert data.faults_between(iv, 5, 5) == []
    assert data.faults_between(iv, 2, 3) == ["partition isolate-one [n1 | n2 n3]", "kill n2",
                                             "pause n3"]
    assert data.faults_between(iv, 100, 200) == ["latency 100 ms"]


def test_a_ring_partition_has_no_sides() -> None:
    ring = {"n1": ["n3", "n4"], "n2": ["n4", "n5"], "n3": ["n5", "n1"], "n4": ["n1", "n2"],
            "n5": ["n2", "n3"]}
    assert data.fault_label("partition", {"grudge": ring, "plan": "majorities-ring"}) == \
        "partition majorities-ring"
    assert data.fault_label("kill", {"error": "boom"}) == "kill (failed: boom)"


# --------------------------------------------------------------------------- trails


def qitem(i: Any, **kw: Any) -> dict[str, Any]:
    return {"id": i, **kw}


def queue_history() -> History:
    return history(
        invoke(0, "enqueue", qitem("a")), ok(0, "enqueue", qitem("a")),        # 0 1
        nemesis("start-kill", {"node": "n1"}),                                  # 2
        invoke(1, "enqueue", qitem("b")), ok(1, "enqueue", qitem("b")),        # 3 4
        invoke(0, "claim"), ok(0, "claim", qitem("b", token=1)),               # 5 6
        nemesis("stop-kill", {"node": "n1"}),                                   # 7
        invoke(2, "claim"), ok(2, "claim", qitem("b", token=2)),               # 8 9
        invoke(0, "complete", qitem("b", token=1)), ok(0, "complete", qitem("b", token=1)),
        invoke(2, "complete", qitem("b", token=2)), ok(2, "complete", qitem("b", token=2)),
        # the final read finds no such item (a read that did not answer would leave
        # the item unresolved, not lost)
        invoke(3, "read-item", qitem("a")), ok(3, "read-item", {"id": "a", "state": None}),
    )


def test_item_trails_for_queue_and_fencing() -> None:
    from harness.checker import fencing, queue

    h = queue_history()
    results = {"queue": queue(h).to_dict(), "fencing": fencing(h).to_dict()}
    groups = data.item_trails(h, results, data.fault_intervals(h))
    names = {(g.checker, g.name): g for g in groups}
    lost = names[("queue", "lost")]
    assert lost.anomaly and lost.count == 1 and lost.ids == ("a",)
    trail = lost.trails[0]
    assert [(s.index, s.f, s.type) for s in trail.steps] == [
        (0, "enqueue", "ok"), (14, "read-item", "ok")]
    assert trail.steps[0].flagged and not trail.steps[1].flagged
    dup = names[("queue", "duplicated")]
    assert dup.ids == ("b",) and "delivered 2 times" in dup.trails[0].note
    double = names[("fencing", "double-completion")]
    steps = double.trails[0].steps
    assert [s.f for s in steps] == ["enqueue", "claim", "claim", "complete", "complete"]
    assert [s.token for s in steps] == [None, 1, 2, 1, 2]
    # the faults in force at each call: the kill spans events 2..7
    assert steps[0].faults == ("kill n1",) and steps[1].faults == ("kill n1",)
    assert steps[2].faults == ()
    flagged = {s.index for s in steps if s.flagged}
    assert flagged == {10, 12}


def test_item_trails_list_every_id_but_cap_trails() -> None:
    from harness.checker import queue

    ops = []
    for i in range(7):
        ops += [invoke(0, "enqueue", qitem(f"i{i}")), ok(0, "enqueue", qitem(f"i{i}"))]
    h = history(*ops)
    groups = data.item_trails(h, {"queue": queue(h).to_dict()}, max_items=3)
    (lost,) = groups
    assert lost.count == 7 and len(lost.ids) == 7 and len(lost.trails) == 3


_ITEM_IDS = st.one_of(
    st.text(min_size=1, max_size=8), st.integers(-5, 10**12),
    st.lists(st.one_of(st.integers(0, 9), st.text(max_size=3)), min_size=1, max_size=3))


@settings(max_examples=60, deadline=None)
@given(st.lists(_ITEM_IDS, min_size=2, max_size=6, unique_by=item_key))
def test_every_named_item_finds_its_calls_after_a_results_json_round_trip(ids: list[Any]) -> None:
    """One spelling of an item id (``item_key``) in results and in the report's index.

    Ids of any JSON type (EDN histories give vectors; a list id comes back from
    JSON as a list, from the checker as a tuple) must name the same calls, so
    a report rendered from ``results.json`` shows every anomaly's trail.
    """
    import json as _json

    from harness.checker import queue

    lost, dup = ids[: len(ids) // 2], ids[len(ids) // 2:]
    ops = []
    for i in ids:
        ops += [invoke(0, "enqueue", qitem(i)), ok(0, "enqueue", qitem(i))]
    for i in dup:  # delivered twice
        for p in (1, 2):
            ops += [invoke(p, "dequeue", None), ok(p, "dequeue", qitem(i))]
    h = history(*ops)
    result = _json.loads(_json.dumps(queue(h).to_dict()))
    groups = {g.name: g for g in data.item_trails(h, {"queue": result})}
    assert set(groups) == {"lost", "duplicated"}
    assert groups["lost"].count == len(lost) and groups["duplicated"].count == len(dup)
    for g in groups.values():
        assert all(t.steps for t in g.trails), [t.item for t in g.trails if not t.steps]


def test_a_resend_in_a_trail_names_the_attempt_it_repeats() -> None:
    first = invoke(0, "enqueue", qitem("a"))
    resend = replace(invoke(5, "enqueue", qitem("a")),
                     extra=(("idempotency", "request-id"), ("retry_of", 0)))
    h = history(first, info(0, "enqueue", qitem("a")), resend, ok(5, "enqueue", qitem("a")))
    results = {"queue": {"lost": ["a"], "lost_count": 1, "anomalies": ["lost"]}}
    (lost,) = data.item_trails(h, results)
    assert [(s.index, s.process, s.retry_of) for s in lost.trails[0].steps] == [
        (0, 0, None), (2, 5, 0)]


def test_no_queue_results_no_trails() -> None:
    assert data.item_trails(stale_read(), {"linearizable": {"valid": False}}) == []


# --------------------------------------------------------------------------- timeline, LB


def test_timeline_columns_and_pages_hold_every_call_once() -> None:
    ops = []
    for i in range(25):
        ops += [invoke(i % 3, "read", ["x", None]), ok(i % 3, "read", ["x", i])]
    ops += [invoke(7, "write", ["x", 1]), fail(7, "write", ["x", 1]),
            invoke(8, "write", ["x", 2]), info(8, "write", ["x", 2]), invoke(9, "write", ["x", 3])]
    h = timed(history(*ops), step_ns=1_000)
    cols = timeline_columns(h, concurrency=5)
    assert len(cols) == 28
    assert cols.lanes == ("w0", "w1", "w2", "w3", "w4")  # 7, 8, 9 are workers 2, 3, 4
    assert cols.process[-3:] == (7, 8, 9)
    assert cols.type[-3:] == (1, 2, 2) and cols.end_us[-1] == -1 and cols.end_us[-2] >= 0
    pages = paginate(cols, per_page=10)
    assert [(p.first, p.last) for p in pages] == [(0, 10), (10, 20), (20, 28)]
    assert pages[0].lo_us == cols.start_us[0]
    for a, b in itertools.pairwise(pages):
        assert a.hi_us == b.lo_us  # pages tile the run's time
    assert pages[-1].hi_us >= max(cols.end_us)
    with pytest.raises(ValueError):
        paginate(cols, per_page=0)


def test_lb_lanes_hold_each_state_until_the_next_change() -> None:
    events: list[dict[str, Any]] = [
        {"time": 10, "server": "n1", "status": "UP", "check": "L7OK"},
        {"time": 10, "server": "n2", "status": "UP", "check": "L7OK"},
        {"time": 50, "server": "n1", "status": "DOWN", "check": "L7STS"},
        {"time": 70, "server": "n1", "status": "UP", "check": "L7OK"},
        {"server": "n3"},  # malformed: skipped
    ]
    lanes = lb_lanes(events, end_ns=100)
    assert sorted(lanes) == ["n1", "n2"]
    assert [(s.status, s.start_ns, s.end_ns) for s in lanes["n1"]] == [
        ("UP", 10, 50), ("DOWN", 50, 70), ("UP", 70, 100)]
    assert [(s.status, s.start_ns, s.end_ns) for s in lanes["n2"]] == [("UP", 10, 100)]


# --------------------------------------------------------------------------- latency


def test_latency_quantiles_per_f_and_outcome() -> None:
    ops = []
    for i in range(1, 11):  # reads of 1..10 ms
        ops += [Op(-1, 0, OpType.INVOKE, 0, "read", None),
                Op(-1, i * 1_000_000, OpType.OK, 0, "read", 1)]
    ops += [Op(-1, 0, OpType.INVOKE, 1, "write", 1), Op(-1, 500_000_000, OpType.INFO, 1,
                                                         "write", 1)]
    h = History(ops, reindex=True)
    series = data.latency_series(h)
    assert len(series.t_s) == 11
    rows = {(r.f, r.outcome): dict(r.quantiles) for r in data.latency_quantiles(series)}
    assert rows[("read", "ok")] == {0.5: 5.0, 0.9: 9.0, 0.99: 10.0, 0.999: 10.0, 1.0: 10.0}
    assert rows[("read", "all")] == rows[("read", "ok")]
    assert rows[("write", "info")][1.0] == 500.0
    assert data.nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    with pytest.raises(ValueError):
        data.nearest_rank([], 0.5)


def test_downsample_keeps_each_bins_extremes() -> None:
    n = 10_000
    series = data.LatencySeries(tuple(i / 1000 for i in range(n)),
                                tuple(float(i % 97) for i in range(n)),
                                tuple("ok" for _ in range(n)), tuple("read" for _ in range(n)))
    spiky = replace(series, latency_ms=(*series.latency_ms[:5000], 9999.0,
                                        *series.latency_ms[5001:]))
    small = data.downsample(spiky, max_points=1000, bins=100)
    assert len(small.t_s) <= 300
    assert 9999.0 in small.latency_ms and 0.0 in small.latency_ms
    assert data.downsample(series, max_points=n) is series


def test_throughput_counts_completions_per_second() -> None:
    ops = []
    for i in range(20):  # 20 completions within the first second, one failed
        t = i * 50_000_000
        ops += [Op(-1, t, OpType.INVOKE, 0, "read", None),
                Op(-1, t + 1, OpType.FAIL if i == 3 else OpType.OK, 0, "read", None)]
    h = History(ops, reindex=True)
    thr = data.throughput_series(h, bins_max=10)
    assert thr.bin_s == 0.1
    assert sum(thr.per_outcome["ok"]) * thr.bin_s == pytest.approx(19)
    assert sum(thr.per_outcome["fail"]) * thr.bin_s == pytest.approx(1)


# --------------------------------------------------------------------------- logs


def test_log_lines_get_wall_times_and_continuations_inherit_them() -> None:
    text = (
        "2026-11-25 09:53:43,653 node1 INFO started\n"
        "Traceback (most recent call last):\n"
        "127.0.0.1:41192 [25/Nov/2026:09:53:44.556] clients nodes/n1 200\n"
        "[WARNING] Server nodes/n1 is DOWN\n"
    )
    lines = parse_log(text)
    assert [ln.lineno for ln in lines] == [1, 2, 3, 4]
    t0 = lines[0].wall_s
    assert t0 is not None and lines[1].wall_s == t0
    assert lines[2].wall_s == pytest.approx(t0 + 0.903)
    assert lines[3].wall_s == lines[2].wall_s
    ex = excerpt(lines, t0 + 0.5, t0 + 2, max_lines=1)
    assert ex.total == 2 and [ln.lineno for ln in ex.lines] == [3] and ex.omitted == 1
    assert parse_log("no stamp\n")[0].wall_s is None


def test_parse_log_reads_etcd_and_redis_stamps() -> None:
    from datetime import UTC, datetime

    utc = datetime(2026, 11, 30, 10, 40, 1, tzinfo=UTC).timestamp()
    etcd = '{"level":"info","ts":"2026-11-30T10:40:01.123Z","msg":"elected leader"}'
    assert parse_log(etcd)[0].wall_s == pytest.approx(utc + 0.123)
    shifted = '{"ts":"2026-11-30T12:40:01.5+02:00"}'
    assert parse_log(shifted)[0].wall_s == pytest.approx(utc + 0.5)
    local = datetime(2026, 11, 30, 10, 40, 1).timestamp()
    redis = "7:M 30 Nov 2026 10:40:01.250 * Ready to accept connections tcp"
    assert parse_log(redis)[0].wall_s == pytest.approx(local + 0.25)
    assert parse_log("2026-11-30 10:40:01,007 INFO x")[0].wall_s == pytest.approx(local + 0.007)
    assert parse_log("build 2026-99-99T99:99:99 junk")[0].wall_s is None


def test_lease_findings_get_item_trails_with_their_ops_flagged() -> None:
    from harness.checker.lease import lease

    def at(t: float, op: Op) -> Op:
        return replace(op, time=int(t * 1e9))

    lease_v = {"lease_ms": 1000}
    h = history(at(0.0, invoke(0, "claim", lease_v)), at(0.01, ok(0, "claim", qitem("a", token=1))),
                at(0.3, invoke(1, "claim", lease_v)), at(0.31, ok(1, "claim", qitem("a", token=2))))
    result = lease(h)
    assert result.valid is False
    (g,) = data.item_trails(h, {"lease": result.to_dict()})
    assert (g.checker, g.name, g.anomaly, g.ids) == ("lease", "lease-overlap", True, ("a",))
    (t,) = g.trails
    assert "claim op 2 (token 2)" in t.note
    assert {s.index for s in t.steps if s.flagged} == {0, 2}
