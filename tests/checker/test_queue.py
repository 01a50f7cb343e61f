"""The total-queue checker on small named cases, with the whole result compared."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checker.queue import queue
from harness.examples import simulate_queue, simulate_work_items
from harness.testing import fail, history, info, invoke, ok


def item(i: int) -> dict[str, Any]:
    return {"id": i, "payload": f"p{i}"}


def base(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "attempt_count": 0, "acknowledged_count": 0, "failed_count": 0, "delivered_count": 0,
        "distinct_delivered_count": 0, "enqueue_calls": 0, "consume_calls": 0,
        "lost_count": 0, "lost": [], "lost_ids_certain": True, "unresolved_count": 0,
        "unresolved": [], "indeterminate_consumes": 0, "unexpected_count": 0, "unexpected": [],
        "duplicated_count": 0, "duplicated": {}, "recovered_count": 0, "recovered": [],
        "failed_then_seen_count": 0, "failed_then_seen": [], "unfinished_count": 0,
        "unfinished": [], "unfinished_states": {}, "stuck_count": 0, "stuck": [],
        "stuck_for_ms": {}, "stuck_after_ms": None, "vanished_count": 0, "vanished": [],
        "dead_lettered_count": 0, "dead_lettered": [], "allow_duplicates": False,
        "anomalies": [], "progress": [],
    }
    d.update(kw)
    return d


def test_sane() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "enqueue", item(2)), ok(1, "enqueue", item(2)),
        invoke(0, "dequeue"), ok(0, "dequeue", item(1)),
        invoke(1, "drain"), ok(1, "drain", [item(2)]),
    )
    r = queue(h)
    assert r.valid is True
    assert dict(r.details) == base(attempt_count=2, acknowledged_count=2, delivered_count=2,
                                   distinct_delivered_count=2, enqueue_calls=2, consume_calls=2)


def test_pathological() -> None:
    """Lost, duplicated, unexpected, failed-then-seen and recovered, all at once."""
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),  # lost
        invoke(0, "enqueue", item(2)), ok(0, "enqueue", item(2)),  # duplicated
        invoke(0, "enqueue", item(3)), fail(0, "enqueue", item(3)),  # failed, then seen
        invoke(0, "enqueue", item(4)), info(0, "enqueue", item(4)),  # recovered
        invoke(1, "dequeue"), ok(1, "dequeue", item(2)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(2)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(3)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(4)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(99)),  # unexpected
        invoke(1, "dequeue"), ok(1, "dequeue", None),  # empty
    )
    r = queue(h)
    assert r.valid is False
    assert dict(r.details) == base(
        attempt_count=4, acknowledged_count=2, failed_count=1, delivered_count=5,
        distinct_delivered_count=4, enqueue_calls=4, consume_calls=6,
        lost_count=1, lost=[1], unexpected_count=1, unexpected=[99],
        duplicated_count=1, duplicated={"2": 2}, recovered_count=1, recovered=[4],
        failed_then_seen_count=1, failed_then_seen=[3],
        anomalies=["lost", "unexpected", "failed-then-seen", "duplicated"],
    )


def test_duplicates_can_be_allowed_but_are_still_reported() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(1)),
        invoke(1, "dequeue"), ok(1, "dequeue", item(1)),
    )
    assert queue(h).valid is False
    r = queue(h, allow_duplicates=True)
    assert r.valid is True and r.details["duplicated"] == {"1": 2}


def test_indeterminate_dequeue_never_makes_a_false_lost() -> None:
    """A timed-out dequeue may have taken the missing item: unknown, not lost."""
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "dequeue"), info(1, "dequeue"),
    )
    r = queue(h)
    assert r.valid == "unknown"
    assert r.details["lost_count"] == 0 and r.details["unresolved"] == [1]


def test_more_missing_than_indeterminate_dequeues_is_surely_lost() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(0, "enqueue", item(2)), ok(0, "enqueue", item(2)),
        invoke(1, "dequeue"), info(1, "dequeue"),
    )
    r = queue(h)
    assert r.valid is False
    assert r.details["lost_count"] == 1 and r.details["lost_ids_certain"] is False


def test_indeterminate_completion_names_its_item() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(0, "enqueue", item(2)), ok(0, "enqueue", item(2)),
        invoke(1, "complete", {"id": 1, "token": 5}), info(1, "complete", {"id": 1, "token": 5}),
    )
    r = queue(h)
    assert r.valid is False  # item 2 is surely lost; item 1 is only unresolved
    assert r.details["lost"] == [2] and r.details["unresolved"] == [1]


def test_final_observation_counts_as_seen() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "complete", {"id": 1, "token": 5}), info(1, "complete", {"id": 1, "token": 5}),
        invoke(2, "read-item", {"id": 1}), ok(2, "read-item", {"id": 1, "state": "completed"}),
    )
    assert queue(h).valid is True


def test_repeated_completion_with_same_token_is_one_delivery() -> None:
    done = {"id": 1, "token": 5, "result": "r"}
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "complete", done), ok(1, "complete", done),
        invoke(1, "complete", done), ok(1, "complete", done),
    )
    r = queue(h)
    assert r.valid is True and r.details["delivered_count"] == 1


def test_indeterminate_drain_makes_missing_unresolved() -> None:
    h = history(
        invoke(0, "enqueue", item(1)), ok(0, "enqueue", item(1)),
        invoke(1, "drain"), info(1, "drain"),
    )
    assert queue(h).valid == "unknown"


def test_empty_history_is_valid() -> None:
    assert queue(history()).valid is True


def test_simulated_queues() -> None:
    for seed in range(5):
        assert queue(simulate_queue(seed)).valid is True
        lost = queue(simulate_queue(seed, bug="lost"))
        assert lost.valid is False and "lost" in lost.details["anomalies"]
        dup = queue(simulate_queue(seed, bug="duplicate"))
        assert dup.valid is False and dup.details["anomalies"] == ["duplicated"]
        assert queue(simulate_work_items(seed)).valid is True


# --- safety and progress kept apart: a read that shows an item is never a loss ---

TAKEOVER = {"final_states": ("completed",), "consume_fs": ()}


def at(op: Any, t_ms: float) -> Any:
    """The op at ``t_ms`` on the history's clock (ns), for lease arithmetic."""
    from dataclasses import replace

    return replace(op, time=int(t_ms * 1e6))


