"""Typed checker details: a Mapping over exactly the checker's keys; results.json round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.checker.compose import compose
from harness.checker.details import (
    DETAILS_TYPES,
    ConvergenceDetails,
    Details,
    FencingDetails,
    QueueDetails,
    details_for,
)
from harness.checker.fencing import fencing
from harness.checker.queue import queue
from harness.checker.result import UNKNOWN, Result, result_from_dict, typed
from harness.checker.stats import stats
from harness.store import RESULTS_FORMAT, RunStore, results_format
from harness.testing import history, invoke, ok

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                         max_size=3),
                     max_leaves=8)
_keys = st.sampled_from(sorted({f for c in DETAILS_TYPES.values() for f in c.field_names()}
                               | {"extra", "keys_set", "valid", "zz"})) | st.text(max_size=6)


@given(st.sampled_from([*DETAILS_TYPES, "other"]), st.dictionaries(_keys, _json, max_size=8))
def test_any_mapping_round_trips_key_for_key(checker: str, d: dict[str, Any]) -> None:
    """Whatever keys a checker (or a hand-edited results.json) has, none is lost or added."""
    t = details_for(checker, d)
    assert list(t) == list(d)
    assert dict(t) == d and t == d and d == t
    assert json.dumps(dict(t), sort_keys=True) == json.dumps(d, sort_keys=True)
    assert t.to_dict() == d and type(t.to_dict()) is dict
    for k, v in d.items():
        assert t[k] == v
        if k in type(t).field_names():
            assert getattr(t, k) == v
        else:
            assert t.extra[k] == v


def test_absent_fields_read_as_defaults_but_are_not_keys() -> None:
    t = QueueDetails.of({"lost_count": 2, "lost": [1, 2]})
    assert t.lost_count == 2 and t.stuck_count == 0 and t.anomalies == () and t.reason is None
    assert "stuck_count" not in t and t.get("stuck_count") is None
    with pytest.raises(KeyError):
        t["stuck_count"]
    t2 = t.with_(elapsed_s=0.5)
    assert t2.elapsed_s == 0.5 and list(t2) == ["lost_count", "lost", "elapsed_s"]
    assert "elapsed_s" not in t  # frozen: the original is unchanged


def _queue_history() -> Any:
    return history(invoke(0, "enqueue", 1), ok(0, "enqueue", 1),
                   invoke(1, "enqueue", 2), ok(1, "enqueue", 2),
                   invoke(0, "dequeue"), ok(0, "dequeue", 1),
                   invoke(0, "drain"), ok(0, "drain", []))


def test_checkers_return_typed_details_with_the_keys_they_always_had() -> None:
    h = _queue_history()
    r = queue(h)
    assert isinstance(r.details, QueueDetails)
    assert r.valid is False and r.details.lost_count == 1 and list(r.details.anomalies) == ["lost"]
    assert r.details["lost_count"] == 1 and "settle" not in r.details
    out = r.to_dict()
    assert set(out) == {"valid", "checker", *r.details.keys_set}
    f = fencing(history(invoke(0, "claim"), ok(0, "claim", {"id": 1, "token": 3})))
    assert isinstance(f.details, FencingDetails) and f.details.claimed_items == 1


def test_compose_keeps_details_typed_and_results_json_rebuilds_them() -> None:
    h = _queue_history()
    composed = compose({"queue": queue, "stats": stats})(h)
    results = composed.details["results"]
    assert isinstance(results["queue"].details, QueueDetails)
    assert results["queue"].details.elapsed_s is not None
    for name, r in results.items():
        back = result_from_dict(name, json.loads(json.dumps(r.to_dict())))
        assert back.to_dict() == json.loads(json.dumps(r.to_dict()))
        assert type(back.details) is type(r.details)
        assert back.valid == r.valid and back.checker == r.checker


def test_result_from_dict_keeps_unknown_keys_and_names_the_checker() -> None:
    r = result_from_dict("queue", {"valid": "unknown", "lost_count": 3, "new_in_v3": [1],
                                   "error": "boom"})
    assert r.checker == "queue" and r.valid == UNKNOWN and r.error == "boom"
    assert isinstance(r.details, QueueDetails)
    assert r.details.lost_count == 3 and r.details.extra == {"new_in_v3": [1]}
    assert r.to_dict() == {"valid": "unknown", "checker": "queue", "lost_count": 3,
                           "new_in_v3": [1], "error": "boom"}
    with pytest.raises(ValueError):
        result_from_dict("queue", {"valid": "maybe"})
    with pytest.raises(ValueError):
        result_from_dict("queue", [1, 2])  # type: ignore[arg-type]


def test_a_result_built_with_a_plain_dict_gets_typed_details() -> None:
    r = Result(True, "fencing", {"completed_items": 4})
    assert isinstance(r.details, FencingDetails) and r.details.completed_items == 4
    assert typed(r) is r
    assert type(Result(True, "mystery", {"a": 1}).details) is Details
    unnamed = Result(True, details={"position": 3})  # convergence names itself only in compose
    named = typed(unnamed, "convergence")
    assert named.checker == "convergence" and FencingDetails.coerce({}).claimed_items == 0
    assert isinstance(named.details, ConvergenceDetails) and named.details.position == 3
    assert dict(named.details) == {"position": 3} and named.details.reason is None


def test_results_json_is_stamped_with_its_format(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_json("results.json", {"valid": True, "results": {}})
    store.write_json("schedule.json", {"faults": []})
    store.write_json("details.json", QueueDetails.of({"lost": [1]}))  # typed, not its repr
    assert json.loads((tmp_path / "details.json").read_text()) == {"lost": [1]}
    loaded = json.loads((tmp_path / "results.json").read_text())
    assert loaded["format"] == RESULTS_FORMAT == 2 and results_format(loaded) == 2
    assert "format" not in json.loads((tmp_path / "schedule.json").read_text())
    assert results_format({"valid": True}) == 1  # written before the key existed
    assert results_format({"format": "2"}) is None and results_format([]) is None
