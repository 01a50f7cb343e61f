"""The local backend and the nemesis against the reference system: real processes,
real HAProxy, our Toxiproxy on every link."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cluster.haproxy import read_server_states
from harness.cluster.local import LocalCluster, http_status
from harness.nemesis.faults import Nemesis
from harness.nemesis.grudge import isolate
from harness.pytest_plugin import require
from harness.system import Address
from harness.systems.refsys import ReferenceSystem, find_leader


def call(addr: Address, method: str, path: str, body: Any = None, timeout_s: float = 5.0
         ) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:
            return e.code, raw.decode(errors="replace")  # e.g. HAProxy's own error page
    except OSError:
        return 0, None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    with LocalCluster(ReferenceSystem(lease_ms=1500), nodes=3, run_dir=tmp_path,
                      run_id="t") as c:
        c.wait_ready(timeout_s=20)
        yield c


def addresses(c: LocalCluster) -> dict[str, Address]:
    return {n: c.client_address(n) for n in c.nodes}


def applied(c: LocalCluster, node: str) -> int:
    _, st = call(c.client_address(node), "GET", "/status", timeout_s=1)
    return int(st["applied"]) if st else -1


def test_isolated_leader_cannot_commit_and_majority_serves(cluster: LocalCluster) -> None:
    c = cluster
    nem = Nemesis(c)
    try:
        leader = find_leader(addresses(c))
        assert leader is not None
        plan = nem.partition(isolate(leader, c.nodes))
        assert plan["toxics"]
        others = [n for n in c.nodes if n != leader]
        # the majority elects a new leader and commits
        c.wait_until(lambda: find_leader({n: c.client_address(n) for n in others})
                     not in (None, leader), timeout_s=15, what="a new leader in the majority")
        status, _ = call(c.client_address(others[0]), "POST", "/kv/x", {"value": 1})
        assert status == 200
        # the old leader, cut off, must not acknowledge a write
        status, body = call(c.client_address(leader), "POST", "/kv/x", {"value": 2},
                            timeout_s=8)
        assert status != 200, body
        nem.heal_network()
        # after healing everyone converges on the same log and value
        c.wait_until(lambda: len({applied(c, n) for n in c.nodes}) == 1, timeout_s=20,
                     what="replicas converging")
        for n in c.nodes:
            st, body = call(c.client_address(n), "GET", "/kv/x")
            assert st == 200 and body["value"] in (1, 2)
        values = {call(c.client_address(n), "GET", "/kv/x")[1]["value"] for n in c.nodes}
        assert len(values) == 1
    finally:
        nem.heal_all()
        nem.close()


def test_paused_node_leaves_and_rejoins_lb_rotation(cluster: LocalCluster) -> None:
    c = cluster
    stats = c.lb_stats_address()
    lb = c.lb_address()
    assert stats is not None and lb is not None
    victim = next(n for n in c.nodes if n != find_leader(addresses(c)))
    c.pause(victim)
    t0 = time.monotonic()
    c.wait_until(lambda: any(s.name == victim and s.status.startswith("DOWN")
                             for s in read_server_states(stats)),
                 timeout_s=10, what=f"{victim} DOWN in HAProxy")
    down_after = time.monotonic() - t0
    assert down_after < 5, down_after
    for i in range(10):  # the LB keeps serving around the paused node
        assert call(lb, "POST", "/enqueue", {"payload": i})[0] == 200
    c.resume(victim)
    c.wait_until(lambda: all(s.status == "UP" for s in read_server_states(stats)),
                 timeout_s=10, what=f"{victim} back UP")


def test_killed_node_restarts_and_catches_up(cluster: LocalCluster) -> None:
    c = cluster
    victim = next(n for n in c.nodes if n != find_leader(addresses(c)))
    c.kill(victim)
    assert not c.is_running(victim)
    lb = c.lb_address()
    stats = c.lb_stats_address()
    assert lb is not None and stats is not None
    # until HAProxy's checks mark it DOWN a request may still reach the dead node's
    # proxy and fail (indeterminately); from then on the LB routes around it
    c.wait_until(lambda: any(s.name == victim and s.status.startswith("DOWN")
                             for s in read_server_states(stats)),
                 timeout_s=10, what=f"{victim} DOWN in HAProxy")
    for i in range(30):
        status, body = call(lb, "POST", f"/kv/k{i}", {"value": i})
        assert status == 200, (status, body)
    c.restart(victim)
    c.wait_until(lambda: http_status(c.client_address(victim), "/health") == 200,
                 timeout_s=20, what=f"{victim} healthy again")
    c.wait_until(lambda: len({applied(c, n) for n in c.nodes}) == 1, timeout_s=20,
                 what="the restarted node catching up")
    assert call(c.client_address(victim), "GET", "/kv/k29")[1]["value"] == 29


def test_logs_are_collected(cluster: LocalCluster, tmp_path: Path) -> None:
    logs = cluster.collect_logs(tmp_path / "collected")
    assert set(logs) == {"n1", "n2", "n3", "lb"}
    assert all(p.exists() for p in logs.values())
