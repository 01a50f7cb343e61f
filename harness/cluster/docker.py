"""The Docker backend: a system's nodes in containers on one private network per run.

The wiring is the local backend's (see :func:`harness.cluster.backend.plan_links`),
moved into containers:

* one bridge network per run, named after the run; nothing else joins it;
* one container per node, from the system's image, listening on ``0.0.0.0``
  on the system's container ports and reaching every peer through the proxy
  container (``<proxy container>:<20000 + link index>``), so a toxic acts on
  exactly one directed link. A system with ``peer_addressing = "named"``
  dials its peers by node name instead (``n2:2380``, the same string on
  every node): each peer name resolves, inside the node, to a placeholder
  address (``198.18.0.<k>``, a range reserved for benchmarks) and a NAT rule
  in the node's own network namespace rewrites connections to it into the
  link's proxy. The rules are written by the node's command itself at every
  start, before the system runs, so a restarted node cannot slip past its
  proxies; without them a placeholder leads nowhere (fail closed);
* one proxy container running *our* Toxiproxy server (the registry-free base
  image plus ``harness/toxiproxy/``: no PyPI package is needed inside);
* one HAProxy container (the same image; the base has haproxy) whose servers
  are the proxy container's LB -> node proxies, so a cut-off or slow node
  looks unresponsive to the LB, as the product brief wants.

The harness on the host reaches only ports published on 127.0.0.1: the LB,
its stats socket (runtime API over TCP), the Toxiproxy API and each node's
ports, every role (clients, and diagnostics). Host ports are chosen up front, not left to Docker,
because Docker hands out a *new* ephemeral port when a container is started
again: a restarted node would otherwise move.

Docker-level faults: kill is ``docker kill`` (SIGKILL to the whole container),
restart starts the same container again (its data lives in a named volume, so
the write-ahead log survives), pause is ``docker pause`` (cgroup freezer: an
unresponsive instance, not a dead one).

Everything the backend creates carries the labels ``harness=1``,
``harness.run=<run id>`` and the run's owner (``harness.owner.pid``,
``.host``, ``.start``). Teardown removes all of it on a normal exit, on an
exception, on Ctrl-C, on SIGTERM (turned into ``SystemExit`` while a cluster
is up) and from an ``atexit`` hook; :func:`gc` removes what a run killed with
SIGKILL left behind (``harness gc`` only where the owner is gone).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import re
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any

from harness import clock, sockets
from harness.cluster.backend import LB, Link, link_name, plan_links
from harness.cluster.cpu import cgroup_cpu
from harness.cluster.haproxy import haproxy_config, read_server_states
from harness.cluster.image import BaseSpec, ImageSpec, ensure_image
from harness.cluster.local import (
    ClusterError,
    crash_layer,
    fail_layer,
    free_port,
    http_status,
    layer_stats,
)
from harness.cluster.owner import Owner
from harness.system import (
    Address,
    CheckReady,
    HasLogFiles,
    LoadBalanced,
    NodeContext,
    System,
    peer_addressing,
    project_root,
)

__all__ = [
    "HARNESS_LABEL",
    "RUN_LABEL",
    "DockerCluster",
    "docker_client",
    "engine_available",
    "gc",
    "infra_image",
]

HOST = "127.0.0.1"
#: every object the harness creates carries ``harness=1`` ...
HARNESS_LABEL = "harness"
#: ... and ``harness.run=<run id>``, which :func:`gc` and teardown select on
RUN_LABEL = "harness.run"

TOXIPROXY = "toxiproxy"
TOXIPROXY_API_PORT = 8474
#: the proxy of link ``i`` (in :attr:`DockerCluster.links` order) listens on this + i
PROXY_PORT_BASE = 20000
LB_PORT = 8000
LB_STATS_PORT = 9000
DATA_DIR = "/data"
#: each node container's libfaketime control file (harness.clock)
CLOCK_FILE = "/tmp/harness-clock"
HAPROXY_CFG = "/etc/haproxy/harness.cfg"
#: placeholder addresses of peers under named addressing: node ``k`` (1-based)
#: is ``198.18.0.k`` inside every other node (RFC 2544's benchmarking range)
PLACEHOLDER_NET = "198.18.0"
#: what the proxy and LB image needs from Debian
INFRA_PACKAGES = ("python3", "haproxy", "tini")


def docker_client(*, timeout_s: float = 120.0) -> Any:
    """A docker SDK client for the engine in the environment; ClusterError if unreachable.

    ``timeout_s`` bounds each API call; it is generous because importing a base
    image or building one is a single long call.
    """
    try:
        import docker

        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
        return client
    except Exception as e:  # DockerException, requests' errors, a missing socket
        raise ClusterError(f"no Docker engine reachable: {e}") from None


def engine_available() -> bool:
    """Whether a Docker engine answers (tests skip, or fail in CI, when it does not)."""
    try:
        docker_client(timeout_s=5).close()
        return True
    except ClusterError:
        return False


def infra_image(system_image: object = None) -> ImageSpec:
    """The image of the proxy and LB containers: a base with python3 and haproxy, plus
    our Toxiproxy server and the one harness module it imports (``harness.errors``).

    It is built on the system's own base (``system_image``, the system's
    ``image()``) when that base already has those packages: one debootstrap
    instead of two. An empty ``harness/__init__.py`` replaces the real one, which
    would import the whole harness and its PyPI dependencies; the server needs
    only the standard library.
    """
    base = BaseSpec(packages=INFRA_PACKAGES)
    if isinstance(system_image, ImageSpec) and set(INFRA_PACKAGES) <= set(
            system_image.base.packages):
        base = system_image.base
    root = project_root() / "harness"
    return ImageSpec(
        name="harness-infra",
        base=base,
        files={"app/harness/toxiproxy": root / "toxiproxy",
               "app/harness/errors.py": root / "errors.py",
               "app/harness/sockets.py": root / "sockets.py"},
        dockerfile=(
            "COPY app /opt/harness\n"
            "RUN : > /opt/harness/harness/__init__.py\n"
            "WORKDIR /opt/harness\n"
            "ENV PYTHONPATH=/opt/harness PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1\n"
            'ENTRYPOINT ["/usr/bin/tini", "--"]\n'
        ),
    )


def _labels(run_id: str) -> dict[str, str]:
    """Every object's labels: the harness's, the run's, and the run's owner (pid, host,
    process start time), by which ``harness gc`` tells a live run from a killed one."""
    return {HARNESS_LABEL: "1", RUN_LABEL: run_id, **Owner.current().labels()}


def _remove_layers(run_id: str | None, errors: list[str]) -> None:
    """Unmount and remove the lose-unsynced layers' folders of one run (or of every run)
    on this host: a SIGKILLed harness leaves them mounted, with their layer processes
    (a layer's loop ends once its mount is gone)."""
    import glob
    import shutil
    import tempfile

    from harness.lazyfs.mount import unmount_under

    pattern = f"harness-{run_id}-lazyfs-*" if run_id is not None else "harness-*-lazyfs-*"
    for folder in glob.glob(str(Path(tempfile.gettempdir()) / pattern)):
        unmount_under(Path(folder))
        shutil.rmtree(folder, ignore_errors=True)
        if Path(folder).exists():
            errors.append(f"lose-unsynced layer folder {folder}: could not be removed")


def _explain(e: BaseException) -> str:
    """The daemon's own words for an API error (``explanation``), else the exception."""
    return str(getattr(e, "explanation", None) or e)


def gc(client: Any = None, *, run_id: str | None = None) -> dict[str, list[str]]:
    """Remove every container, network and volume of one run (``run_id``), or of every
    harness run (label ``harness=1``), e.g. after a run was killed with SIGKILL.

    Images are left alone: they are the build cache. Returns the names removed;
    raises ClusterError naming whatever could not be removed, after trying all.
    """
    import docker.errors

    own = client is None
    client = client or docker_client()
    selector = f"{RUN_LABEL}={run_id}" if run_id is not None else f"{HARNESS_LABEL}=1"
    done: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    errors: list[str] = []

    def attempt(kind: str, name: str, remove: Callable[[], None]) -> None:
        for i in range(5):  # a network can stay busy for a moment after its containers go
            try:
                remove()
                done[kind].append(name)
                return
            except docker.errors.NotFound:
                return
            except Exception as e:
                if i == 4:
                    errors.append(f"{kind[:-1]} {name}: {_explain(e)}")
                else:
                    time.sleep(0.2 * (i + 1))

    try:
        filters = {"label": selector}
        for c in client.containers.list(all=True, filters=filters):
            attempt("containers", c.name, functools.partial(c.remove, force=True, v=True))
        for n in client.networks.list(filters=filters):
            attempt("networks", n.name, n.remove)
        for v in client.volumes.list(filters=filters):
            attempt("volumes", v.name, functools.partial(v.remove, force=True))
        _remove_layers(run_id, errors)
    finally:
        if own:
            client.close()
    if errors:
        raise ClusterError("could not remove: " + "; ".join(errors))
    return done


class DockerCluster:
    """A system's cluster as Docker containers; use as a context manager."""

    def __init__(
        self,
        system: System,
        *,
        nodes: int = 3,
        run_dir: Path,
        run_id: str,
        load_balancer: bool = True,
        env: Mapping[str, str] | None = None,
        client: Any = None,
        start_timeout_s: float = 30.0,
        lose_unsynced: bool = False,
        clock_faults: bool = False,
    ) -> None:
        if nodes < 1:
            raise ClusterError("a cluster needs at least one node")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id):  # after "harness-" in every name
            raise ClusterError(f"run id {run_id!r} cannot name Docker objects "
                               "(letters, digits, '_', '.', '-')")
        self.system = system
        self.run_id = run_id
        self.nodes = tuple(f"n{i}" for i in range(1, nodes + 1))
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / "logs"
        self.env = dict(env or {})
        self.use_lb = load_balancer and isinstance(system, LoadBalanced)
        self.links: list[Link] = plan_links(self.nodes, system.peer_roles, system.client_role,
                                            load_balancer=self.use_lb)
        self.start_timeout_s = start_timeout_s
        self.prefix = f"harness-{run_id}"
        self.network_name = self.prefix
        self._client = client
        self._own_client = client is None
        self._containers: dict[str, Any] = {}  # node / "lb" / "toxiproxy" -> Container
        self._proxy_port = {link.name: PROXY_PORT_BASE + i for i, link in enumerate(self.links)}
        self._addr: dict[str, dict[str, Address]] = {}  # node -> role -> published
        self.named_peers = peer_addressing(system) == "named"
        if self.named_peers and len(self.nodes) > 250:
            raise ClusterError("named peer addressing supports at most 250 nodes")
        self._lb_addr: Address | None = None
        self._lb_stats: Address | None = None
        self._toxiproxy_url: str | None = None
        self._owns_labels = False  # set once we know no other run uses this run id
        self._started = False
        self._torn_down = False
        self._in_teardown = False
        self._clock: dict[str, float] = {}  # node -> wall-clock offset (s) last set
        self.clock_faults = clock_faults  # nodes under libfaketime (runs that use clock)
        # lose-unsynced: each node's data dir is a harness.lazyfs layer mounted on the
        # host and bind-mounted into the container, which needs no device, capability or
        # FUSE of its own (see docs/architecture.md)
        self.lose_unsynced_enabled = lose_unsynced
        self._layers: dict[str, Any] = {}  # node -> LazyMount
        self._layer_root: Path | None = None

    def container_name(self, part: str) -> str:
        """The container of a node, of ``"lb"`` or of ``"toxiproxy"`` (its DNS name too)."""
        return f"{self.prefix}-{part}"

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> DockerCluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def start(self) -> None:
        """Build (or find) the images, then start the network, proxy, nodes and LB."""
        if self._started:
            raise ClusterError(f"cluster {self.run_id} was already started")
        self._started = True
        atexit.register(self.teardown)
        self._guard_sigterm()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._client is None:
            self._client = docker_client()
        recipe = self.system.image()
        system_image = self._system_image(recipe)
        infra = self._ensure(infra_image(recipe))
        self._preflight()
        labels = _labels(self.run_id)
        try:
            self._client.networks.create(self.network_name, driver="bridge", labels=labels,
                                         check_duplicate=True)
        except Exception as e:
            raise ClusterError(f"network {self.network_name}: {_explain(e)}") from None
        self._start_toxiproxy(infra)
        for i, node in enumerate(self.nodes):
            self._start_node(node, i, system_image)
        if self.use_lb:
            self._start_lb(infra)

    def _ensure(self, spec: ImageSpec) -> str:
        try:
            return ensure_image(self._client, spec)
        except ClusterError:
            raise
        except Exception as e:
            raise ClusterError(f"image {spec.name}: {e}") from None

    def _system_image(self, image: object) -> str:
        if isinstance(image, ImageSpec):
            return self._ensure(image)
        if isinstance(image, str):
            try:
                self._client.images.get(image)
            except Exception:
                raise ClusterError(f"image {image!r} of system {self.system.name} is not "
                                   "present locally (nothing can be pulled)") from None
            return image
        raise ClusterError(f"system {self.system.name}: image() returned {image!r}, "
                           "neither an ImageSpec nor a tag")

    def _preflight(self) -> None:
        """Refuse a run id whose objects exist: teardown removes by label, and must never
        remove another live run's containers."""
        filters = {"label": f"{RUN_LABEL}={self.run_id}"}
        left = [c.name for c in self._client.containers.list(all=True, filters=filters)]
        left += [n.name for n in self._client.networks.list(filters=filters)]
        left += [v.name for v in self._client.volumes.list(filters=filters)]
        if left:
            raise ClusterError(
                f"run id {self.run_id!r} is in use by {', '.join(sorted(left))}: another run, "
                f"or one that was killed (remove it with harness.cluster.docker.gc(run_id="
                f"{self.run_id!r}))")
        self._owns_labels = True

    def _create(self, part: str, image: str, command: Iterable[str], *,
                ports: Mapping[int, int], environment: Mapping[str, str] | None = None,
                volumes: Mapping[str, Mapping[str, str]] | None = None,
                files: Mapping[str, str] | None = None,
                extra: Mapping[str, Any] | None = None) -> Any:
        """Create (and track), copy ``files`` in, then start one container.

        ``ports`` maps a container port to the host port it is published on, on
        127.0.0.1 only. Files are copied in rather than bind-mounted, which works
        whatever host the engine runs on.
        """
        name = self.container_name(part)
        try:
            container = self._client.containers.create(
                image, list(command), name=name, hostname=part, detach=True,
                labels=_labels(self.run_id), network=self.network_name,
                environment=dict(environment or {}), volumes=dict(volumes or {}),
                ports={f"{c}/tcp": (HOST, h) for c, h in ports.items()},
                **dict(extra or {}),
            )
        except Exception as e:
            raise ClusterError(f"container {name}: cannot create: {_explain(e)}") from None
        self._containers[part] = container
        try:
            for path, text in (files or {}).items():
                container.put_archive(str(Path(path).parent), _tar(Path(path).name, text))
            container.start()
        except Exception as e:
            raise ClusterError(f"container {name}: cannot start: {_explain(e)}") from None
        return container

    def _start_toxiproxy(self, image: str) -> None:
        from harness.toxiproxy import ToxiproxyClient

        api = Address(HOST, free_port())
        self._create(TOXIPROXY, image,
                     ["python3", "-m", "harness.toxiproxy", "--host", "0.0.0.0",
                      "--port", str(TOXIPROXY_API_PORT)],
                     ports={TOXIPROXY_API_PORT: api.port})
        url = f"http://{api}"

        def answers() -> bool:
            with ToxiproxyClient(url, timeout_s=1.0) as tp:
                return bool(tp.version())

        self._wait_part(TOXIPROXY, answers, "its API to answer")
        self._toxiproxy_url = url
        proxies = [
            {"name": link.name, "listen": f"0.0.0.0:{self._proxy_port[link.name]}",
             "upstream": f"{self.container_name(link.dst)}:{self.system.ports[link.role]}",
             "enabled": True}
            for link in self.links
        ]
        if proxies:
            try:
                with ToxiproxyClient(url, timeout_s=10.0) as tp:
                    tp.populate(proxies)
            except Exception as e:
                raise ClusterError(f"container {self.container_name(TOXIPROXY)}: cannot "
                                   f"create the link proxies: {e}") from None

    def _context(self, node: str, index: int) -> NodeContext:
        proxy = self.container_name(TOXIPROXY)
        peers = {
            other: {r: (Address(other, self.system.ports[r]) if self.named_peers
                        else Address(proxy, self._proxy_port[link_name(node, other, r)]))
                    for r in self.system.peer_roles}
            for other in self.nodes if other != node
        }
        listen = {role: Address("0.0.0.0", port) for role, port in self.system.ports.items()}
        return NodeContext(node, index, self.nodes, listen, peers, DATA_DIR, self.env,
                           backend="docker")

    def _start_node(self, node: str, index: int, image: str) -> None:
        launch = self.system.launch(self._context(node, index))
        volume = f"{self.prefix}-{node}-data"
        if self.lose_unsynced_enabled:
            volume = str(self._mount_layer(node))  # a bind mount of the host's layer
        else:
            try:
                self._client.volumes.create(volume, labels=_labels(self.run_id))
            except Exception as e:
                raise ClusterError(f"volume {volume}: {_explain(e)}") from None
        self._addr[node] = {role: Address(HOST, free_port()) for role in self.system.ports}
        argv: list[str] = list(launch.argv)
        extra: dict[str, Any] = {}
        if self.named_peers:
            argv = self._named_peers_wrapper(node, argv)
            extra = {"cap_add": ["NET_ADMIN"],
                     "extra_hosts": {o: self._placeholder(o) for o in self.nodes if o != node}}
        env, files = dict(launch.env), {}
        # libfaketime comes with the image (BASE_PACKAGES); preloaded only for clock faults
        if self.clock_faults and clock.supports(self.system):
            env.update(clock.preload_env(CLOCK_FILE, launch.env))
            files[CLOCK_FILE] = clock.offset_spec(0.0) + "\n"
        self._create(node, image, argv,
                     ports={self.system.ports[r]: a.port for r, a in self._addr[node].items()},
                     environment=env, volumes={volume: {"bind": DATA_DIR, "mode": "rw"}},
                     files=files, extra=extra)

    def _mount_layer(self, node: str) -> Path:
        """Mount the lose-unsynced layer for ``node`` on the host; its mount point."""
        import tempfile

        from harness.lazyfs import LazyFSError, LazyMount

        if self._layer_root is None:
            self._layer_root = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-lazyfs-"))
        layer = LazyMount(self._layer_root / node, self._layer_root / ".disk" / node,
                          log=self.log_dir / f"{node}.lazyfs.log")
        try:
            layer.start()
        except LazyFSError as e:
            raise ClusterError(str(e)) from None
        self._layers[node] = layer
        return layer.mountpoint

    def data_dir(self, node: str) -> Path:
        """The host path of ``node``'s data directory (only with the lose-unsynced layer:
        otherwise it is a Docker volume)."""
        layer = self._layers.get(self._check(node))
        if layer is None:
            raise ClusterError("without the lose-unsynced layer a node's data is a volume")
        return Path(layer.mountpoint)

    def lose_unsynced(self, node: str, *, mode: str = "drop", seed: int | None = None
                      ) -> dict[str, int]:
        """Drop what ``node`` wrote and did not fsync; its container must be stopped."""
        node = self._check(node)
        return crash_layer(self._layers, node, running=self.is_running(node), mode=mode,
                           seed=seed)

    def disk_errors(self, node: str, mode: str) -> dict[str, int]:
        """Make ``node``'s disk fail with EIO (see :mod:`harness.lazyfs.model`):
        ``"fsync"``, ``"all"`` (writes too) or ``"none"``; needs the layer."""
        return fail_layer(self._layers, self._check(node), mode)

    def lose_unsynced_stats(self, node: str) -> dict[str, int]:
        """What a crash of ``node`` would lose now, and how often it fsynced."""
        return layer_stats(self._layers, self._check(node))

    def _stop_layers(self) -> None:
        """After the containers are gone: unmount the layers and remove their folder."""
        import shutil

        for layer in self._layers.values():
            layer.stop()
        self._layers.clear()
        if self._layer_root is not None:
            shutil.rmtree(self._layer_root, ignore_errors=True)
            self._layer_root = None

    def _placeholder(self, node: str) -> str:
        return f"{PLACEHOLDER_NET}.{self.nodes.index(node) + 1}"

    def _proxy_ip(self) -> str:
        c = self._containers[TOXIPROXY]
        c.reload()
        ip = c.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]
        if not ip:
            raise ClusterError(f"container {c.name} has no address on {self.network_name}")
        return str(ip)

    def _named_peers_wrapper(self, node: str, argv: list[str]) -> list[str]:
        """``argv`` behind a shell that first routes each peer placeholder to its proxy.

        One DNAT rule per (peer, peer role): ``198.18.0.k:<role port>`` becomes
        ``<proxy>:<port of link node->peer>``. Any failure stops the node
        before the system starts, with the reason in its log.
        """
        proxy = self._proxy_ip()
        rules = []
        for other in self.nodes:
            if other == node:
                continue
            for role in self.system.peer_roles:
                port = self.system.ports[role]
                to = f"{proxy}:{self._proxy_port[link_name(node, other, role)]}"
                rules.append(f"iptables -w -t nat -A HARNESS -p tcp -d {self._placeholder(other)}"
                             f" --dport {port} -j DNAT --to-destination {to}")
        script = "\n".join([
            "set -e",
            "command -v iptables >/dev/null || { echo 'harness: named peer addressing needs "
            "iptables in the image' >&2; exit 97; }",
            # a chain of our own: Docker keeps its DNS rules in nat OUTPUT
            "iptables -w -t nat -N HARNESS 2>/dev/null || iptables -w -t nat -F HARNESS",
            "iptables -w -t nat -C OUTPUT -j HARNESS 2>/dev/null"
            " || iptables -w -t nat -A OUTPUT -j HARNESS",
            *rules,
            'exec "$@"',
        ])
        return ["/bin/sh", "-c", script, "harness-node", *argv]

    def _start_lb(self, image: str) -> None:
        assert isinstance(self.system, LoadBalanced)
        proxy = self.container_name(TOXIPROXY)
        servers = {n: Address(proxy, self._proxy_port[link_name(LB, n, self.system.client_role)])
                   for n in self.nodes}
        cfg = haproxy_config(bind=Address("0.0.0.0", LB_PORT), servers=servers,
                             check=self.system.health_check,
                             stats=Address("0.0.0.0", LB_STATS_PORT),
                             retry_on=getattr(self.system, "lb_retry_on", "conn-failure"))
        (self.run_dir / "haproxy.cfg").write_text(cfg)
        lb, stats = Address(HOST, free_port()), Address(HOST, free_port())
        self._create(LB, image, ["haproxy", "-db", "-f", HAPROXY_CFG],
                     ports={LB_PORT: lb.port, LB_STATS_PORT: stats.port},
                     files={HAPROXY_CFG: cfg})
        # A published port accepts connections before anything listens behind it
        # (Docker's proxy), so only an answer from the runtime API means "up".
        self._wait_part(LB, lambda: bool(read_server_states(stats)), "its stats socket")
        self._lb_addr, self._lb_stats = lb, stats

    def _wait_part(self, part: str, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready()``; fail at once, with its last log lines, if the container exits."""
        deadline = time.monotonic() + self.start_timeout_s
        container = self._containers[part]
        while True:
            with contextlib.suppress(Exception):
                if ready():
                    return
            if not self._alive(container):
                raise ClusterError(f"container {container.name} exited: {self._tail(part)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"container {container.name}: timed out after "
                                   f"{self.start_timeout_s} s waiting for {what}; "
                                   f"{self._tail(part)}")
            time.sleep(0.1)

    def teardown(self) -> None:
        """Save every container's log into the run folder, then remove every container,
        the network and the volumes. Safe to call twice; raises ClusterError only if
        something of the run could not be removed."""
        if self._torn_down or self._in_teardown:
            return
        self._in_teardown = True
        try:
            if self._client is not None and self._containers:
                with contextlib.suppress(Exception):
                    self.collect_logs(self.log_dir)
            if self._client is not None:
                self._remove_all()
            self._stop_layers()
            self._torn_down = True
        finally:
            self._in_teardown = False
            if self._torn_down:
                self._restore_sigterm()
                with contextlib.suppress(Exception):
                    atexit.unregister(self.teardown)
                if self._own_client and self._client is not None:
                    with contextlib.suppress(Exception):
                        self._client.close()

    def _remove_all(self) -> None:
        import docker.errors

        errors = []
        for part, container in self._containers.items():
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception as e:
                errors.append(f"container {self.container_name(part)}: {_explain(e)}")
        if self._owns_labels:
            # also whatever a failed create left untracked, the network and the volumes
            try:
                gc(self._client, run_id=self.run_id)
            except ClusterError as e:
                errors.append(str(e))
        if errors:
            raise ClusterError(f"teardown of run {self.run_id} incomplete: " + "; ".join(errors))

    def _guard_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit while any cluster is up, so ``with`` blocks and
        ``atexit`` run and the containers go; only where nobody handles SIGTERM yet."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not _GUARDED and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        if not _GUARDED:
            signal.signal(signal.SIGTERM, _sigterm_to_exit)
        _GUARDED.add(id(self))

    def _restore_sigterm(self) -> None:
        if id(self) not in _GUARDED:
            return
        _GUARDED.discard(id(self))
        if not _GUARDED:
            with contextlib.suppress(ValueError):  # not the main thread
                if signal.getsignal(signal.SIGTERM) is _sigterm_to_exit:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # --- addresses -------------------------------------------------------------------

    def client_address(self, node: str) -> Address:
        """The node's client port as published on 127.0.0.1 (stable across restarts)."""
        return self.address(node, self.system.client_role)

    def address(self, node: str, role: str) -> Address:
        """The node's port of ``role`` as published on 127.0.0.1 (stable across restarts)."""
        ports = self._addr[self._check(node)]
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

    def _node(self, node: str) -> Any:
        container = self._containers.get(self._check(node))
        if container is None:
            raise ClusterError(f"node {node} has no container (the cluster is not started)")
        return container

    def _docker(self, node: str, verb: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as e:
            raise ClusterError(f"container {self.container_name(node)}: {verb} failed: "
                               f"{_explain(e)}") from None

    def set_clock_offset(self, node: str, seconds: float) -> None:
        """Step ``node``'s wall clock to real time plus ``seconds`` (harness.clock): an
        atomic rewrite of its libfaketime file by ``docker exec`` (no privileges), or,
        in a stopped container, by copying the file in; it survives restarts."""
        c = self._node(node)
        if not self.clock_faults:
            raise ClusterError("this cluster was built without clock faults "
                               "(DockerCluster(clock_faults=True) preloads libfaketime)")
        if not clock.supports(self.system):
            raise ClusterError(f"system {self.system.name} does not run under libfaketime "
                               "(it declares no clock_control = 'faketime')")
        spec = clock.offset_spec(seconds)
        if self._status(c) == "running":
            tmp = f"{CLOCK_FILE}.tmp"
            res = c.exec_run(["sh", "-c", f"echo '{spec}' > {tmp} && mv {tmp} {CLOCK_FILE}"])
            if res.exit_code != 0:
                raise ClusterError(f"container {self.container_name(node)}: cannot set its "
                                   f"clock: {res.output!r}")
        else:  # stopped (killed) or paused: docker exec cannot run there
            self._docker(node, "set clock", lambda: c.put_archive(
                str(PurePosixPath(CLOCK_FILE).parent),
                _tar(PurePosixPath(CLOCK_FILE).name, spec + "\n")))
        self._clock[node] = seconds

    def clock_offset(self, node: str) -> float:
        return self._clock.get(self._check(node), 0.0)

    def kill(self, node: str) -> None:
        """SIGKILL the whole container (``docker kill``) and wait until it has stopped."""
        c = self._node(node)
        if not self.is_running(node):
            return
        self._docker(node, "kill", c.kill)
        self._docker(node, "wait", lambda: c.wait(timeout=10))

    def restart(self, node: str) -> None:
        """Start the node's container again (killing it first if it runs); same volume,
        same published port."""
        c = self._node(node)
        if self._status(c) == "paused":
            self._docker(node, "unpause", c.unpause)
        self.kill(node)
        self._docker(node, "start", c.start)

    def pause(self, node: str) -> None:
        """Freeze every process of the node (``docker pause``): alive but unresponsive.

        Like SIGSTOP in the local backend, pausing a paused node does nothing.
        """
        c = self._node(node)
        if self._status(c) != "paused":
            self._docker(node, "pause", c.pause)

    def resume(self, node: str) -> None:
        """Thaw a paused node; a node that is not paused is left alone (as SIGCONT)."""
        c = self._node(node)
        if self._status(c) == "paused":
            self._docker(node, "unpause", c.unpause)

    def is_running(self, node: str) -> bool:
        """Running or paused (a paused node is alive, as a SIGSTOPped process is)."""
        return self._alive(self._node(node))

    def cpu_usage(self, node: str) -> tuple[str, float] | None:
        """The container's cgroup CPU time, read from the host's cgroup tree
        (:func:`harness.cluster.cpu.cgroup_cpu`); None with an engine on another host."""
        container = self._containers.get(self._check(node))
        return None if container is None else cgroup_cpu(str(container.id))

    @staticmethod
    def _status(container: Any) -> str:
        """Docker's current state of a container ("gone" once it has been removed)."""
        try:
            container.reload()
        except Exception:
            return "gone"
        return str(container.status)

    def _alive(self, container: Any) -> bool:
        return self._status(container) in ("running", "paused", "restarting")

    def collect_logs(self, dest: Path) -> Mapping[str, Path]:
        """Write each container's output (all its runs, across restarts) to
        ``dest/<node|lb|toxiproxy>.log``."""
        dest.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        for part, container in self._containers.items():
            target = dest / f"{part}.log"
            try:
                target.write_bytes(container.logs(stdout=True, stderr=True))
            except Exception as e:
                raise ClusterError(f"container {container.name}: cannot read its logs: "
                                   f"{_explain(e)}") from None
            out[part] = target
            if part in self.nodes and isinstance(self.system, HasLogFiles):
                out.update(self._copy_log_files(part, container, dest))
        return out

    def _copy_log_files(self, node: str, container: Any, dest: Path) -> dict[str, Path]:
        """The system's log files of ``node``, copied out of its (maybe stopped) container;
        a file the node never wrote is skipped."""
        out: dict[str, Path] = {}
        system = self.system
        assert isinstance(system, HasLogFiles)
        for rel in system.log_files(node):
            try:
                stream, _ = container.get_archive(f"{DATA_DIR}/{rel}")
                raw = b"".join(stream)
            except Exception:
                continue
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                member = next((m for m in tar.getmembers() if m.isfile()), None)
                data = tar.extractfile(member) if member is not None else None
                if data is None:
                    continue
                target = dest / f"{node}.{PurePosixPath(rel).name}"
                target.write_bytes(data.read())
            out[f"{node}.{PurePosixPath(rel).name}"] = target
        return out

    def _tail(self, part: str, lines: int = 5) -> str:
        container = self._containers.get(part)
        if container is None:
            return "no container"
        try:
            text = container.logs(stdout=True, stderr=True, tail=lines).decode(errors="replace")
        except Exception as e:
            return f"(no logs: {_explain(e)})"
        text = " | ".join(ln.strip() for ln in text.splitlines() if ln.strip())
        return f"last output: {text}" if text else "no output"

    # --- waiting ---------------------------------------------------------------------

    def wait_ready(self, *, timeout_s: float = 30.0) -> None:
        """Until every node passes its health check and, with an LB, every server is UP.

        As in the local backend: a run must not start before this, since HAProxy
        starts its servers DOWN until they pass ``rise`` checks.
        """
        if isinstance(self.system, LoadBalanced):
            path = self.system.health_check.path
            self.wait_until(lambda: all(http_status(self.client_address(n), path) == 200
                                        for n in self.nodes),
                            timeout_s=timeout_s, what="every node healthy")
        else:
            self.wait_until(lambda: all(_listening(self.client_address(n)) for n in self.nodes),
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

    def wait_until(self, predicate: Callable[[], object], *, timeout_s: float, what: str
                   ) -> None:
        """Poll ``predicate()`` until true; a clear error naming ``what`` (and any
        container that has exited, with its last output) otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(Exception):
                if predicate():
                    return
            if time.monotonic() > deadline:
                dead = [p for p, c in self._containers.items() if not self._alive(c)]
                extra = "".join(f"; {self.container_name(p)} exited, {self._tail(p)}"
                                for p in dead)
                raise ClusterError(f"timed out after {timeout_s} s waiting for {what}{extra}")
            time.sleep(0.05)


#: the clusters (by id) up in this process that installed or share the SIGTERM guard
_GUARDED: set[int] = set()


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _tar(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _listening(addr: Address) -> bool:
    """Whether something listens behind a published port.

    Docker's userland proxy accepts a connection even when nothing listens in
    the container, then closes it; a server that waits for our request (or
    greets us) keeps it open.
    """
    try:
        with sockets.connect(addr.host, addr.port, timeout=0.5) as s:
            s.settimeout(0.3)
            try:
                return s.recv(1) != b""
            except TimeoutError:
                return True
    except OSError:
        return False
