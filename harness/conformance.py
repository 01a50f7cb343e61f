"""The conformance kit: pytest tests an adapter author runs on their adapter.

Run it on an installed system (an entry point of ``harness.systems``) or on
any factory by import path, with the backend the system needs::

    python -m pytest --pyargs harness.conformance --harness-system etcd --harness-backend docker
    harness conform mypkg.adapter:MySystem --backend docker

What it checks, each a test of its own so a failure names the broken part:

* the adapter's shape: the protocol's attributes, port roles that name real
  ports, workloads the harness knows, a launch command for every node;
* the cluster starts and becomes ready (every node listens; the system's
  own readiness check, when it has one, says yes);
* it serves each workload it claims: a short run without faults whose
  history passes every check of that workload, with the operations the
  workload needs (``required_fs``) acknowledged at least once;
* kill and restart: the node stops answering and comes back, and the
  cluster is ready again; pause and resume: a paused leader is replaced (a
  paused node fails its health check, for a load-balanced system without
  leader discovery), and the cluster is ready again after the resume;
* a partition cuts peer traffic (when the system can name a leader: an
  isolated leader is replaced by the majority) and healing restores it;
* flaky links: with every peer link sliced into one-byte pieces the cluster
  stays ready (a node that mishandles partial reads does not); with what
  the leader sends held by a ``timeout`` toxic, one direction only, the
  others elect a leader of their own (the toxics sit on the direction
  asked for); after connections are reset (``reset_peer``) and the toxics
  removed, the cluster is ready again;
* lose-unsynced (on a backend that mounts the layer, see
  :mod:`harness.lazyfs`): the node's data directory is on the layer and the
  node fsyncs through it; after a crash a file written there without fsync
  is gone while an fsynced one (name made durable by a directory fsync)
  stays, and the cluster is ready again after the restart;
* clock (on a system whose nodes run under libfaketime, see
  :mod:`harness.clock`): a node's reported time (the ``Date`` header of its
  client port) moves by the offset set, forward and back, and returns when
  reset, and the cluster stays ready;
* a stable leader (a system stating :class:`harness.system.PromisesStableLeader`): a
  follower cut off for three election timeouts and healed leaves the leader and its
  term as they were;
* malformed requests (an adapter stating :class:`harness.system.TakesHostileInput`):
  60 drawn requests, to each node in turn, are all refused, and the cluster stays
  ready;
* an idle CPU bound (a system stating :class:`harness.system.PromisesCpuBound`): each
  node of the ready, idle cluster uses less than the bound over its window;
* teardown leaves nothing behind (no container, network or volume of the
  run; no process for the local backend).

Two optional statements an adapter may make (plain attributes, read with
``getattr``), so the kit asks what the system documents and no more:

* ``restart_after``: the faults (``"pause"``, ``"partition"``) after which the
  system documents that the node they hit stays split from the others until
  an operator restarts it (RabbitMQ under ``pause_minority``: a node frozen
  past ``net_ticktime`` never sees the others vanish, so it never pauses, and
  comes back partitioned). The kit then restarts that node once the fault
  ends, as the documentation tells an operator to, and asks for readiness
  after that;
* ``fsync_interval_s``: the system makes its writes durable on a timer, at
  least this often, not before it answers (NATS JetStream 2.9: 120 s; it
  relies on replication instead). The lose-unsynced section then waits up
  to that long (plus a margin) for the node's first fsync before the crash,
  rather than asking for one at once.

The kit only uses the public interface (``harness.system``, the cluster
backends, the runner); passing it is what "the adapter plugs in" means.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import sockets
from harness.checker.resources import idle_use
from harness.cluster.image import ImageSpec
from harness.cluster.local import LocalCluster, http_status
from harness.errors import HarnessError
from harness.history import Op, OpType
from harness.nemesis.faults import Nemesis
from harness.nemesis.grudge import isolate
from harness.resources import cpu_promise, measure_idle_cpu
from harness.runner import RunConfig, run
from harness.system import (
    CheckReady,
    HasLeader,
    LoadBalanced,
    NodeContext,
    NodeLaunch,
    PromisesCpuBound,
    PromisesStableLeader,
    System,
    TakesHostileInput,
    election_timeout_s,
    peer_addressing,
)
from harness.systems import get_system
from harness.workloads import WORKLOADS

#: seconds a fresh or healed cluster may take to be ready again
READY_S = 60.0


def _config(request: pytest.FixtureRequest) -> tuple[str, str, dict[str, Any]]:
    opt = request.config.getoption
    name = opt("--harness-system")
    if not name:
        pytest.fail("the conformance kit needs --harness-system NAME (an installed system "
                    "or module:factory)")
    return str(name), str(opt("--harness-backend")), _options(request.config)


@pytest.fixture(scope="module")
def system(request: pytest.FixtureRequest) -> Any:
    name, _, options = _config(request)
    return get_system(name, **options)


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return _config(request)[1]


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, system: Any, backend: str) -> Iterator[Any]:
    """One cluster for the fault tests, torn down at the end of the module. Its run
    folder stays when any test of the module failed: pytest ends a fixture the same way
    whether its tests passed or not, so the count of failures decides."""
    failed_before = request.session.testsfailed
    with _cluster(system, backend, f"conform-{uuid.uuid4().hex[:8]}",
                  keep=lambda: request.session.testsfailed > failed_before) as c:
        c.wait_ready(timeout_s=READY_S)
        yield c


def _answers(cluster: Any, node: str, timeout_s: float = 1.0) -> bool:
    """Whether the node's client port takes a connection (a killed node's does not)."""
    addr = cluster.client_address(node)
    try:
        with sockets.connect(addr.host, addr.port, timeout=timeout_s):
            return True
    except OSError:
        return False


def _wait(predicate: Any, what: str, timeout_s: float = READY_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _ready(cluster: Any, system: Any) -> bool:
    """The system's own readiness check, else every node's health check (a load-balanced
    system has one), else every node listening."""
    roles = list(system.ports)
    if isinstance(system, CheckReady):
        nodes = {n: {r: cluster.address(n, r) for r in roles} for n in cluster.nodes}
        return bool(system.ready(nodes, timeout_s=1.0))
    return all(_healthy(cluster, system, n) for n in cluster.nodes)


def _restart_if_stated(cluster: Any, system: Any, fault: str, node: str) -> None:
    """The recovery the system documents after ``fault`` (its ``restart_after``): restart
    the node it hit. A system that states nothing must heal by itself."""
    if fault in tuple(getattr(system, "restart_after", ()) or ()):
        cluster.restart(node)


def _healthy(cluster: Any, system: Any, node: str) -> bool:
    if isinstance(system, LoadBalanced):
        path = system.health_check.path
        return http_status(cluster.client_address(node), path, timeout_s=1.0) == 200
    return _answers(cluster, node)


@contextlib.contextmanager
def _cluster(system: Any, backend: str, run_id: str,
             keep: Callable[[], bool] | None = None,
             **options: Any) -> Iterator[Any]:
    """A running three-node cluster of ``system`` on ``backend``, torn down after.

    Its run folder (HAProxy's config, the nodes' logs) is removed when the test
    passed: the kit runs in every user's test session and must not leave a temp
    dir per test behind. When the test failed (an exception out of the block, or
    ``keep()`` true at the end) it stays, and the failure report names it."""
    run_dir = Path(tempfile.mkdtemp(prefix="harness-conformance-"))
    if backend == "docker":
        from harness.cluster.docker import DockerCluster

        c: Any = DockerCluster(system, nodes=3, run_dir=run_dir, run_id=run_id, **options)
    else:
        c = LocalCluster(system, nodes=3, run_dir=run_dir, run_id=run_id, **options)
    try:
        with c:
            yield c
    except BaseException:
        _say_kept(run_id, run_dir)
        raise
    if keep is not None and keep():
        _say_kept(run_id, run_dir)
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def _say_kept(run_id: str, run_dir: Path) -> None:
    """Name a failed cluster's folder on the real stderr: pytest shows a teardown's
    captured output only when the teardown itself fails."""
    out = sys.__stderr__ or sys.stderr
    out.write(f"\nharness conform: {run_id}'s config and logs are kept in {run_dir}\n")
    out.flush()


def _options(config: pytest.Config) -> dict[str, Any]:
    return parse_options(config.getoption("--harness-system-option") or [])


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as system options, values read as JSON when they parse
    (``nodes=5`` is a number, ``image=mine`` a string)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        key, eq, raw = kv.partition("=")
        if not eq:
            raise HarnessError(f"system option {kv!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


# --- the adapter's shape ---------------------------------------------------------------


def test_adapter_shape(system: Any) -> None:
    """The protocol's attributes are there and consistent with each other."""
    assert isinstance(system, System), "the system lacks attributes of harness.system.System"
    assert isinstance(system.name, str) and system.name
    ports = dict(system.ports)
    assert ports and all(isinstance(p, int) and 0 < p < 65536 for p in ports.values()), ports
    assert system.client_role in ports, f"client_role {system.client_role!r} is not a port role"
    for role in system.peer_roles:
        assert role in ports, f"peer role {role!r} is not a port role"
    assert system.workloads, "the system supports no workload"
    for w in system.workloads:
        assert w in WORKLOADS, f"workload {w!r} is unknown to the harness ({', '.join(WORKLOADS)})"
    peer_addressing(system)  # raises on a bad value
    assert isinstance(system.image(), ImageSpec | str)


