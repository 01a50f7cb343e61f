"""The local process backend: a system's nodes as processes on loopback ports.

Same wiring as in Docker (a Toxiproxy proxy on every directed link, HAProxy
reaching each node through its own proxy), with processes instead of
containers: kill is SIGKILL, pause is SIGSTOP (an unresponsive instance),
resume is SIGCONT. It is fast to start, so most tests use it, and it serves
users without Docker.

Every process runs in its own session and is tracked; teardown stops them
all, also when the run fails or is interrupted, and an ``atexit`` hook is the
last line of defence. Teardown can be resumed: a signal that cuts it short
leaves it to be finished by the next call (the runner's, or ``atexit``).

None of that runs when the harness itself is killed with SIGKILL, so each
cluster also keeps a record of its owner and of every child process (pid and
start time) and temp folder in the state dir (see
:func:`harness.cluster.owner.state_dir`); :func:`gc` reads the records of
runs whose owner is gone and removes what they name.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from harness import clock, sockets
from harness.cluster.backend import LB, Link, link_name, plan_links
from harness.cluster.cpu import group_cpu
from harness.cluster.haproxy import haproxy_config
from harness.cluster.owner import Owner, pid_alive, process_start, state_dir
from harness.errors import HarnessError
from harness.system import (
    Address,
    CheckReady,
    HasLogFiles,
    LoadBalanced,
    NodeContext,
    NodeLaunch,
    System,
    peer_addressing,
    project_root,
)

__all__ = ["ClusterError", "LocalCluster", "crash_layer", "fail_layer", "free_port", "gc",
           "layer_stats", "records"]

HOST = "127.0.0.1"


class ClusterError(HarnessError):
    """A cluster could not be started or driven; the message says which part and why."""


def crash_layer(layers: Mapping[str, Any], node: str, *, running: bool, mode: str,
                seed: int | None) -> dict[str, int]:
    """Drop what ``node`` wrote and did not fsync on its lose-unsynced layer (both
    backends): refused while the node runs, as a crash cannot lose the cache of a
    process still writing."""
    from harness.lazyfs import LazyFSError

    layer = _layer(layers, node)
    if running:
        raise ClusterError(f"{node} is running: kill it before dropping its unsynced writes")
    try:
        return dict(layer.crash(mode=mode, seed=seed))
    except LazyFSError as e:
        raise ClusterError(str(e)) from None


def fail_layer(layers: Mapping[str, Any], node: str, mode: str) -> dict[str, int]:
    """Make ``node``'s disk fail fsyncs (``"fsync"``), fsyncs and writes (``"all"``) or
    nothing (``"none"``) on its lose-unsynced layer (both backends); answers what
    failed since the last call."""
    from harness.lazyfs import LazyFSError

    layer = _layer(layers, node)
    try:
        return dict(layer.fail(mode))
    except LazyFSError as e:
        raise ClusterError(str(e)) from None


def layer_stats(layers: Mapping[str, Any], node: str) -> dict[str, int]:
    """What a crash of ``node`` would lose now, and how often it fsynced (both backends)."""
    from harness.lazyfs import LazyFSError

    layer = _layer(layers, node)
    try:
        return dict(layer.stats())
    except LazyFSError as e:
        raise ClusterError(str(e)) from None


def _layer(layers: Mapping[str, Any], node: str) -> Any:
    layer = layers.get(node)
    if layer is None:
        raise ClusterError("this cluster has no lose-unsynced layer (build it with "
                           "lose_unsynced=True)")
    return layer


def free_port(host: str = HOST) -> int:
    """A port free right now, below the ephemeral range (see :mod:`harness.sockets`)."""
    return sockets.free_port(host)


def _create_proxy(tp: Any, name: str, upstream: str) -> Any:
    """A proxy listening below the ephemeral range: a disabled proxy's port is polled
    by clients, which must not be given it as their own (see :mod:`harness.sockets`).
    A port taken between the probe and the bind is retried."""
    from harness.toxiproxy import ToxiproxyError

    for attempt in range(5):
        try:
            return tp.create_proxy(name, listen=f"{HOST}:{free_port()}", upstream=upstream)
        except ToxiproxyError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


class _PortPool:
    """Free ports held open until the processes that will bind them start.

    Releasing a probed port at once (as ``free_port`` does) lets the proxies,
    asked for port 0, be given that very port a moment later: the node then
    fails to bind. Holding the sockets until launch closes that window.
    """

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def take(self, host: str = HOST) -> int:
        s = sockets.hold_free_port(host)
        self._held.append(s)
        return int(s.getsockname()[1])

    def release(self) -> None:
        for s in self._held:
            s.close()
        self._held.clear()


class _Proc:
    """One tracked process with its log file."""

    def __init__(self, name: str, launch: NodeLaunch, log_path: Path, cwd: Path,
                 on_start: Callable[[str, int], None] | None = None) -> None:
        self.name = name
        self.launch = launch
        self.log_path = log_path
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.paused = False
        self._on_start = on_start  # records the pid, so gc finds it if we are SIGKILLed

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.launch.env}
        self.popen = subprocess.Popen(
            list(self.launch.argv), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.cwd, env=env, start_new_session=True,
        )
        self.paused = False
        if self._on_start is not None:
            self._on_start(self.name, self.popen.pid)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, *, grace_s: float = 3.0) -> None:
        if self.popen is not None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


class LocalCluster:
    """A system's cluster as local processes; use as a context manager."""

    def __init__(
        self,
        system: System,
        *,
        nodes: int = 3,
        run_dir: Path,
        run_id: str,
        toxiproxy_url: str | None = None,
        load_balancer: bool = True,
        env: Mapping[str, str] | None = None,
        lose_unsynced: bool = False,
        clock_faults: bool = False,
    ) -> None:
        if nodes < 1:
            raise ClusterError("a cluster needs at least one node")
        self.system = system
        self.run_id = run_id
        self.nodes = tuple(f"n{i}" for i in range(1, nodes + 1))
        # absolute: HAProxy runs with the run folder as its working directory, and a
        # relative path (the default ``reports``) would be resolved from there
        self.run_dir = Path(run_dir).resolve()
        self.log_dir = self.run_dir / "logs"
        self.env = dict(env or {})
        if peer_addressing(system) != "proxied":
            raise ClusterError(
                f"system {system.name} addresses its peers by name, which only the docker "
                "backend can route through proxies (use --backend docker)")
        self.use_lb = load_balancer and isinstance(system, LoadBalanced)
        self.links: list[Link] = plan_links(self.nodes, system.peer_roles, system.client_role,
                                            load_balancer=self.use_lb)
        self._given_toxiproxy = toxiproxy_url
        self._toxiproxy: Any = None  # ServerProcess when we started it
        self._toxiproxy_url: str | None = toxiproxy_url
        self._procs: dict[str, _Proc] = {}
        self._listen: dict[str, dict[str, Address]] = {}
        self._proxy_addr: dict[str, Address] = {}
        self._lb: _Proc | None = None
        self._lb_addr: Address | None = None
        self._lb_stats: Address | None = None
        self._data_root: Path | None = None
        self._torn_down = False
        self._in_teardown = False
        self._record: _Record | None = None
        # lose-unsynced: a harness.lazyfs layer mounted under each node's data dir
        self.lose_unsynced_enabled = lose_unsynced
        self._layers: dict[str, Any] = {}  # node -> harness.lazyfs.LazyMount
        self._clock: dict[str, float] = {}  # node -> wall-clock offset (s) last set
        # clock faults: nodes start under libfaketime (only runs that use them: the
        # preload costs every time() call about 4 us and a little scheduling)
        self.clock_faults = clock_faults

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def start(self) -> None:
        from harness.toxiproxy import ToxiproxyClient, toxiproxy_server

        atexit.register(self.teardown)
        _guard_signals(self)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        record = self._record = _Record.create(self.run_id, self.run_dir)
        self._data_root = Path(tempfile.mkdtemp(prefix=f"harness-{self.run_id}-"))
        record.add_path(self._data_root)
        if self._toxiproxy_url is None:
            self._toxiproxy = toxiproxy_server(host=HOST)
            self._toxiproxy_url = self._toxiproxy.url
            record.add_child("toxiproxy", self._toxiproxy.process.pid)
            log = getattr(getattr(self._toxiproxy, "_log", None), "name", None)
            if log:  # its stderr, a temp file the server removes when stopped
                record.add_path(Path(log))
        else:
            record.set_shared_toxiproxy(self._toxiproxy_url,
                                              [link.name for link in self.links])
        pool = _PortPool()
        try:
            for n in self.nodes:
                self._listen[n] = {role: Address(HOST, pool.take()) for role in self.system.ports}
            if self.use_lb:
                self._lb_addr = Address(HOST, pool.take())
                self._lb_stats = Address(HOST, pool.take())
            with ToxiproxyClient(self.toxiproxy_url()) as tp:
                for link in self.links:
                    upstream = self._listen[link.dst][link.role]
                    info = _create_proxy(tp, link.name, str(upstream))
                    self._proxy_addr[link.name] = Address(HOST, info.port)
        finally:
            pool.release()
        for i, n in enumerate(self.nodes):
            launch = self._clock_launch(n, self.system.launch(self._context(n, i)))
            proc = _Proc(n, launch, self.log_dir / f"{n}.log",
                         project_root(), on_start=record.add_child)
            self._procs[n] = proc
            proc.start()
        if self.use_lb:
            self._start_lb()

    def _context(self, node: str, index: int) -> NodeContext:
        assert self._data_root is not None
        peers = {
            other: {r: self._proxy_addr[link_name(node, other, r)] for r in self.system.peer_roles}
            for other in self.nodes if other != node
        }
        data = self._data_root / node
        data.mkdir(parents=True, exist_ok=True)
        if self.lose_unsynced_enabled and node not in self._layers:
            self._mount_layer(node, data)
        return NodeContext(node, index, self.nodes, self._listen[node], peers, str(data),
                           self.env)

    def _clock_launch(self, node: str, launch: NodeLaunch) -> NodeLaunch:
        """The node's launch under libfaketime, when the run has clock faults and its system
        takes them (see harness.clock). The control file lives in the run's temp data,
        removed at teardown."""
        if not (self.clock_faults and clock.supports(self.system) and clock.available()):
            return launch
        assert self._data_root is not None
        control = self._data_root / "clock" / node
        control.parent.mkdir(exist_ok=True)
        clock.write_offset(control, self._clock.get(node, 0.0))
        env = {**launch.env, **clock.preload_env(str(control), launch.env)}
        return dataclasses.replace(launch, env=env)

    def set_clock_offset(self, node: str, seconds: float) -> None:
        """Step ``node``'s wall clock to real time plus ``seconds`` (its monotonic clock
        does not move); it keeps the offset across restarts until set again."""
        self._check(node)
        if not self.clock_faults:
            raise ClusterError("this cluster was built without clock faults "
                               "(LocalCluster(clock_faults=True) starts nodes under libfaketime)")
        if not clock.supports(self.system):
            raise ClusterError(f"system {self.system.name} does not run under libfaketime "
                               "(it declares no clock_control = 'faketime')")
        if not clock.available() or self._data_root is None:
            raise ClusterError(f"libfaketime is not installed ({clock.LIBFAKETIME}: "
                               "apt-get install faketime) or the cluster is not started")
        clock.write_offset(self._data_root / "clock" / node, seconds)
        self._clock[node] = seconds

    def clock_offset(self, node: str) -> float:
        return self._clock.get(self._check(node), 0.0)

    def _mount_layer(self, node: str, data: Path) -> None:
        """Mount the lose-unsynced layer on ``data`` (durable data in ``.disk/<node>``)."""
        from harness.lazyfs import LazyFSError, LazyMount

        assert self._data_root is not None
        layer = LazyMount(data, self._data_root / ".disk" / node,
                          log=self.log_dir / f"{node}.lazyfs.log")
        try:
            layer.start()
        except LazyFSError as e:
            raise ClusterError(str(e)) from None
        self._layers[node] = layer
        if self._record is not None and layer.pid is not None:
            self._record.add_child(f"{node}-lazyfs", layer.pid)

    def lose_unsynced(self, node: str, *, mode: str = "drop", seed: int | None = None
                      ) -> dict[str, int]:
        """Drop what ``node`` wrote and did not fsync (see :mod:`harness.lazyfs`); the
        node must be down (a crash cannot lose the cache of a process still writing)."""
        node = self._check(node)
        return crash_layer(self._layers, node, running=self._procs[node].running(),
                           mode=mode, seed=seed)

    def disk_errors(self, node: str, mode: str) -> dict[str, int]:
        """Make ``node``'s disk fail with EIO (see :mod:`harness.lazyfs.model`):
        ``"fsync"``, ``"all"`` (writes too) or ``"none"``; needs the layer."""
        return fail_layer(self._layers, self._check(node), mode)

    def data_dir(self, node: str) -> Path:
        """Where ``node`` keeps its data (on the lose-unsynced layer when it is on)."""
        if self._data_root is None:
            raise ClusterError("the cluster is not started")
        return self._data_root / self._check(node)

    def lose_unsynced_stats(self, node: str) -> dict[str, int]:
        """What a crash of ``node`` would lose now, and how often it fsynced (layer only)."""
        return layer_stats(self._layers, self._check(node))

    def _start_lb(self) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise ClusterError("haproxy is not installed (apt-get install haproxy)")
        assert isinstance(self.system, LoadBalanced)
        assert self._lb_addr is not None and self._lb_stats is not None
        servers = {n: self._proxy_addr[link_name(LB, n, self.system.client_role)]
                   for n in self.nodes}
        cfg = haproxy_config(bind=self._lb_addr, servers=servers,
                             check=self.system.health_check, stats=self._lb_stats,
                             retry_on=getattr(self.system, "lb_retry_on", "conn-failure"))
        cfg_path = self.run_dir / "haproxy.cfg"
        cfg_path.write_text(cfg)
        self._lb = _Proc(LB, NodeLaunch((haproxy, "-db", "-f", str(cfg_path))),
                         self.log_dir / "haproxy.log", self.run_dir,
                         on_start=self._record.add_child if self._record else None)
        self._lb.start()
        deadline = time.monotonic() + 10
        while not _port_open(self._lb_stats):
            if not self._lb.running():
                raise ClusterError(f"haproxy exited; see {self._lb.log_path}")
            if time.monotonic() > deadline:
                raise ClusterError("haproxy did not open its stats socket within 10 s")
            time.sleep(0.05)

    def teardown(self) -> None:
        """Stop every process, remove our proxies, the temp data and the run's record.

        Safe to call again, and resumable: it is marked done only at its end, so
        when a signal interrupts it the next call (the runner's, or ``atexit``)
        finishes the job; each step is idempotent.
        """
        if self._torn_down or self._in_teardown:
            return
        self._in_teardown = True
        try:
            for proc in [*self._procs.values(), *([self._lb] if self._lb else [])]:
                proc.stop()
            for layer in self._layers.values():  # after the nodes, before rmtree
                layer.stop()
            if self._toxiproxy is not None:
                self._toxiproxy.stop()
            elif self._given_toxiproxy is not None and self._proxy_addr:
                # a shared server: remove only our proxies
                _delete_proxies(self._given_toxiproxy, list(self._proxy_addr))
            if self._data_root is not None:
                shutil.rmtree(self._data_root, ignore_errors=True)
            if self._record is not None:
                self._record.remove()
            self._torn_down = True
        finally:
            self._in_teardown = False
        _unguard_signals(self)
        with contextlib.suppress(Exception):
            atexit.unregister(self.teardown)

    # --- addresses -------------------------------------------------------------------

    def client_address(self, node: str) -> Address:
        return self._listen[self._check(node)][self.system.client_role]

    def address(self, node: str, role: str) -> Address:
        """Where the node listens for ``role`` (local processes are reached directly)."""
        ports = self._listen[self._check(node)]
        if role not in ports:
            raise ClusterError(f"system {self.system.name} has no port role {role!r}")
        return ports[role]

    def lb_address(self) -> Address | None:
        return self._lb_addr

    def lb_stats_address(self) -> Address | None:
        return self._lb_stats

    def toxiproxy_url(self) -> str:
        if self._toxiproxy_url is None:
            raise ClusterError("the cluster is not started")
        return self._toxiproxy_url

    # --- faults ----------------------------------------------------------------------

    def _check(self, node: str) -> str:
        if node not in self.nodes:
            raise ClusterError(f"no node {node!r} in {list(self.nodes)}")
        return node

    def kill(self, node: str) -> None:
        proc = self._procs[self._check(node)]
        proc.signal(signal.SIGKILL)
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)

    def restart(self, node: str) -> None:
        proc = self._procs[self._check(node)]
        if proc.running():
            self.kill(node)
        proc.stop(grace_s=0)
        proc.start()

    def pause(self, node: str) -> None:
        proc = self._procs[self._check(node)]
        proc.signal(signal.SIGSTOP)
        proc.paused = True

    def resume(self, node: str) -> None:
        proc = self._procs[self._check(node)]
        proc.signal(signal.SIGCONT)
        proc.paused = False

    def is_running(self, node: str) -> bool:
        return self._procs[self._check(node)].running()

    def cpu_usage(self, node: str) -> tuple[str, float] | None:
        """The node's process group's CPU time (:func:`harness.cluster.cpu.group_cpu`)."""
        proc = self._procs[self._check(node)]
        if proc.popen is None or not proc.running():
            return None
        return group_cpu(proc.popen.pid)

    def collect_logs(self, dest: Path) -> Mapping[str, Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        for name, proc in [*self._procs.items(), *([(LB, self._lb)] if self._lb else [])]:
            target = dest / proc.log_path.name
            if proc.log_path.resolve() != target.resolve() and proc.log_path.exists():
                shutil.copyfile(proc.log_path, target)
            out[name] = target
        if isinstance(self.system, HasLogFiles) and self._data_root is not None:
            for node in self._procs:
                for rel in self.system.log_files(node):
                    src = self._data_root / node / rel
                    if src.is_file():
                        target = dest / f"{node}.{src.name}"
                        shutil.copyfile(src, target)
                        out[target.name] = target
        return out

    def wait_ready(self, *, timeout_s: float = 30.0) -> None:
        """Until every node passes its health check and, with an LB, every server is UP.

        A run must not start before this: HAProxy starts its servers DOWN until
        they pass ``rise`` checks, and a node is unhealthy until it has a leader.
        """
        from harness.cluster.haproxy import read_server_states

        if isinstance(self.system, LoadBalanced):
            path = self.system.health_check.path
            self.wait_until(lambda: all(http_status(self.client_address(n), path) == 200
                                        for n in self.nodes),
                            timeout_s=timeout_s, what="every node healthy")
        else:
            self.wait_until(lambda: all(_port_open(self.client_address(n)) for n in self.nodes),
                            timeout_s=timeout_s, what="every node listening")
        if isinstance(self.system, CheckReady):
            system = self.system
            nodes = {n: {r: self.address(n, r) for r in system.ports} for n in self.nodes}
            self.wait_until(lambda: system.ready(nodes, timeout_s=1.0), timeout_s=timeout_s,
                            what=f"{system.name} to say it is ready")
        stats = self._lb_stats
        if stats is not None:
            self.wait_until(lambda: all(s.status == "UP" for s in read_server_states(stats)),
                            timeout_s=timeout_s, what="every server UP in HAProxy")

    def wait_until(self, predicate: Any, *, timeout_s: float, what: str) -> None:
        """Poll ``predicate()`` until true; a clear error naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(Exception):
                if predicate():
                    return
            exited = [n for n, p in self._procs.items() if p.popen is not None and not p.running()
                      and p.popen.returncode not in (None, -signal.SIGKILL)]
            if exited:  # a node that died by itself will not become ready: say so now
                raise ClusterError(f"{', '.join(exited)} exited while waiting for {what} "
                                   f"(logs in {self.log_dir})")
            if time.monotonic() > deadline:
                dead = [n for n, p in self._procs.items() if not p.running()]
                extra = f"; exited: {dead} (logs in {self.log_dir})" if dead else ""
                raise ClusterError(f"timed out after {timeout_s} s waiting for {what}{extra}")
            time.sleep(0.05)


def _port_open(addr: Address) -> bool:
    try:
        with sockets.connect(addr.host, addr.port, timeout=0.2):
            return True
    except OSError:
        return False


def http_status(addr: Address, path: str, *, timeout_s: float = 1.0) -> int:
    """The HTTP status of a GET (0 when nothing answered)."""
    try:
        return sockets.http_get(addr.host, addr.port, path, timeout=timeout_s)[0]
    except (OSError, ValueError, http.client.HTTPException):
        return 0


#: clusters (by id) up in this process while our SIGTERM/SIGHUP handler is installed
_GUARDED: set[int] = set()
_GUARD_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _signal_to_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _guard_signals(cluster: LocalCluster) -> None:
    """While a cluster is up, SIGTERM and SIGHUP raise SystemExit, so ``with`` blocks and
    ``atexit`` stop its processes (by default these signals end Python on the spot, and
    the processes, each in its own session, would outlive it). Only in the main thread,
    and only for a signal nobody handles yet: ``harness run`` has its own handlers
    (:mod:`harness.interrupts`), which this leaves alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not _GUARDED:
        for sig in _GUARD_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _signal_to_exit)
    _GUARDED.add(id(cluster))


