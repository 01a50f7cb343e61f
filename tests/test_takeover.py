"""The takeover workload: the nodes' own workers, a node killed mid-item, nothing lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.checker.queue import queue
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run
from harness.testing import history, invoke, ok


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def test_killed_workers_items_are_taken_over_and_completed(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("kill", 2.0, 3.0, {"node": "n1"}),
                           Fault("pause", 6.0, 2.0, {"node": "n2"})), seed=9)
    r = run(RunConfig(workload="takeover", nemesis=("kill", "pause"), time_limit_s=9,
                      seed=9, schedule=sched, reports_dir=tmp_path, rate_hz=30))
    assert r.error is None
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items()}
    q = r.results["queue"].details
    assert q["acknowledged_count"] > 50 and q["lost_count"] == 0
    reads = [json.loads(line) for line in (r.run_dir / "history.jsonl").read_text().splitlines()]
    finals = [op["value"] for op in reads if op["f"] == "read-item" and op["type"] == "ok"]
    assert sum(1 for v in finals if v.get("state") == "completed") >= q["acknowledged_count"]
    # the kill landed mid-item: some item needed a second attempt by another worker
    assert any((v.get("attempts") or 0) >= 2 for v in finals), finals[:5]


def test_dead_lettered_item_is_an_anomaly_not_lost_and_unread_item_is_unresolved() -> None:
    item = {"id": "t1", "payload": 1}
    h = history(
        invoke(0, "enqueue", item), ok(0, "enqueue", item),
        invoke(0, "enqueue", {"id": "t2"}), ok(0, "enqueue", {"id": "t2"}),
        invoke(1, "read-item", {"id": "t1"}), ok(1, "read-item", {"id": "t1", "state": "dead"}),
    )
    from harness.testing import fail as failed

    h2 = history(*h.ops[:4],
                 invoke(1, "read-item", {"id": "t1"}),
                 ok(1, "read-item", {"id": "t1", "state": "completed"}),
                 invoke(1, "read-item", {"id": "t2"}), failed(1, "read-item", {"id": "t2"}))
    opts = {"final_states": ("completed",), "consume_fs": ()}
    r = queue(h, **opts)
    assert r.valid is False and r.details["dead_lettered"] == ["t1"]
    assert r.details["lost_count"] == 0 and r.details["unresolved"] == ["t2"]
    r2 = queue(h2, **opts)
    assert r2.valid == "unknown" and r2.details["unresolved"] == ["t2"]
