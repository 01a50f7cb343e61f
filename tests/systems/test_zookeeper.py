"""ZooKeeper 3.8: the adapter's configuration and options, and fault campaigns in Docker.

ZooKeeper promises sequential consistency: a server answers reads from its
own copy, so a follower that lags (here: its links to the leader slowed)
may return a value another client has already overwritten. With ``sync()``
before each read the server first catches up with the leader, and the
register must come out linearizable: that verdict is asserted. For plain
reads nothing is promised, so the test asserts that a stale read, when
found, is reported with its key and ops, in the results and in the report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cluster.docker import engine_available
from harness.errors import HarnessError
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, RunResult, run
from harness.system import Address, NodeContext, System, peer_addressing
from harness.systems import get_system
from harness.systems.zookeeper import READ_MODES, ZooKeeper
from harness.systems.zookeeper_client import ZkRegisterClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_nats_campaigns import acked, applied, assert_anomalies_reported


def ctx(name: str) -> NodeContext:
    nodes = ("n1", "n2", "n3")
    return NodeContext(name=name, index=nodes.index(name), nodes=nodes,
                       listen={"quorum": Address("0.0.0.0", 2888),
                               "election": Address("0.0.0.0", 3888),
                               "client": Address("0.0.0.0", 2181)},
                       peers={}, data_dir="/data", backend="docker")


def test_every_server_names_the_ensemble_alike() -> None:
    assert isinstance(get_system("zookeeper"), System)
    s = ZooKeeper()
    assert peer_addressing(s) == "named"
    confs = [s.config(ctx(n)) for n in ("n1", "n2", "n3")]
    assert len(set(confs)) == 1  # same ensemble lines everywhere; myid differs
    assert "server.2=n2:2888:3888" in confs[0] and "quorumListenOnAllIPs=true" in confs[0]
    script = s.launch(ctx("n3")).argv[2]
    assert "echo 3 > /data/zk/myid" in script and "-Xmx96m" in script
    assert s.election_timeout_ms == s.tick_ms * s.sync_limit


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.text(max_size=10), st.integers(), st.none()))
def test_bad_reads_option_is_a_clear_error(mode: Any) -> None:
    if mode in READ_MODES:
        assert get_system("zookeeper", reads=mode).reads == mode
    else:
        with pytest.raises(HarnessError, match="reads"):
            get_system("zookeeper", reads=mode)


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.integers(-5, 5), st.booleans(), st.floats(allow_nan=True)))
def test_timing_options_must_be_positive_integers(v: Any) -> None:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        assert ZooKeeper(tick_ms=v).tick_ms == v
    else:
        with pytest.raises(ValueError):
            ZooKeeper(tick_ms=v)


def test_nothing_sent_is_a_definite_fail() -> None:
    from harness.cluster.local import free_port

    c = ZkRegisterClient(Address("127.0.0.1", free_port()), worker="w", timeout_s=0.5)
    try:
        for f, v in (("write", ["k1", 1]), ("cas", ["k1", [1, 2]]), ("read", ["k1"])):
            assert str(c.invoke(f, v).type) == "fail", f
    finally:
        c.close()


def _campaign(reads: str, tmp_path: Path) -> RunResult:
    """Slowed links of one follower (it lags the leader), then its isolation."""
    require(engine_available(), "no Docker engine reachable")
    sched = FaultSchedule((
        Fault("latency", 1.0, 9.0, {"node": "follower", "latency_ms": 150}),
        Fault("partition", 11.0, 4.0, {"plan": "isolate-leader"}),
    ), seed=17)
    return run(RunConfig(system="zookeeper", workload="register",
                         nemesis=("latency", "partition"), time_limit_s=16.0, concurrency=6,
                         rate_hz=80.0, backend="docker", seed=17, schedule=sched,
                         reports_dir=tmp_path, op_timeout_s=2.0,
                         system_options={"reads": reads}))


def _exercised(r: RunResult) -> None:
    assert r.error is None, r.error
    assert applied(r) >= {"latency", "partition"}, applied(r)
    assert acked(r, "write") + acked(r, "cas") >= 80 and acked(r, "read") >= 80, r.run_dir


@pytest.mark.docker
@pytest.mark.slow  # about 50 s with its image built, 140 s building it: over the default budget
def test_zookeeper_with_sync_reads_is_linearizable(tmp_path: Path) -> None:
    r = _campaign("sync", tmp_path)
    _exercised(r)
    why = {k: v.details.get("counterexample") for k, v in r.results.items()}
    assert r.valid is True, f"{why} ({r.run_dir})"


@pytest.mark.docker
@pytest.mark.slow
def test_zookeeper_plain_reads_report_stale_reads(tmp_path: Path) -> None:
    r = _campaign("plain", tmp_path)
    _exercised(r)
    found = assert_anomalies_reported(r)
    if "linearizable" in found:
        # the report shows the stale read: its key and the ops that could not be placed
        html = (r.run_dir / "report.html").read_text()
        cx = r.results["linearizable"].details["counterexample"]
        assert str(cx["key"]) in html, cx
    print(f"zookeeper plain seed 17: {r.verdict} {found}")