def _unguard_signals(cluster: LocalCluster) -> None:
    if id(cluster) not in _GUARDED:
        return
    _GUARDED.discard(id(cluster))
    if not _GUARDED:
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in _GUARD_SIGNALS:
                if signal.getsignal(sig) is _signal_to_exit:
                    signal.signal(sig, signal.SIG_DFL)


def _delete_proxies(url: str, names: list[str]) -> None:
    """Remove named proxies from a shared Toxiproxy, ignoring any that are gone."""
    with contextlib.suppress(Exception):
        from harness.toxiproxy import ToxiproxyClient

        with ToxiproxyClient(url) as tp:
            for name in names:
                with contextlib.suppress(Exception):
                    tp.delete_proxy(name)


class _Record:
    """A local run's record in the state dir: its owner, every child process (pid and
    start time: a bare pid could be reused by an unrelated process) and every temp path.

    Rewritten atomically whenever a child starts, so it is complete at any moment the
    harness may be SIGKILLed (except between a child's fork and the next line).
    """

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def create(cls, run_id: str, run_dir: Path) -> _Record:
        folder = state_dir() / "local"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # unique even when two clusters share a run id (tests often call theirs "t")
            fd, name = tempfile.mkstemp(prefix=f"{run_id}.", suffix=".json", dir=folder)
        except OSError as e:
            raise ClusterError(f"cannot record the run's processes in {folder}: "
                               f"{e.strerror}") from None
        os.close(fd)
        rec = cls(Path(name), {"run_id": run_id, "backend": "local",
                               "owner": Owner.current().to_dict(), "run_dir": str(run_dir),
                               "children": {}, "paths": [], "toxiproxy": None})
        rec.save()
        return rec

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def add_child(self, name: str, pid: int) -> None:
        self.data["children"][name] = {"pid": pid, "start": process_start(pid) or ""}
        self.save()

    def add_path(self, path: Path) -> None:
        self.data["paths"].append(str(path))
        self.save()

    def set_shared_toxiproxy(self, url: str, proxies: list[str]) -> None:
        self.data["toxiproxy"] = {"url": url, "proxies": proxies}
        self.save()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def records() -> list[tuple[Path, dict[str, Any]]]:
    """Every local run's record in the state dir (unreadable ones skipped: a record is
    written by replacement, so it is never seen half-written)."""
    folder = state_dir() / "local"
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                out.append((path, data))
    return out


