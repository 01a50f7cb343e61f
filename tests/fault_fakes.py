"""A cluster that only records process faults, for testing the nemesis and the
fault driver without processes (shared by test_nemesis_faults and test_runner)."""

from __future__ import annotations

from harness.cluster.backend import Link, plan_links

NODES = ("n1", "n2", "n3")


class FakeCluster:
    """Nodes and links as a real backend plans them; process faults are recorded."""

    def __init__(self, nodes: tuple[str, ...] = NODES) -> None:
        self.nodes = nodes
        self.links: list[Link] = plan_links(nodes, ["peer"], "client", load_balancer=True)
        self.calls: list[tuple[str, str]] = []

    def toxiproxy_url(self) -> str:
        return "http://127.0.0.1:1"

    def client_address(self, node: str) -> tuple[str, int]:
        return ("127.0.0.1", 1000 + self.nodes.index(node))

    def kill(self, node: str) -> None:
        self.calls.append(("kill", node))

    def restart(self, node: str) -> None:
        self.calls.append(("restart", node))

    def pause(self, node: str) -> None:
        self.calls.append(("pause", node))

    def resume(self, node: str) -> None:
        self.calls.append(("resume", node))