def test_launch_commands(system: Any, backend: str) -> None:
    """Every node of a three-node cluster gets a command; commands differ per node."""
    from harness.system import Address

    nodes = ("n1", "n2", "n3")
    argvs = []
    for i, n in enumerate(nodes):
        listen = {r: Address("0.0.0.0", p) for r, p in system.ports.items()}
        peers = {o: {r: Address(o, system.ports[r]) for r in system.peer_roles}
                 for o in nodes if o != n}
        launch = system.launch(NodeContext(n, i, nodes, listen, peers, "/data", {},
                                           backend=backend))
        assert isinstance(launch, NodeLaunch)
        assert launch.argv and all(isinstance(a, str) for a in launch.argv), launch.argv
        argvs.append(launch.argv)
    assert len(set(argvs)) == len(argvs), "two nodes got the same command"


# --- a live cluster --------------------------------------------------------------------


def test_cluster_starts_and_is_ready(cluster: Any, system: Any) -> None:
    assert len(cluster.nodes) == 3
    for n in cluster.nodes:
        assert cluster.is_running(n), f"{n} is not running"
    assert _ready(cluster, system)


def test_kill_and_restart(cluster: Any, system: Any) -> None:
    node = cluster.nodes[-1]
    cluster.kill(node)
    assert not cluster.is_running(node)
    _wait(lambda: not _answers(cluster, node), f"{node}'s client port to close after a kill",
          timeout_s=10)
    cluster.restart(node)
    assert cluster.is_running(node)
    _wait(lambda: _ready(cluster, system), "the cluster to be ready after a restart")