def _kill_child(pid: int, start: str) -> bool:
    """SIGKILL a recorded child and its process group, if it is still the process that
    was recorded; True when something was killed."""
    if not pid_alive(pid, start or None):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # a session leader, as every child is started
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid, start or None) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def gc(*, run_id: str | None = None, force: bool = False) -> dict[str, list[str]]:
    """Remove what local runs left behind: their processes, temp folders and shared
    proxies, and then their records.

    A run whose owner is alive is skipped (listed under ``"skipped"``) unless
    ``force``; so is one owned by a process on another host (its pids mean nothing
    here). ``run_id`` restricts gc to that run.
    """
    done: dict[str, list[str]] = {"processes": [], "folders": [], "skipped": []}
    for path, rec in records():
        rid = str(rec.get("run_id", path.stem))
        if run_id is not None and rid != run_id:
            continue
        owner = Owner.from_dict(rec.get("owner"))
        alive = owner.alive() if owner is not None else False
        if alive is None:
            done["skipped"].append(f"{rid} (owner on host {owner.host if owner else '?'})")
            continue
        if alive and not force:
            done["skipped"].append(f"{rid} (owner {owner.describe() if owner else '?'} "
                                   "is alive)")
            continue
        children = rec.get("children")
        for name, child in (children.items() if isinstance(children, dict) else ()):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                pid = int(child["pid"])
                if _kill_child(pid, str(child.get("start") or "")):
                    done["processes"].append(f"{rid}/{name} (pid {pid})")
        shared = rec.get("toxiproxy")
        if isinstance(shared, dict) and shared.get("url"):
            _delete_proxies(str(shared["url"]), [str(n) for n in shared.get("proxies") or []])
        for p in rec.get("paths") or []:
            target = Path(str(p))
            if target.is_dir():
                from harness.lazyfs.mount import unmount_under

                unmount_under(target)  # a lose-unsynced layer's mounts, if any
                shutil.rmtree(target, ignore_errors=True)
                done["folders"].append(str(target))
            elif target.exists():
                with contextlib.suppress(OSError):
                    target.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return done
