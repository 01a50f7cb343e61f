"""The workload protocol shared by every workload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from harness.client import Client, Outcome
from harness.generator import Phase
from harness.history import Op, OpType

__all__ = ["FinalContext", "Workload", "enqueued_ids"]


class FinalContext(Protocol):
    """What a workload's final phase may use: a client and the recorder.

    ``nodes`` names the cluster's nodes and ``pinned_client(node)`` opens a
    client that talks to that node directly, bypassing the load balancer:
    final reads through every node catch a replica whose applied state
    diverged, which reads through the LB (served by whichever node leads)
    would hide.
    """

    nodes: Sequence[str]
    #: the system's lease plus its takeover grace (:class:`harness.system.HasLease`),
    #: or None: past it, an item still ``processing`` under one token is stuck
    stuck_after_ms: float | None

    def pinned_client(self, node: str) -> Client:
        """A client that sends every request to ``node`` itself."""
        ...

    def call(self, client: Client, f: str, value: Any) -> tuple[Op, Outcome]:
        """Invoke through ``client``, recording invocation and completion."""
        ...

    def history_so_far(self) -> Sequence[Op]: ...

    def note(self, f: str, value: Any) -> None:
        """Record a fact of the final phase (e.g. how it waited) as a harness op."""
        ...

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


def enqueued_ids(ctx: FinalContext) -> list[str]:
    """Every item id an enqueue was invoked with, in enqueue order (``t2`` before ``t10``)."""
    ids = {op.value["id"] for op in ctx.history_so_far()
           if op.f == "enqueue" and op.type is OpType.INVOKE and isinstance(op.value, dict)}
    return sorted(ids, key=lambda s: (len(str(s)), str(s)))