def test_pause_and_resume(cluster: Any, system: Any) -> None:
    """A paused node stops taking part: with leader discovery, a paused leader is
    replaced by the others; behind a load balancer, its health check fails.
    After the resume the cluster is ready again."""
    addrs = {n: cluster.client_address(n) for n in cluster.nodes}
    node = cluster.nodes[-1]
    if isinstance(system, HasLeader):
        _wait(lambda: system.leader(addrs, timeout_s=1.0) is not None, "a leader")
        node = str(system.leader(addrs, timeout_s=1.0))
    cluster.pause(node)
    try:
        if isinstance(system, HasLeader):
            rest = {n: a for n, a in addrs.items() if n != node}

            def others_moved_on() -> bool:
                leader = system.leader(rest, timeout_s=1.0)
                return leader is not None and leader != node

            _wait(others_moved_on, f"the others to replace the paused leader {node}",
                  timeout_s=30)
        elif isinstance(system, LoadBalanced):
            _wait(lambda: not _healthy(cluster, system, node),
                  f"paused {node} to fail its health check", timeout_s=30)
    finally:
        cluster.resume(node)
    _restart_if_stated(cluster, system, "pause", node)
    _wait(lambda: _ready(cluster, system), "the cluster to be ready after a resume")


def test_partition_and_heal(cluster: Any, system: Any) -> None:
    """Isolating a node cuts its peer links; with leader discovery, an isolated leader is
    replaced by the majority's own; healing makes the cluster ready again."""
    nemesis = Nemesis(cluster)
    addrs = {n: cluster.client_address(n) for n in cluster.nodes}
    target = cluster.nodes[0]
    if isinstance(system, HasLeader):
        _wait(lambda: system.leader(addrs, timeout_s=1.0) is not None, "a leader")
        target = str(system.leader(addrs, timeout_s=1.0))
    try:
        done = nemesis.partition(isolate(target, cluster.nodes))
        assert done["toxics"], "the partition cut no link: are the peer roles right?"
        if isinstance(system, HasLeader):
            rest = {n: a for n, a in addrs.items() if n != target}

            def majority_moved_on() -> bool:
                leader = system.leader(rest, timeout_s=1.0)
                return leader is not None and leader != target

            _wait(majority_moved_on, f"the majority to elect a leader other than the "
                  f"isolated {target} (is peer traffic really going through the proxies?)")
    finally:
        nemesis.heal_network()
    _restart_if_stated(cluster, system, "partition", target)
    _wait(lambda: _ready(cluster, system), "the cluster to be ready after healing")


