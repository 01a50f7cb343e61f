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


class StoppableCluster(FakeCluster):
    """A fake cluster that also knows which nodes are down (killed, not yet restarted)."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    def kill(self, node: str) -> None:
        super().kill(node)
        self.down.add(node)

    def restart(self, node: str) -> None:
        super().restart(node)
        self.down.discard(node)

    def is_running(self, node: str) -> bool:
        return node not in self.down


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


class LeaderN2:
    """A system whose leader is always n2 (what the fault kinds' rules resolve against)."""

    def leader(self, client_addresses: dict[str, Any], *, timeout_s: float) -> str | None:
        return "n2"


def drive_one(cluster: Any, kind: str, params: dict[str, Any]) -> tuple[NemesisRecorder, Any]:
    """Start one fault of ``kind`` on ``cluster`` and, as the driver's loop does when it
    started, end it; the recorder and the driver (for its errors and held nodes)."""
    import threading

    from harness.generator import Fault, FaultSchedule
    from harness.nemesis.driver import FaultDriver
    from harness.nemesis.faults import Nemesis

    nem = Nemesis(cluster)
    nem.tp = FakeToxiproxy()  # type: ignore[assignment]
    rec = NemesisRecorder()
    driver = FaultDriver(nem, cluster, LeaderN2(), rec,  # type: ignore[arg-type]
                         FaultSchedule((Fault(kind, 0.0, 1.0, params),)), threading.Event())
    started: dict[int, dict[str, Any]] = {}
    driver._begin(0, started)
    if 0 in started:
        driver._finish(0, started)
    return rec, driver
