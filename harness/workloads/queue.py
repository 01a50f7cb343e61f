"""A work queue: enqueue, claim, renew, complete; then drain and read every item.

Items get unique ids from the harness. A client holds the items it claimed
and completes or renews them later; after the faults are healed and the
cluster has recovered, a drain claims and completes whatever is left, and a
``read-item`` of every id ever enqueued records each item's final state. The
checks: total-queue accounting (nothing acknowledged lost, nothing
unexpected; redelivery reported), fencing (one accepted completion per
item, tokens only grow), and lease exclusivity (no second claim while the
first holder's lease certainly still runs).

``lease_ms`` is the lease the system promises a claim (its configuration, as
a real worker is configured with it). Each claim states it in its invocation
value, so the history alone says how long a holder may count on its item and
the lease checker needs no other input; without it, no claim states a lease
and the lease checker has nothing to judge. The system's client ignores the
value: it is a statement of the contract, not a request.

Clients complete the oldest item they hold; with fewer completes than claims
in the mix (``weights``), items are held longer, some past their lease, which
is what exercises expiry and fencing (a late holder must be refused).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.client import Client
from harness.generator import Mix, Phase
from harness.history import OpType
from harness.workloads.base import (
    FinalContext,
    enqueued_ids,
    read_items_through_nodes,
    read_unsettled,
)
from harness.workloads.settle import settle

__all__ = ["QueueWorkload"]


@dataclass
class QueueWorkload:
    weights: dict[str, float] = field(
        default_factory=lambda: {"enqueue": 3, "claim": 2, "complete": 2, "renew": 0.5}
    )
    max_drain: int = 5000
    #: an empty claim may only mean the rest is leased to dead workers: wait
    #: longer than a lease, then look again, before calling the queue drained
    drain_quiet_s: float = 3.0
    #: the lease the system grants a claim, stated in every claim (see above)
    lease_ms: float | None = None
    #: items read through every node directly after the final phase (a sample past it)
    node_reads_max: int = 200
    name: str = "queue"
    checkers: tuple[str, ...] = ("queue", "fencing", "lease", "stats")
    #: operations that must succeed at least once, or the other checks pass vacuously
    required_fs: tuple[str, ...] = ("enqueue", "claim", "complete")
    model: str | None = None

    def __post_init__(self) -> None:
        if self.lease_ms is not None and not self.lease_ms > 0:
            raise ValueError(f"lease_ms must be positive, not {self.lease_ms!r}")

    def mix(self) -> Mix:
        def enqueue(rng: random.Random, n: int) -> Any:
            return {"id": f"i{n}", "payload": n}

        makers: dict[str, Callable[[random.Random, int], Any]] = {"enqueue": enqueue}
        if self.lease_ms is not None:
            lease = {"lease_ms": self.lease_ms}

            def claim(rng: random.Random, n: int) -> Any:
                return dict(lease)

            makers["claim"] = claim
        return Mix(self.weights, makers)

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]:
        return [Phase(time_limit_s, self.mix(), rate_hz)]

    def _claim_value(self) -> Any:
        return {"lease_ms": self.lease_ms} if self.lease_ms is not None else None

    def _drain(self, ctx: FinalContext, client: Client, budget: int) -> int:
        """Claim and complete until the queue looks empty twice; returns claims made."""
        empty_streak = 0
        made = 0
        while made < budget and not ctx.deadline_passed():
            made += 1
            f, v = client.prepare("claim", self._claim_value())
            _, out = ctx.call(client, f, v)
            if out.type is not OpType.OK:
                continue
            if out.value is None:
                empty_streak += 1
                if empty_streak >= 2:
                    break
                time.sleep(self.drain_quiet_s)
                continue
            empty_streak = 0
            f, v = client.prepare("complete", None)
            ctx.call(client, f, v)
        return made

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        """Drain, then read every item; while the backlog shrinks, drain and re-read.

        An item a worker still held when the clients stopped stays
        ``processing`` until its lease runs out: reading it then would make a
        correct system look as if it lost the item. So rounds of drain and
        re-read of the unsettled items go on while their number shrinks
        (:func:`harness.workloads.settle.settle`, recorded as a ``settle``
        op), then a sample of the items is read through every node directly;
        items still unsettled are read once more after the system's lease
        plus takeover grace, with a drain before, so the checker can tell a
        stuck item (held under one token all that time) from a slow one.
        """
        client = new_client()
        try:
            budget = self.max_drain
            budget -= self._drain(ctx, client, budget)
            all_ids = unsettled = enqueued_ids(ctx)
            rounds = 0

            def backlog() -> int:
                nonlocal budget, unsettled, rounds
                if rounds and budget > 0:
                    budget -= self._drain(ctx, client, budget)
                rounds += 1
                unsettled = read_unsettled(ctx, client, unsettled)
                return len(unsettled)

            stuck_after_ms = ctx.stuck_after_ms
            stall_s = max(2 * self.drain_quiet_s,
                          (stuck_after_ms or 0) / 1000.0 + self.drain_quiet_s)
            record = settle(backlog, stall_s=stall_s, poll_s=self.drain_quiet_s,
                            cap_passed=ctx.deadline_passed)
            ctx.note("settle", {**record.to_dict(), "stuck_after_ms": stuck_after_ms,
                                "drain_budget_left": budget})
            read_items_through_nodes(ctx, all_ids, max_items=self.node_reads_max)
            if unsettled and stuck_after_ms:
                time.sleep(stuck_after_ms / 1000.0 + self.drain_quiet_s)
                if budget > 0:
                    self._drain(ctx, client, budget)
                read_unsettled(ctx, client, unsettled)
        finally:
            client.close()