def test_a_rejoining_follower_leaves_the_leader_in_office(cluster: Any, system: Any) -> None:
    """For a system that promises a stable leader (:class:`PromisesStableLeader`): a
    follower cut off for three election timeouts and healed does not depose the leader;
    every node names the same leader at the same term before and after."""
    roles = {n: {r: cluster.address(n, r) for r in system.ports} for n in cluster.nodes}
    if not isinstance(system, PromisesStableLeader):
        pytest.skip("the adapter does not promise a stable leader")

    def agreed() -> tuple[str, int] | None:
        views = {system.leadership(n, roles[n], timeout_s=1.0) for n in cluster.nodes}
        if len(views) != 1:
            return None
        leader, term = views.pop()
        return (leader, term) if leader is not None and term is not None else None

    _wait(lambda: agreed() is not None, "every node to name one leader at one term")
    before = agreed()
    assert before is not None
    follower = next(n for n in cluster.nodes if n != before[0])
    nemesis = Nemesis(cluster)
    try:
        assert nemesis.partition(isolate(follower, cluster.nodes))["toxics"]
        time.sleep(3 * election_timeout_s(system))
    finally:
        nemesis.heal_network()
    _restart_if_stated(cluster, system, "partition", follower)
    _wait(lambda: agreed() is not None, "every node to name one leader again after the heal")
    time.sleep(2 * election_timeout_s(system))  # a disruption would have happened by now
    after = agreed()
    assert after == before, (f"{follower} came back from a partition and the leader changed: "
                             f"{before} before, {after} after")


def test_an_idle_cluster_stays_within_its_cpu_bound(cluster: Any, system: Any) -> None:
    """For a system that promises an idle CPU bound (:class:`PromisesCpuBound`): a ready,
    idle cluster's nodes each use less than the bound over its window, as the runner
    measures it at the end of every run. A node above it here would make every campaign
    invalid (``cpu-runaway``): a bound too tight for the system, or a node that spins."""
    if not isinstance(system, PromisesCpuBound):
        pytest.skip("the adapter promises no CPU bound")
    if cpu_promise(system, cluster, list(cluster.nodes)) is None:
        pytest.skip("this backend cannot read the nodes' CPU time")
    bound = system.cpu_bound()
    _wait(lambda: _ready(cluster, system), "the cluster to be ready")
    time.sleep(bound.window_s)  # let a start's own work settle
    value = measure_idle_cpu(cluster, lambda *a: Op(0, 0, OpType.INFO, "conform", "cpu"),
                             list(cluster.nodes), window_s=bound.window_s)
    use = idle_use(value, value["window_s"])
    missing = [n for n in cluster.nodes if use.get(n, {}).get("cores") is None]
    assert not missing, f"not measured over the window: {missing}"
    over = [f"{n} at {v['cores']:.2f} cores" for n, v in use.items()
            if v["cores"] > bound.idle_cores]
    assert not over, f"idle nodes above the promised {bound.idle_cores} cores: {over}"


def test_malformed_requests_are_refused(cluster: Any, system: Any) -> None:
    """For an adapter that draws malformed requests (:class:`TakesHostileInput`): a healthy
    cluster refuses every one of them, on every node, and stays ready. An answer other
    than ``refused`` here is the system's bug, or the adapter's (a request the system does
    not consider malformed, a classifier that misreads its answers), and a campaign would
    report it as an anomaly."""
    if not isinstance(system, TakesHostileInput):
        pytest.skip("the adapter draws no malformed requests")
    import random

    wrong: list[str] = []
    for i in range(60):
        request = system.hostile_request(random.Random(i))
        node = cluster.nodes[i % len(cluster.nodes)]
        answer, detail = system.send_hostile(request, cluster.client_address(node),
                                             timeout_s=5.0)
        if answer != "refused":
            wrong.append(f"{node}: {request.get('why')!r} answered {answer} ({detail})")
    assert not wrong, f"{len(wrong)} of 60 malformed requests not refused: {wrong[:5]}"
    _wait(lambda: _ready(cluster, system), "the cluster to be ready after malformed requests",
          timeout_s=10)


