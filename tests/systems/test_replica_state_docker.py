"""Replica reads of real third-party systems in Docker, through the public
interface only: after a run, etcd's members (read with serializable ranges)
are at one revision with one keyspace, and the convergence checker says so;
Redis's servers, read after a partition healed, are all read (asynchronous
replication may leave them different: that is a finding, not an adapter
error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.checker.convergence import REPLICA_STATE, REPLICAS
from harness.cluster.docker import engine_available
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _docker() -> None:
    require(engine_available(), "no Docker engine reachable")


def replica_reads(run_dir: Path) -> list[dict[str, Any]]:
    ops = [json.loads(line) for line in
           (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    return [o for o in ops if o["process"] == REPLICAS and o["f"] == REPLICA_STATE]


def test_etcd_members_converge_after_a_member_is_killed(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("kill", 2.0, 3.0, {"node": "follower"}),), seed=4)
    r = run(RunConfig(system="etcd", workload="queue", nemesis=("kill",), time_limit_s=8.0,
                      concurrency=4, rate_hz=40.0, backend="docker", seed=4, schedule=sched,
                      reports_dir=tmp_path, op_timeout_s=2.0))
    assert r.error is None, r.error
    conv = r.results["convergence"]
    assert conv.valid is True, conv.to_dict()
    oks = [o["value"] for o in replica_reads(r.run_dir) if o["type"] == "ok"]
    assert sorted(v["node"] for v in oks) == ["n1", "n2", "n3"]
    assert len({v["applied"] for v in oks}) == 1 and oks[0]["applied"] > 1
    assert len({v["digest"] for v in oks}) == 1
    acked = r.results["queue"].details["acknowledged_count"]
    assert acked > 0 and len(oks[0]["items"]) >= acked
    assert all(it["state"] == "completed" for it in oks[0]["items"].values())



@pytest.mark.slow  # minutes of a broker campaign: the slow tier (README)
def test_redis_servers_are_each_read_after_a_partition(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("partition", 2.0, 6.0, {"plan": "isolate-leader"}),), seed=3)
    r = run(RunConfig(system="redis", workload="queue", nemesis=("partition",),
                      time_limit_s=10.0, concurrency=4, rate_hz=40.0, backend="docker",
                      seed=3, schedule=sched, reports_dir=tmp_path, op_timeout_s=2.0))
    assert r.error is None, r.error
    reads = replica_reads(r.run_dir)
    fails = [o for o in reads if o["type"] != "ok" and o["type"] != "invoke"]
    assert not fails, fails
    oks = [o["value"] for o in reads if o["type"] == "ok"]
    assert sorted(v["node"] for v in oks) == ["n1", "n2", "n3"]
    for v in oks:
        offset, replid = v["applied"]
        assert isinstance(offset, int) and offset > 0 and replid
    conv = r.results["convergence"]
    assert conv.error is None, conv.to_dict()
    if conv.valid is False:  # a finding: then it says where
        assert conv.details["differences"], conv.to_dict()
    elif conv.valid is True:
        assert len({json.dumps(v["applied"]) for v in oks}) == 1