def enq(process: int, iid: str) -> list[Any]:
    return [invoke(process, "enqueue", {"id": iid}), ok(process, "enqueue", {"id": iid})]


def read(process: int, iid: str, t_ms: float, state: Any, token: Any = None) -> list[Any]:
    v: dict[str, Any] = {"id": iid, "state": state}
    if token is not None:
        v["token"] = token
    return [at(invoke(process, "read-item", {"id": iid}), t_ms),
            at(ok(process, "read-item", v), t_ms + 1)]


def test_backlog_left_queued_or_processing_is_unfinished_not_lost() -> None:
    h = history(*enq(0, "t1"), *enq(0, "t2"), *enq(0, "t3"),
                *read(1, "t1", 10, "queued"), *read(1, "t2", 12, "processing", 7),
                *read(1, "t3", 14, "completed"))
    r = queue(h, **TAKEOVER, stuck_after_ms=3000)
    assert r.valid == "unknown"
    d = r.details
    assert d["lost_count"] == 0 and d["lost"] == []
    assert d["unfinished"] == ["t1", "t2"] and d["unfinished_states"] == {
        "processing": 1, "queued": 1}
    assert d["anomalies"] == [] and d["progress"] == ["unfinished"]
    assert "not lost" in d["reason"]


def test_processing_under_one_token_past_lease_and_grace_is_stuck() -> None:
    reads = [*read(1, "t1", 100, "processing", 5), *read(1, "t1", 5200, "processing", 5)]
    h = history(*enq(0, "t1"), *reads)
    r = queue(h, **TAKEOVER, stuck_after_ms=3000)
    assert r.valid is False and r.details["anomalies"] == ["stuck"]
    assert r.details["stuck"] == ["t1"] and r.details["stuck_for_ms"] == {"t1": 5099.0}
    # not judged without the system's bound, nor when the span is shorter than it
    assert queue(h, **TAKEOVER).valid == "unknown"
    assert queue(h, **TAKEOVER, stuck_after_ms=6000).details["unfinished"] == ["t1"]
    # a new token in between is a takeover: the clock starts again
    taken = history(*enq(0, "t1"), *read(1, "t1", 100, "processing", 5),
                    *read(1, "t1", 2000, "processing", 9), *read(1, "t1", 4500, "processing", 9))
    assert queue(taken, **TAKEOVER, stuck_after_ms=3000).details["unfinished"] == ["t1"]
    # and finishing later is fine
    done = history(*enq(0, "t1"), *reads, *read(1, "t1", 6000, "completed"))
    assert queue(done, **TAKEOVER, stuck_after_ms=3000).valid is True