# --- flaky -----------------------------------------------------------------------------


def test_flaky_links(cluster: Any, system: Any) -> None:
    """Under ``flaky``: a system reassembles partial reads (every peer link sliced into
    one-byte pieces and the cluster stays ready); the toxic acts on the direction named
    (what the leader sends, held, and the others replace it, though it still hears them);
    the system reconnects after resets, and is ready again once the toxics are gone."""
    nemesis = Nemesis(cluster)
    nodes = list(cluster.nodes)
    every = [(a, b) for a in nodes for b in nodes if a != b]
    addrs = {n: cluster.client_address(n) for n in nodes}
    try:
        done = nemesis.flaky(every, toxic="slicer", toxicity=1.0,
                             attributes={"average_size": 1, "size_variation": 0, "delay": 0})
        assert done["toxics"], "flaky touched no link: are the peer roles right?"
        time.sleep(2.0)
        _wait(lambda: _ready(cluster, system), "the cluster to stay ready with every peer "
              "link sliced into one-byte pieces (are partial reads reassembled?)", timeout_s=30)
        nemesis.heal_network()
        if isinstance(system, HasLeader):
            _wait(lambda: system.leader(addrs, timeout_s=1.0) is not None, "a leader")
            target = str(system.leader(addrs, timeout_s=1.0))
            rest = {n: a for n, a in addrs.items() if n != target}
            nemesis.flaky([(target, n) for n in nodes if n != target], toxic="timeout",
                          toxicity=1.0, attributes={"timeout": 0})

            def others_moved_on() -> bool:
                leader = system.leader(rest, timeout_s=1.0)
                return leader is not None and leader != target

            _wait(others_moved_on, f"the others to elect a leader of their own while what "
                  f"{target} sends them is held (one direction only)")
            nemesis.heal_network()
        nemesis.flaky(every, toxic="reset_peer", toxicity=1.0, attributes={"timeout": 0})
        time.sleep(1.0)
    finally:
        nemesis.heal_network()
        nemesis.close()
    _wait(lambda: _ready(cluster, system), "the cluster to be ready after flaky links healed")


# --- lose-unsynced ---------------------------------------------------------------------


def test_lose_unsynced_drops_an_unsynced_write(system: Any, backend: str) -> None:
    """Under ``lose-unsynced`` an unsynced write vanishes after the crash and a synced one
    stays; the node really keeps its data on the layer (it fsyncs through it, within
    its stated ``fsync_interval_s`` if it states one); the cluster is ready again after
    the restart."""
    import os

    from harness.nemesis.kinds.lose_unsynced import LAYER
    from harness.runner import backend_class

    if not LAYER.held_by(system, backend_class(backend)):
        pytest.skip(f"the {backend} backend cannot run lose-unsynced here ({LAYER.name})")
    with _cluster(system, backend, f"conform-{uuid.uuid4().hex[:8]}",
                  lose_unsynced=True) as c:
        c.wait_ready(timeout_s=READY_S)
        node = c.nodes[-1]
        # a system that syncs on a timer (its stated fsync_interval_s) gets that long
        interval_s = float(getattr(system, "fsync_interval_s", 0.0) or 0.0)
        if interval_s > 0:
            with contextlib.suppress(pytest.fail.Exception):
                _wait(lambda: c.lose_unsynced_stats(node)["fsyncs"] >= 1,
                      f"{node}'s first fsync", timeout_s=interval_s + 30.0)
        c.kill(node)
        data = Path(c.data_dir(node))
        stats = c.lose_unsynced_stats(node)
        assert stats["fsyncs"] >= 1 and any(data.iterdir()), (
            f"{node} never fsynced through the layer: its data is not under its data "
            f"directory {data}, or it never makes anything durable ({stats})")
        synced, unsynced = data / "conform-synced", data / "conform-unsynced"
        fd = os.open(synced, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"kept")
            os.fsync(fd)
        finally:
            os.close(fd)
        unsynced.write_bytes(b"lost")
        dfd = os.open(data, os.O_RDONLY)
        try:
            os.fsync(dfd)  # both names durable; only one file's content was synced
        finally:
            os.close(dfd)
        with open(synced, "ab") as f:
            f.write(b" and not this")
        dropped = c.lose_unsynced(node)
        assert dropped["dropped_bytes"] >= len(b"lost and not this")
        assert synced.read_bytes() == b"kept"
        assert unsynced.read_bytes() == b""
        synced.unlink()
        unsynced.unlink()
        c.restart(node)
        _wait(lambda: _ready(c, system), "the cluster to be ready after a lose-unsynced crash")


