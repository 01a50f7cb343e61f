"""The Docker backend and the nemesis against the reference system: containers on a
private network, our Toxiproxy in a container on every link, HAProxy in a container.

One cluster is shared by the tests that leave it as they found it (each heals
what it broke, and each starts by waiting until every node is healthy and UP
in HAProxy); the lifecycle tests (teardown, SIGTERM, gc) start their own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cluster.backend import Cluster
from harness.cluster.docker import (
    HARNESS_LABEL,
    RUN_LABEL,
    DockerCluster,
    docker_client,
    engine_available,
    gc,
    infra_image,
)
from harness.cluster.haproxy import read_server_states
from harness.cluster.image import LABEL as IMAGE_LABEL
from harness.cluster.image import ensure_image
from harness.cluster.local import ClusterError, http_status
from harness.nemesis.faults import Nemesis
from harness.nemesis.grudge import isolate
from harness.pytest_plugin import require
from harness.system import Address
from harness.systems.refsys import ReferenceSystem, find_leader

pytestmark = pytest.mark.docker


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


def new_run_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def leftovers(client: Any, run_id: str) -> list[str]:
    """Every container, network and volume still labelled with the run."""
    filters = {"label": f"{RUN_LABEL}={run_id}"}
    return sorted(
        [f"container {c.name}" for c in client.containers.list(all=True, filters=filters)]
        + [f"network {n.name}" for n in client.networks.list(filters=filters)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=filters)]
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    require(engine_available(), "no Docker engine reachable (is dockerd running? DOCKER_HOST?)")
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def shared(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerCluster]:
    run_id = new_run_id()
    with DockerCluster(ReferenceSystem(lease_ms=1500), nodes=3, client=engine,
                       run_dir=tmp_path_factory.mktemp("docker-run"), run_id=run_id) as c:
        c.wait_ready(timeout_s=60)
        yield c
    assert leftovers(engine, run_id) == []


@pytest.fixture
def cluster(shared: DockerCluster) -> DockerCluster:
    """The shared cluster, healthy again (the previous test healed what it broke)."""
    shared.wait_ready(timeout_s=30)
    return shared


def addresses(c: DockerCluster) -> dict[str, Address]:
    return {n: c.client_address(n) for n in c.nodes}


def applied(c: DockerCluster, node: str) -> int:
    _, st = call(c.client_address(node), "GET", "/status", timeout_s=1)
    return int(st["applied"]) if st else -1


# --- images and wiring ----------------------------------------------------------------


def test_images_build_without_a_registry(engine: Any) -> None:
    recipe = ReferenceSystem().image()
    for spec in (recipe, infra_image(recipe)):
        tag = ensure_image(engine, spec)  # a cache hit once the shared cluster has started
        image = engine.images.get(tag)
        assert image.labels.get(IMAGE_LABEL) == spec.name
        assert image.attrs.get("RepoDigests") in (None, [])  # built here, never pulled


def test_serves_through_haproxy_on_loopback_only(cluster: DockerCluster, engine: Any) -> None:
    c = cluster
    assert isinstance(c, Cluster)
    lb = c.lb_address()
    assert lb is not None and lb.host == "127.0.0.1"
    status, body = call(lb, "POST", "/enqueue", {"payload": "hello"})
    assert status == 200 and body["ok"], body
    assert call(lb, "POST", "/kv/smoke", {"value": 42})[0] == 200
    status, body = call(lb, "GET", "/kv/smoke")
    assert status == 200 and body["value"] == 42
    containers = engine.containers.list(filters={"label": f"{RUN_LABEL}={c.run_id}"})
    assert {x.name for x in containers} == {c.container_name(p)
                                             for p in (*c.nodes, "lb", "toxiproxy")}
    for x in containers:
        assert x.labels[HARNESS_LABEL] == "1"
        assert list(x.attrs["NetworkSettings"]["Networks"]) == [c.network_name]
        for bindings in x.attrs["HostConfig"]["PortBindings"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), x.name


# --- faults (mirroring tests/cluster/test_local_refsys.py) -----------------------------


def test_isolated_leader_cannot_commit_and_majority_serves(cluster: DockerCluster) -> None:
    c = cluster
    nem = Nemesis(c)
    try:
        leader = find_leader(addresses(c))
        assert leader is not None
        plan = nem.partition(isolate(leader, c.nodes))
        assert plan["toxics"]
        others = [n for n in c.nodes if n != leader]
        c.wait_until(lambda: find_leader({n: c.client_address(n) for n in others})
                     not in (None, leader), timeout_s=15, what="a new leader in the majority")
        status, _ = call(c.client_address(others[0]), "POST", "/kv/x", {"value": 1})
        assert status == 200
        status, body = call(c.client_address(leader), "POST", "/kv/x", {"value": 2},
                            timeout_s=8)
        assert status != 200, body
        nem.heal_network()
        c.wait_until(lambda: len({applied(c, n) for n in c.nodes}) == 1, timeout_s=20,
                     what="replicas converging")
        values = set()
        for n in c.nodes:
            st, body = call(c.client_address(n), "GET", "/kv/x")
            assert st == 200 and body["value"] in (1, 2)
            values.add(body["value"])
        assert len(values) == 1
    finally:
        nem.heal_all()
        nem.close()


def test_paused_node_leaves_and_rejoins_lb_rotation(cluster: DockerCluster) -> None:
    c = cluster
    stats, lb = c.lb_stats_address(), c.lb_address()
    assert stats is not None and lb is not None
    victim = next(n for n in c.nodes if n != find_leader(addresses(c)))
    c.pause(victim)
    try:
        assert c.is_running(victim)  # paused is alive, not dead
        t0 = time.monotonic()
        c.wait_until(lambda: any(s.name == victim and s.status.startswith("DOWN")
                                 for s in read_server_states(stats)),
                     timeout_s=10, what=f"{victim} DOWN in HAProxy")
        assert time.monotonic() - t0 < 5
        for i in range(10):  # the LB keeps serving around the paused node
            assert call(lb, "POST", "/enqueue", {"payload": i})[0] == 200
    finally:
        c.resume(victim)
    c.wait_until(lambda: all(s.status == "UP" for s in read_server_states(stats)),
                 timeout_s=10, what=f"{victim} back UP")


def test_killed_node_restarts_and_catches_up(cluster: DockerCluster) -> None:
    c = cluster
    victim = next(n for n in c.nodes if n != find_leader(addresses(c)))
    before = c.client_address(victim)
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
    try:
        for i in range(30):
            status, body = call(lb, "POST", f"/kv/k{i}", {"value": i})
            assert status == 200, (status, body)
    finally:
        c.restart(victim)
    assert c.client_address(victim) == before  # the published port survives a restart
    c.wait_until(lambda: http_status(c.client_address(victim), "/health") == 200,
                 timeout_s=20, what=f"{victim} healthy again")
    c.wait_until(lambda: len({applied(c, n) for n in c.nodes}) == 1, timeout_s=20,
                 what="the restarted node catching up")
    assert call(c.client_address(victim), "GET", "/kv/k29")[1]["value"] == 29


def test_logs_are_collected(cluster: DockerCluster, tmp_path: Path) -> None:
    logs = cluster.collect_logs(tmp_path / "collected")
    assert set(logs) == {"n1", "n2", "n3", "lb", "toxiproxy"}
    assert all(p.exists() for p in logs.values())
    assert "toxiproxy API listening" in logs["toxiproxy"].read_text()


# --- lifecycle: nothing is ever left behind --------------------------------------------


def test_teardown_removes_everything_on_exit_and_on_exception(engine: Any, tmp_path: Path
                                                              ) -> None:
    for failing in (False, True):
        run_id = new_run_id()
        run_dir = tmp_path / run_id

        def run(run_id: str = run_id, run_dir: Path = run_dir, failing: bool = failing) -> None:
            with DockerCluster(ReferenceSystem(), nodes=1, client=engine, run_dir=run_dir,
                               run_id=run_id):
                assert len(leftovers(engine, run_id)) == 5  # 3 containers, network, volume
                if failing:
                    raise RuntimeError("boom")

        if failing:
            with pytest.raises(RuntimeError, match="boom"):
                run()
        else:
            run()
        assert leftovers(engine, run_id) == []
        assert (run_dir / "logs" / "n1.log").exists()  # saved before the containers went


_CHILD = """
import sys, time
from pathlib import Path
from harness.cluster.docker import DockerCluster
from harness.systems.refsys import ReferenceSystem
with DockerCluster(ReferenceSystem(), nodes=1, run_dir=Path(sys.argv[1]), run_id=sys.argv[2]):
    print("up", flush=True)
    time.sleep(120)
