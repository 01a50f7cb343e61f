"""The workload protocol shared by every workload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from harness.client import Client, Outcome
from harness.generator import Phase
from harness.history import Op

__all__ = ["FinalContext", "Workload"]


class FinalContext(Protocol):
    """What a workload's final phase may use: a client and the recorder.

    ``nodes`` names the cluster's nodes and ``pinned_client(node)`` opens a
    client that talks to that node directly, bypassing the load balancer:
    final reads through every node catch a replica whose applied state
    diverged, which reads through the LB (served by whichever node leads)
    would hide.
    """

    nodes: Sequence[str]

    def pinned_client(self, node: str) -> Client:
        """A client that sends every request to ``node`` itself."""
        ...

    def call(self, client: Client, f: str, value: Any) -> tuple[Op, Outcome]:
        """Invoke through ``client``, recording invocation and completion."""
        ...

    def history_so_far(self) -> Sequence[Op]: ...

    def deadline_passed(self) -> bool: ...


class Workload(Protocol):
    """A workload: its phases, its final reads or drain, and its checks."""

    name: str
    checkers: tuple[str, ...]
    model: str | None

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]: ...

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        """After faults are healed and the cluster recovered: drain, read final states."""
        ...