def _reported_time(cluster: Any, system: Any, node: str) -> float:
    """The node's own idea of the time: the ``Date`` header of its answer on its client
    port (HTTP servers send one, RFC 9110 6.6.1), second resolution."""
    import email.utils
    import urllib.error
    import urllib.request

    path = system.health_check.path if isinstance(system, LoadBalanced) else "/"
    try:
        with urllib.request.urlopen(f"http://{cluster.client_address(node)}{path}",
                                    timeout=2) as r:
            date = r.headers.get("Date")
    except urllib.error.HTTPError as e:
        date = e.headers.get("Date")
    if not date:
        pytest.fail(f"{node} sends no Date header on its client port: the kit cannot see its "
                    "clock (a system under clock faults must show its time somewhere)")
    return email.utils.parsedate_to_datetime(date).timestamp()


def test_clock_moves_a_nodes_reported_time(system: Any, backend: str) -> None:
    """Under ``clock`` a node's reported time moves by the offset (its ``Date`` header),
    back when reset, and the cluster stays ready (only wall clocks move: see
    :mod:`harness.clock`). Its own cluster: nodes run under libfaketime only in a
    cluster built for clock faults, as a run that uses them builds it."""
    from harness.nemesis.kinds.clock import CLOCK, KIND
    from harness.runner import backend_class

    if not CLOCK.held_by(system, backend_class(backend)):
        pytest.skip(f"the {backend} backend cannot run clock here ({CLOCK.name})")
    with _cluster(system, backend, f"conform-{uuid.uuid4().hex[:8]}",
                  **KIND.cluster_options) as c:
        c.wait_ready(timeout_s=READY_S)
        node = c.nodes[0]
        try:
            for offset in (3600.0, -3600.0, 0.0):
                c.set_clock_offset(node, offset)
                seen = _reported_time(c, system, node) - time.time()
                assert abs(seen - offset) < 5.0, (
                    f"{node}'s clock was set {offset:+.0f} s off, and it reports {seen:+.1f} s")
        finally:
            c.set_clock_offset(node, 0.0)
        _wait(lambda: _ready(c, system), "the cluster to be ready after clock steps")


# --- workloads and teardown ------------------------------------------------------------


def _workloads(metafunc: pytest.Metafunc) -> list[str]:
    name = metafunc.config.getoption("--harness-system")
    if not name:
        return []
    try:
        return list(get_system(str(name), **_options(metafunc.config)).workloads)
    except Exception:
        return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "workload" in metafunc.fixturenames:
        metafunc.parametrize("workload", _workloads(metafunc))


def test_serves_workload(request: pytest.FixtureRequest, workload: str, tmp_path: Path) -> None:
    """A short run without faults: every check of the workload passes, and the
    operations it needs were acknowledged (so the checks did not pass vacuously)."""
    name, backend, options = _config(request)
    result = run(RunConfig(system=name, workload=workload, nemesis=(), time_limit_s=5.0,
                           concurrency=3, rate_hz=20.0, backend=backend, seed=1,
                           reports_dir=tmp_path, system_options=options))
    bad = {k: (r.valid, r.details.get("error") or r.details.get("anomalies"))
           for k, r in result.results.items() if r.valid is not True}
    assert result.valid is True, f"{workload}: {bad} (run dir {result.run_dir})"


def test_teardown_leaves_nothing(request: pytest.FixtureRequest, system: Any,
                                 backend: str) -> None:
    run_id = f"conform-{uuid.uuid4().hex[:8]}"
    with _cluster(system, backend, run_id) as c:
        c.wait_ready(timeout_s=READY_S)
    if backend == "docker":
        from harness.cluster.docker import RUN_LABEL, docker_client

        client = docker_client()
        try:
            flt = {"label": f"{RUN_LABEL}={run_id}"}
            left = [x.name for x in client.containers.list(all=True, filters=flt)]
            left += [x.name for x in client.networks.list(filters=flt)]
            left += [x.name for x in client.volumes.list(filters=flt)]
        finally:
            client.close()
        assert not left, f"teardown left {left}"
    else:
        for n in c.nodes:
            assert not c.is_running(n), f"{n} still runs after teardown"
