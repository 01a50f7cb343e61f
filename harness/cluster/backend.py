"""What every cluster backend does, and the wiring plan they share.

A backend starts a system's nodes, its load balancer and the proxies; gives
the harness the addresses it needs; kills, restarts, pauses and resumes
nodes; collects logs; and tears everything down, always. The wiring (which
proxy carries which directed link) is computed once, as data, by
:func:`plan_links`, so the Docker and local backends cannot disagree on it and
the nemesis can find the proxy of any link by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.system import Address

__all__ = ["Cluster", "Link", "LosesUnsynced", "MeasuresCpu", "link_name", "plan_links"]

LB = "lb"


def link_name(src: str, dst: str, role: str) -> str:
    """The proxy name of the directed link ``src -> dst`` for a port role."""
    return f"{src}-to-{dst}-{role}"


@dataclass(frozen=True)
class Link:
    """One directed link and the proxy that carries it."""

    src: str
    dst: str
    role: str

    @property
    def name(self) -> str:
        return link_name(self.src, self.dst, self.role)


def plan_links(nodes: Sequence[str], peer_roles: Sequence[str], client_role: str,
               *, load_balancer: bool) -> list[Link]:
    """Every proxied link: each ordered node pair per peer role, and LB -> node."""
    links = [Link(a, b, r) for r in peer_roles for a in nodes for b in nodes if a != b]
    if load_balancer:
        links += [Link(LB, n, client_role) for n in nodes]
    return links


@runtime_checkable
class Cluster(Protocol):
    """A running cluster of one system, however it is hosted."""

    @property
    def run_id(self) -> str: ...

    @property
    def nodes(self) -> tuple[str, ...]: ...

    @property
    def links(self) -> Sequence[Link]: ...

    def start(self) -> None: ...

    def client_address(self, node: str) -> Address:
        """A node's client port, reachable from the harness (for diagnostics, pinning)."""
        ...

    def address(self, node: str, role: str) -> Address:
        """Where the harness reaches the node's port of ``role``."""
        ...

    def lb_address(self) -> Address | None:
        """Where clients reach the load balancer, if the system has one."""
        ...

    def lb_stats_address(self) -> Address | None: ...

    def toxiproxy_url(self) -> str: ...

    def kill(self, node: str) -> None: ...

    def restart(self, node: str) -> None: ...

    def pause(self, node: str) -> None: ...

    def resume(self, node: str) -> None: ...

    def is_running(self, node: str) -> bool: ...

    def collect_logs(self, dest: Path) -> Mapping[str, Path]:
        """Copy every node's (and the LB's and proxy's) log into ``dest``."""
        ...

    def teardown(self) -> None:
        """Stop and remove everything the cluster started. Safe to call twice."""
        ...


@runtime_checkable
class MeasuresCpu(Protocol):
    """A cluster that can say how much CPU each node has used (:mod:`harness.cluster.cpu`):
    the evidence for a system's promise to stay within a CPU bound
    (:class:`harness.system.PromisesCpuBound`)."""

    def cpu_usage(self, node: str) -> tuple[str, float] | None:
        """``(incarnation, CPU seconds)`` the node's current incarnation has used, or None
        when it is not running or cannot be measured. The incarnation changes when the
        node is started again (its counter starts again from zero)."""
        ...


@runtime_checkable
class LosesUnsynced(Protocol):
    """A cluster whose nodes' data directories sit on the lose-unsynced layer
    (:mod:`harness.lazyfs`), when it was built with ``lose_unsynced=True``."""

    @property
    def lose_unsynced_enabled(self) -> bool:
        """Whether the layer is under every node's data directory in this cluster."""
        ...

    def lose_unsynced(self, node: str, *, mode: str = "drop", seed: int | None = None
                      ) -> Mapping[str, int]:
        """Drop what ``node`` wrote and did not fsync, as a power loss would. Only while
        the node is down (kill it first, restart it after); says what was dropped."""
        ...
