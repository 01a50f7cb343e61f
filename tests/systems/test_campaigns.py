"""Fault campaigns against two real third-party systems, through the public interface only.

What is publicly known about them is what the harness must find:

* etcd 3.4 (Raft) keeps registers linearizable and a transactional queue
  exact under partitions, kills and pauses: the runs must come out valid
  (not unknown), with the faults really applied.
* Redis with Sentinel replicates asynchronously; a partition that isolates
  the primary with the clients pinned to it lets that primary keep
  acknowledging writes that are discarded when Sentinel promotes a replica
  (Jepsen, 2013). The queue run must be invalid with lost items, and the
  run's report must show those items.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from run_records import applied, nemesis_ops

from harness.cluster.docker import engine_available
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, RunResult, run

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _docker() -> None:
    require(engine_available(), "no Docker engine reachable")


def verdicts(r: RunResult) -> dict[str, Any]:
    return {k: (v.valid, v.details.get("anomalies")) for k, v in r.results.items()}


@pytest.mark.parametrize("workload", ["register", "queue"])
def test_etcd_is_valid_under_partitions_kills_and_pauses(workload: str, tmp_path: Path) -> None:
    sched = FaultSchedule((
        Fault("partition", 2.0, 4.0, {"plan": "isolate-leader"}),
        Fault("kill", 8.0, 3.0, {"node": "leader"}),
        Fault("pause", 13.0, 3.0, {"node": "leader"}),
        Fault("partition", 18.0, 3.0, {"plan": "random-halves", "seed": 7}),
    ), seed=7)
    r = run(RunConfig(system="etcd", workload=workload, nemesis=("partition", "kill", "pause"),
                      time_limit_s=22.0, concurrency=6, rate_hz=60.0, backend="docker",
                      seed=7, schedule=sched, reports_dir=tmp_path, op_timeout_s=2.0))
    assert r.error is None, r.error
    assert applied(r) >= {"partition", "kill", "pause"}, nemesis_ops(r)
    assert r.valid is True, f"{verdicts(r)} ({r.run_dir})"
    assert r.op_count > 300


@pytest.mark.slow  # minutes of a broker campaign: the slow tier (README)
def test_redis_sentinel_loses_acknowledged_items(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("partition", 3.0, 10.0, {"plan": "isolate-leader"}),), seed=3)
    r = run(RunConfig(system="redis", workload="queue", nemesis=("partition",),
                      time_limit_s=16.0, concurrency=6, rate_hz=80.0, backend="docker",
                      seed=3, schedule=sched, reports_dir=tmp_path, op_timeout_s=2.0))
    assert r.error is None, r.error
    assert "partition" in applied(r)
    q = r.results["queue"]
    assert r.valid is False and q.valid is False, verdicts(r)
    assert "lost" in q.details["anomalies"]
    lost = [str(x) for x in q.details["lost"]]
    assert q.details["lost_count"] > 0 and lost
    # every lost item was acknowledged: its enqueue completed ok in the history
    ops = [json.loads(ln) for ln in (r.run_dir / "history.jsonl").read_text().splitlines()
           if ln.strip()]
    acked = {str(o["value"]["id"]) for o in ops if o["f"] == "enqueue" and o["type"] == "ok"}
    assert set(lost) <= acked
    # and the report shows them
    # the Redis server's own log file (HasLogFiles) was kept: the demotion is in it
    log = (r.run_dir / "logs" / "n1.redis.log").read_text(errors="replace")
    assert "MASTER" in log.upper()
    html = (r.run_dir / "report.html").read_text()
    assert "lost" in html
    assert all(iid in html for iid in lost[:20]), lost[:20]


def test_etcd_is_valid_under_overlapping_faults(tmp_path: Path) -> None:
    """Overlapping faults in Docker: a cut between the leader and one follower stays in
    force while the cut-off node is killed and restarted, the leader's links are slowed
    and the other follower is paused; each fault's end undoes only its own effect."""
    sched = FaultSchedule((
        Fault("partition", 2.0, 8.0, {"plan": "cut", "between": [["leader", "follower"]]}),
        Fault("kill", 3.0, 2.0, {"node": "cut-off"}),
        Fault("latency", 4.0, 4.0, {"node": "leader", "latency_ms": 50}),
        Fault("pause", 6.0, 2.0, {"node": "follower"}),
    ), seed=5)
    r = run(RunConfig(system="etcd", workload="queue",
                      nemesis=("partition", "kill", "latency", "pause"), time_limit_s=12.0,
                      concurrency=6, rate_hz=60.0, backend="docker", seed=5, schedule=sched,
                      reports_dir=tmp_path, op_timeout_s=2.0))
    assert r.error is None, r.error
    assert applied(r) == {"partition", "kill", "latency", "pause"}, nemesis_ops(r)
    done = [o for o in nemesis_ops(r) if o["type"] != "invoke"]
    order = [o["f"] for o in done]
    assert order.index("start-kill") < order.index("stop-kill") < order.index("stop-partition")
    starts = {o["f"]: o["value"] for o in done if o["f"].startswith("start-")}
    stops = {o["f"]: o["value"] for o in done if o["f"].startswith("stop-")}
    # the cut-off node is the one the cut separates from the leader
    cut = starts["start-partition"]["grudge"]
    assert cut[starts["start-kill"]["node"]], cut
    for kind in ("partition", "latency"):
        assert sorted(stops[f"stop-{kind}"]["removed"]) == sorted(starts[f"start-{kind}"]["added"])
    assert r.valid is True, f"{verdicts(r)} ({r.run_dir})"
