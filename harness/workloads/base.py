"""The workload protocol shared by every workload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from harness.checker.queue import PENDING_STATES
from harness.client import Client, Outcome
from harness.generator import Phase
from harness.history import Op, OpType

__all__ = ["FinalContext", "Workload", "enqueued_ids", "even_sample", "read_each",
           "read_items_through_nodes", "read_unsettled"]


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

    # Optional: ``wrap_client(client, worker) -> Client``, the runner hands each
    # worker's client through it (the register workload's cas compares against
    # values the worker saw: harness.workloads.register.ObservingClient).


def enqueued_ids(ctx: FinalContext) -> list[str]:
    """Every item id an enqueue was invoked with, in enqueue order (``t2`` before ``t10``)."""
    ids = {op.value["id"] for op in ctx.history_so_far()
           if op.f == "enqueue" and op.type is OpType.INVOKE and isinstance(op.value, dict)}
    return sorted(ids, key=lambda s: (len(str(s)), str(s)))


def even_sample(ids: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` of ``ids``, evenly spread, first and last included."""
    if len(ids) <= n:
        return list(ids)
    if n <= 1:
        return list(ids[-1:]) if n == 1 else []
    last = len(ids) - 1
    return [ids[i] for i in sorted({round(i * last / (n - 1)) for i in range(n)})]


def read_items_through_nodes(ctx: FinalContext, ids: Sequence[Any], *, max_items: int) -> None:
    """Read items through every node directly (recorded), after the reads through the LB.

    A node whose applied state diverged answers differently from the one the
    LB picked; reading through each node shows it in the history, beside the
    convergence check's comparison of whole states. At most ``max_items``
    items per node (an even sample) keep the phase short on long runs; a
    node that fails three reads in a row is down and is given up.
    """
    from harness.errors import HarnessError

    sample = even_sample(ids, max_items)
    for node in ctx.nodes:
        try:
            client = ctx.pinned_client(node)
        except HarnessError:
            return  # this run offers no client pinned to a node
        try:
            if not read_each(ctx, client, "read-item", [{"id": iid} for iid in sample]):
                return
        finally:
            client.close()


def read_each(ctx: FinalContext, client: Client, f: str, values: Sequence[Any]) -> bool:
    """Record ``f`` of each value through ``client``; False once the deadline has passed.

    Three failed reads in a row mean the client's node is down: every further
    read would only wait out its timeout, so the rest are skipped.
    """
    misses = 0
    for value in values:
        if ctx.deadline_passed():
            return False
        _, out = ctx.call(client, f, value)
        misses = 0 if out.type is OpType.OK else misses + 1
        if misses >= 3:
            break
    return True


def read_unsettled(ctx: FinalContext, client: Client, ids: Sequence[Any]) -> list[Any]:
    """Read each item (recorded); the ids not yet in a final state (or not answered)."""
    left = []
    for iid in ids:
        _, out = ctx.call(client, "read-item", {"id": iid})
        state = out.value.get("state") if isinstance(out.value, dict) else None
        if out.type is not OpType.OK or state in PENDING_STATES:
            left.append(iid)
    return left