"""


def start_child(tmp_path: Path, run_id: str) -> subprocess.Popen[str]:
    """A separate harness process holding a 1-node cluster, to be killed from outside."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), run_id],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "up":
        child.kill()
        pytest.fail(f"the child run did not start: {child.communicate(timeout=10)[1][-2000:]}")
    return child


def test_sigterm_tears_the_cluster_down(engine: Any, tmp_path: Path) -> None:
    run_id = new_run_id()
    child = start_child(tmp_path, run_id)
    assert leftovers(engine, run_id)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode != 0
    assert leftovers(engine, run_id) == []


def test_gc_removes_what_a_killed_run_left(engine: Any, tmp_path: Path,
                                          shared: DockerCluster) -> None:
    run_id = new_run_id()
    child = start_child(tmp_path, run_id)
    child.kill()  # SIGKILL: no teardown, no atexit
    child.communicate(timeout=30)
    left = leftovers(engine, run_id)
    assert len(left) == 5, left
    # the run id is refused while its objects exist, and nothing of them is touched
    with pytest.raises(ClusterError, match="in use"), DockerCluster(
            ReferenceSystem(), nodes=1, client=engine, run_dir=tmp_path / "again",
            run_id=run_id):
        pass
    assert leftovers(engine, run_id) == left
    removed = gc(engine, run_id=run_id)
    assert len(removed["containers"]) == 3
    assert len(removed["networks"]) == 1 and len(removed["volumes"]) == 1
    assert leftovers(engine, run_id) == []
    # another run (the shared cluster) is untouched
    assert len(leftovers(engine, shared.run_id)) == 5 + 1 + 3  # containers, network, volumes


class _MissingImage(ReferenceSystem):
    def image(self) -> str:  # type: ignore[override]
        return "harness-no-such-image:0"


def test_failures_name_the_container_and_the_cause(engine: Any, tmp_path: Path) -> None:
    run_id = new_run_id()
    with pytest.raises(ClusterError, match=r"harness-no-such-image:0.*not present locally"), \
            DockerCluster(_MissingImage(), nodes=1, client=engine, run_dir=tmp_path / "a",
                          run_id=run_id):
        pass
    assert leftovers(engine, run_id) == []
    run_id = new_run_id()
    with DockerCluster(ReferenceSystem(extra_args=("--no-such-flag",)), nodes=1,
                       client=engine, run_dir=tmp_path / "b", run_id=run_id) as c:
        with pytest.raises(ClusterError) as err:
            c.wait_ready(timeout_s=3)
        assert f"{c.container_name('n1')} exited" in str(err.value)
        assert "--no-such-flag" in str(err.value)  # the node's own last words
    assert leftovers(engine, run_id) == []
