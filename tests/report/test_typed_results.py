"""The report reads typed checker results: a Result, its results.json entry (format 1 or 2)
and a hand-edited entry all give the same sections, and never crash it."""

from __future__ import annotations

import json
from typing import Any

from test_data import queue_history

from harness.analysis import summarize
from harness.checker import fencing, queue
from harness.checker.details import QueueDetails
from harness.checker.result import Result, result_from_dict
from harness.report import data, findings


def _trail_names(groups: list[data.TrailGroup]) -> list[tuple[str, str, int, tuple[str, ...]]]:
    return [(g.checker, g.name, g.count, g.ids) for g in groups]


def test_trails_are_the_same_from_a_result_and_from_its_json_entry() -> None:
    h = queue_history()
    typed_results = {"queue": queue(h), "fencing": fencing(h)}
    entries = {k: json.loads(json.dumps(r.to_dict())) for k, r in typed_results.items()}
    from_typed = data.item_trails(h, typed_results)
    from_json = data.item_trails(h, entries)
    assert _trail_names(from_typed) == _trail_names(from_json)
    assert ("queue", "lost", 1, ("a",)) in _trail_names(from_json)


def test_a_format_1_entry_reads_as_a_format_2_one() -> None:
    """Format 2 changed no key of an entry: the loader reads both the same way."""
    h = queue_history()
    entry = json.loads(json.dumps(queue(h).to_dict()))
    r = data.checker_result(entry, "queue")
    assert r is not None and isinstance(r.details, QueueDetails)
    assert r.details.lost_count == 1 and r.to_dict() == entry


def test_a_hand_edited_verdict_reads_as_unknown_with_its_findings() -> None:
    entry: dict[str, Any] = {"valid": "yes", "lost": ["a"], "lost_count": 1,
                             "anomalies": ["lost"]}
    r = data.checker_result(entry, "queue")
    assert r is not None and r.valid == "unknown"
    assert data.checker_result(["not", "a", "result"], "queue") is None
    assert data.checker_result(None, "queue") is None
    assert findings.availability_view({"valid": 3, "progress": ["unavailable"],
                                       "reason": "r"}) is not None
    assert findings.idempotency_view("garbage") is None


def test_summaries_read_attributes_of_results_rebuilt_from_json() -> None:
    h = queue_history()
    for r in (queue(h), fencing(h)):
        back = result_from_dict(r.checker, json.loads(json.dumps(r.to_dict())))
        assert summarize(back) == summarize(r)
    assert summarize(result_from_dict("queue", {"valid": False, "acknowledged_count": 3,
                                                "lost_count": 2, "anomalies": ["lost"]})) \
        == "3 acked, 2 lost"
    assert summarize(Result(True, "stats", {"count": 7})) == "7 calls"
    assert summarize(Result(False, "linearizable", {"counterexample": {"key": "k"}})) \
        == "not linearizable (partition 'k')"
    assert summarize(Result(True, "linearizable", {"op_count": 5, "partitions": 2})) \
        == "5 ops, 2 partition(s)"
    assert summarize(Result(True, "fencing", {"completed_items": 4, "anomalies": []})) \
        == "4 items completed once"
