"""ZooKeeper 3.8 (Debian's ``zookeeper``) as a plug-in system: a three-server ensemble.

Each node runs one ZooKeeper server (``QuorumPeerMain``) with a small JVM
heap, since three JVMs share two cores with the harness. Servers name each
other in ``server.N=nK:2888:3888`` lines, the same on every node, so the
adapter asks for *named* peer addressing and the Docker backend sends every
quorum and election connection through the proxy of its directed link.

The register workload runs over znodes (:mod:`harness.systems.zookeeper_client`):
a write is a ``setData`` (or a create), a compare-and-set is a ``setData``
on the version read with the expected value. Each client is pinned to one
server, as a ZooKeeper client is, so reads are served by followers too.

ZooKeeper promises *sequential consistency*, not linearizable reads: a
server answers a read from its own copy, which may lag the leader's. The
``reads`` option picks the read path: ``"plain"`` (the server's copy, so a
lagging follower may answer with a value another client already overwrote)
or ``"sync"`` (``sync()`` first, which makes the server catch up with the
leader before it answers; the ZooKeeper guide's recipe for reading the latest
value). With ``sync`` the register must come out linearizable.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.cluster.image import BaseSpec, ImageSpec
from harness.system import Address, NodeContext, NodeLaunch
from harness.systems.zookeeper_client import ZkRegisterClient, four_letter

__all__ = ["READ_MODES", "ZooKeeper"]

#: python3 and haproxy let the proxy container reuse this base (one debootstrap);
#: the JRE is named because debootstrap does not choose between alternatives
BASE_PACKAGES = ("zookeeper", "openjdk-17-jre-headless", "iptables", "tini", "python3",
                 "haproxy", "iproute2", "procps")

#: the ``reads`` option's values
READ_MODES = ("plain", "sync")

CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


@dataclass
class ZooKeeper:
    """Adapter for a ZooKeeper ensemble; ``tick_ms`` and the limits are its own settings."""

    reads: str = "plain"
    tick_ms: int = 250
    #: ticks a follower may lag (or stay silent) before the leader drops it, and
    #: a follower waits for its leader before it looks for a new one
    sync_limit: int = 4
    init_limit: int = 20
    heap_mb: int = 96
    name: str = "zookeeper"
    ports: Mapping[str, int] = field(
        default_factory=lambda: {"quorum": 2888, "election": 3888, "client": 2181})
    peer_roles: tuple[str, ...] = ("quorum", "election")
    client_role: str = "client"
    peer_addressing: str = "named"
    workloads: tuple[str, ...] = ("register",)

    def __post_init__(self) -> None:
        if self.reads not in READ_MODES:
            raise ValueError(f"reads must be one of {', '.join(READ_MODES)}, "
                             f"not {self.reads!r}")
        for name in ("tick_ms", "sync_limit", "init_limit", "heap_mb"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")

    @property
    def election_timeout_ms(self) -> float:
        """A follower gives up on a silent leader after ``sync_limit`` ticks
        (:class:`harness.system.StatesTimeouts`)."""
        return float(self.tick_ms * self.sync_limit)

    def config(self, ctx: NodeContext) -> str:
        quorum, election = self.ports["quorum"], self.ports["election"]
        lines = [
            f"tickTime={self.tick_ms}", f"initLimit={self.init_limit}",
            f"syncLimit={self.sync_limit}", f"dataDir={ctx.data_dir}/zk",
            f"clientPort={ctx.listen['client'].port}", "quorumListenOnAllIPs=true",
            "admin.enableServer=false", "4lw.commands.whitelist=srvr,mntr,ruok",
            "maxSessionTimeout=20000", "autopurge.purgeInterval=0",
        ]
        lines += [f"server.{i + 1}={n}:{quorum}:{election}" for i, n in enumerate(ctx.nodes)]
        return "".join(f"{ln}\n" for ln in lines)

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        d = ctx.data_dir
        java = ["java", f"-Xmx{self.heap_mb}m", f"-Xms{min(32, self.heap_mb)}m",
                "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
                "-Dzookeeper.root.logger=INFO,CONSOLE", "-Dzookeeper.console.threshold=INFO",
                "-cp", CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                f"{d}/zoo.cfg"]
        script = "\n".join([
            "set -e",
            f"mkdir -p {d}/zk",
            f"printf %s {shlex.quote(self.config(ctx))} > {d}/zoo.cfg",
            f"[ -f {d}/zk/myid ] || echo {ctx.index + 1} > {d}/zk/myid",
            "exec " + " ".join(shlex.quote(a) for a in java),
        ])
        return NodeLaunch(("/bin/sh", "-c", script), dict(ctx.env))

    def image(self) -> ImageSpec:
        return ImageSpec(name="harness-zookeeper", base=BaseSpec(packages=BASE_PACKAGES),
                         dockerfile='ENTRYPOINT ["/usr/bin/tini", "--"]\n')

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> ZkRegisterClient:
        return ZkRegisterClient(address, worker=worker, timeout_s=timeout_s,
                                sync_reads=self.reads == "sync",
                                session_timeout_s=max(4.0, self.tick_ms * 16 / 1000.0))

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float = 1.0
              ) -> bool:
        """Every server serves (``srvr`` names its mode) and exactly one leads."""
        modes = [self._mode(roles[self.client_role], timeout_s) for roles in nodes.values()]
        return None not in modes and modes.count("leader") == 1

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """The server that says it leads (``srvr``); None when none or several do."""
        leaders = [n for n, a in client_addresses.items() if self._mode(a, timeout_s) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    @staticmethod
    def _mode(address: Address, timeout_s: float) -> str | None:
        """``leader``/``follower`` by the ``srvr`` four-letter word; None when it does not
        serve (a server without a quorum answers that it is not serving requests)."""
        try:
            answer = four_letter(address, "srvr", timeout_s=timeout_s)
        except OSError:
            return None
        fields: dict[str, Any] = dict(
            ln.split(": ", 1) for ln in answer.splitlines() if ": " in ln)
        mode = fields.get("Mode")
        return mode.strip() if isinstance(mode, str) and mode.strip() in (
            "leader", "follower", "standalone") else None
