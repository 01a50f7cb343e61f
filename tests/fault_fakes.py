"""A cluster that only records process faults, for testing the nemesis and the
fault driver without processes (shared by test_nemesis_faults and test_runner)."""

from __future__ import annotations

from typing import Any

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


class FakeToxiproxy:
    """Records the toxics in force: (proxy, name) -> (type, stream, attributes, toxicity)."""

    def __init__(self) -> None:
        self.toxics: dict[tuple[str, str], tuple[str, str, dict[str, object], float]] = {}

    def add_toxic(self, proxy: str, *, type: str, name: str, stream: str,
                  attributes: dict[str, object], toxicity: float = 1.0) -> None:
        assert (proxy, name) not in self.toxics, f"{proxy}/{name} added twice"
        assert stream in ("upstream", "downstream")
        self.toxics[(proxy, name)] = (type, stream, dict(attributes), toxicity)

    def remove_toxic(self, proxy: str, name: str) -> None:
        del self.toxics[(proxy, name)]

    def close(self) -> None:
        pass


class NemesisRecorder:
    """The fault driver's recorder, keeping each nemesis op as ``(f, value)``."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, Any]] = []

    def nemesis(self, f: str, value: Any) -> None:
        self.ops.append((f, value))