def test_absent_is_lost_and_present_then_absent_vanished() -> None:
    h = history(*enq(0, "t1"), *enq(0, "t2"),
                *read(1, "t1", 10, None), *read(1, "t2", 20, "queued"), *read(1, "t2", 30, None))
    r = queue(h, **TAKEOVER)
    assert r.valid is False
    assert r.details["lost"] == ["t1"] and r.details["vanished"] == ["t2"]
    assert r.details["anomalies"] == ["lost", "vanished"]


def test_dead_letter_is_its_own_anomaly_and_unread_item_unresolved() -> None:
    h = history(*enq(0, "t1"), *enq(0, "t2"), *read(1, "t1", 10, "dead"))
    r = queue(h, **TAKEOVER)
    assert r.valid is False and r.details["anomalies"] == ["dead-lettered"]
    assert r.details["dead_lettered"] == ["t1"] and r.details["lost_count"] == 0
    assert r.details["unresolved"] == ["t2"]  # the history reads items, but never this one
    # the default final states accept a dead letter as done
    assert queue(history(*enq(0, "t1"), *read(1, "t1", 10, "dead"))).valid is True


def test_settle_record_of_the_final_phase_is_reported() -> None:
    from harness.history import NEMESIS

    note = {"backlog_start": 3, "backlog_end": 0, "stopped": "drained"}
    h = history(*enq(0, "t1"), info(NEMESIS, "settle", note), *read(1, "t1", 10, "completed"))
    assert queue(h, **TAKEOVER).details["settle"] == note


STATES = st.sampled_from(["queued", "processing", "completed", "dead", None])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), STATES, st.integers(0, 3),
                          st.sampled_from(["ok", "fail", "info"])), max_size=25),
       st.sets(st.integers(0, 5)))
def test_no_item_a_read_shows_present_is_ever_lost(
        reads_: list[tuple[int, Any, int, str]], acked: set[int]) -> None:
    """Whatever the final reads say and in whatever order, an item some answered
    read showed present is never counted lost."""
    ops: list[Any] = []
    for i in sorted(acked):
        ops += enq(0, f"t{i}")
    for n, (i, state, token, outcome) in enumerate(reads_):
        if outcome == "ok":
            ops += read(1, f"t{i}", n * 1000, state, token)
        else:
            builder = fail if outcome == "fail" else info
            ops += [at(invoke(1, "read-item", {"id": f"t{i}"}), n * 1000),
                    at(builder(1, "read-item", {"id": f"t{i}"}), n * 1000 + 1)]
    r = queue(history(*ops), **TAKEOVER, stuck_after_ms=2500)
    shown = {f"t{i}" for i, state, _, outcome in reads_ if outcome == "ok" and state is not None}
    assert not shown & set(r.details["lost"])
    if r.details["lost_count"]:
        assert r.valid is False
    for kind in ("unfinished", "stuck", "vanished", "dead_lettered"):
        assert set(r.details[kind]) <= shown


def test_a_system_that_promises_at_least_once_delivery_gets_its_duplicates_counted() -> None:
    """The runner records ``{"delivery": "at-least-once"}`` for a broker that redelivers
    by design: a twice-delivered item is counted and listed, not an anomaly; a loss
    still is."""
    item = {"id": "a"}
    ops = [invoke(0, "enqueue", item), ok(0, "enqueue", item),
           invoke(1, "dequeue", None), ok(1, "dequeue", item),
           invoke(2, "dequeue", None), ok(2, "dequeue", item)]
    plain = queue(history(*ops))
    assert plain.valid is False and plain.details["anomalies"] == ["duplicated"]
    promised = history(info("nemesis", "promises", {"delivery": "at-least-once"},
                               error=None), *ops)
    r = queue(promised)
    assert r.valid is True and r.details["duplicated_count"] == 1
    assert r.details["allow_duplicates"] is True and r.details["delivery"] == "at-least-once"
    lost = history(info("nemesis", "promises", {"delivery": "at-least-once"}, error=None),
                   invoke(0, "enqueue", {"id": "b"}), ok(0, "enqueue", {"id": "b"}),
                   invoke(1, "drain", None), ok(1, "drain", []))
    assert queue(lost).details["anomalies"] == ["lost"]
