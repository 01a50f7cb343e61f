"""The total-queue checker on small named cases, with the whole result compared."""

from __future__ import annotations

from typing import Any

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
        "failed_then_seen_count": 0, "failed_then_seen": [], "allow_duplicates": False,
        "anomalies": [],
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
