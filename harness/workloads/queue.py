"""A work queue: enqueue, claim, renew, complete; then drain and read every item.

Items get unique ids from the harness. A client holds the items it claimed
and completes or renews them later; after the faults are healed and the
cluster has recovered, a drain claims and completes whatever is left, and a
``read-item`` of every id ever enqueued records each item's final state. The
checks: total-queue accounting (nothing acknowledged lost, nothing
unexpected; redelivery reported), and fencing (one accepted completion per
item, tokens only grow).
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
from harness.workloads.base import FinalContext

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
    name: str = "queue"
    checkers: tuple[str, ...] = ("queue", "fencing", "stats")
    model: str | None = None

    def mix(self) -> Mix:
        def enqueue(rng: random.Random, n: int) -> Any:
            return {"id": f"i{n}", "payload": n}

        return Mix(self.weights, {"enqueue": enqueue})

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]:
        return [Phase(time_limit_s, self.mix(), rate_hz)]

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        client = new_client()
        try:
            empty_streak = 0
            for _ in range(self.max_drain):
                if ctx.deadline_passed():
                    break
                _, out = ctx.call(client, "claim", None)
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
            ids = sorted({op.value["id"] for op in ctx.history_so_far()
                          if op.f == "enqueue" and op.type is OpType.INVOKE
                          and isinstance(op.value, dict)}, key=lambda s: (len(s), s))
            for iid in ids:
                ctx.call(client, "read-item", {"id": iid})
        finally:
            client.close()
