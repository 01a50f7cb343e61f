"""etcd's ``reads=serializable`` option: the request it sends, and a campaign in Docker.

etcd documents serializable reads as served by the member alone, without
consensus: cheaper, and possibly stale. So no verdict is asserted for them;
the campaign cuts one follower from the leader, which keeps answering the
clients pinned to it from its own store while the others move on, and the
test asserts that a stale read, when found, is reported with its key and
ops. The default (linearizable) reads keep their own campaign, which must
come out valid (``test_campaigns.py``).
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
from harness.runner import RunConfig, run
from harness.system import Address
from harness.systems import get_system
from harness.systems.etcd import READ_MODES
from harness.systems.etcd_client import EtcdClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_nats_campaigns import acked, applied, assert_anomalies_reported


class Recording(EtcdClient):
    """An EtcdClient that records each gateway body and answers an empty range."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(Address("127.0.0.1", 1), worker="w", **kw)
        self.bodies: list[tuple[str, dict[str, Any]]] = []

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append((path, body))
        return {"header": {"revision": "3"}, "succeeded": True}


@pytest.mark.parametrize("reads", READ_MODES)
def test_only_pure_reads_are_serializable(reads: str) -> None:
    c = get_system("etcd", reads=reads).client("register", Address("127.0.0.1", 1), worker="w")
    rec = Recording(serializable=c.serializable)
    rec.invoke("read", ["k1"])
    rec.invoke("read-item", {"id": "i1"})
    rec.invoke("cas", ["k1", [1, 2]])  # a transaction: always through the leader
    rec.invoke("claim", None)  # its ranges feed a compare: a stale one only fails it
    flags = [(p, b.get("serializable", False)) for p, b in rec.bodies]
    want = reads == "serializable"
    assert flags[:2] == [("/v3/kv/range", want)] * 2
    assert all(not s for _, s in flags[2:]), flags


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.text(max_size=14), st.integers(), st.none()))
def test_bad_reads_option_is_a_clear_error(mode: Any) -> None:
    if mode in READ_MODES:
        assert get_system("etcd", reads=mode).reads == mode
    else:
        with pytest.raises(HarnessError, match="reads"):
            get_system("etcd", reads=mode)


@pytest.mark.docker
@pytest.mark.slow
def test_etcd_serializable_reads_from_a_cut_off_follower(tmp_path: Path) -> None:
    require(engine_available(), "no Docker engine reachable")
    sched = FaultSchedule((
        Fault("partition", 2.0, 8.0, {"plan": "cut", "between": [["follower", "leader"]]}),
    ), seed=19)
    r = run(RunConfig(system="etcd", workload="register", nemesis=("partition",),
                      time_limit_s=12.0, concurrency=6, rate_hz=80.0, backend="docker",
                      seed=19, schedule=sched, reports_dir=tmp_path, op_timeout_s=2.0,
                      system_options={"reads": "serializable"}))
    assert r.error is None, r.error
    assert "partition" in applied(r)
    assert acked(r, "write") + acked(r, "cas") >= 80 and acked(r, "read") >= 80, r.run_dir
    found = assert_anomalies_reported(r)
    if "linearizable" in found:
        html = (r.run_dir / "report.html").read_text()
        assert str(r.results["linearizable"].details["counterexample"]["key"]) in html
    print(f"etcd serializable seed 19: {r.verdict} {found}")
