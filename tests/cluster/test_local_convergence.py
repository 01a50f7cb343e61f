"""Replica convergence on real local clusters of the reference system: after a
run the runner reads every node's own applied state; a correct cluster's three
replicas agree, and a cluster whose replicas apply the same log differently
(seeded bug ``local_clock``) is caught by the convergence checker alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.checker.convergence import REPLICA_STATE, REPLICAS
from harness.cli import main
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def replica_reads(run_dir: Path) -> list[dict[str, Any]]:
    ops = [json.loads(line) for line in
           (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    return [o for o in ops if o["process"] == REPLICAS and o["f"] == REPLICA_STATE]


def test_three_replicas_agree_after_a_run_with_a_kill(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("kill", 1.0, 2.0, {"node": "follower"}),), seed=3)
    r = run(RunConfig(workload="queue", nemesis=("kill",), time_limit_s=4, seed=3,
                      schedule=sched, reports_dir=tmp_path, rate_hz=30))
    assert r.error is None
    conv = r.results["convergence"]
    assert conv.valid is True, conv.to_dict()
    reads = replica_reads(r.run_dir)
    oks = [o["value"] for o in reads if o["type"] == "ok"]
    assert sorted(v["node"] for v in oks) == ["n1", "n2", "n3"]
    assert len({v["applied"] for v in oks}) == 1 and len({v["digest"] for v in oks}) == 1
    assert oks[0]["applied"] > 0 and oks[0]["items"]  # the run's items are in the dump
    acked = r.results["queue"].details["acknowledged_count"]
    assert acked > 0 and len(oks[0]["items"]) >= acked
    # harness check of the run folder plans the same checker from the history alone
    assert main(["check", str(r.run_dir)]) == 0


def test_replicas_that_apply_one_log_differently_are_caught(tmp_path: Path) -> None:
    r = run(RunConfig(workload="queue", nemesis=(), time_limit_s=3, seed=4,
                      schedule=FaultSchedule((), seed=4), reports_dir=tmp_path, rate_hz=30,
                      bug="local_clock"))
    assert r.error is None
    conv = r.results["convergence"]
    assert conv.valid is False, conv.to_dict()
    assert conv.details["anomalies"] == ["divergent-replicas"]
    diffs = conv.details["differences"]
    assert diffs and all(d["kind"] == "items" for d in diffs)
    assert {"updated_ms", "enqueued_ms"} & set(diffs[0]["fields"])
    assert {d["node"] for d in diffs} <= {"n1", "n2", "n3"}
    # every client-side checker passes: only comparing replicas shows this bug
    others = {k: v.valid for k, v in r.results.items() if k != "convergence"}
    assert all(v is True for v in others.values()), others
    assert r.valid is False
