"""Takeover: the system's own workers process items while nodes are killed and paused.

The product brief's third failure: an instance crashes while processing a work
item; its lease expires and another instance takes the item over. Here the
harness only enqueues (items with unique ids) and, after the faults are healed,
waits for the system to finish and reads every item's final state. The check:
every acknowledged item ends ``completed`` (a dead-lettered or still-queued
item is an anomaly); an item whose final state could not be read is
unresolved, never "lost". Exactly-once completion is what the ``queue``
workload's fencing checks test from the client's side.
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

__all__ = ["TakeoverWorkload"]


@dataclass
class TakeoverWorkload:
    #: options for the system: run the nodes' own workers, with this processing
    #: time and lease, so kills and pauses land mid-item
    system_options: dict[str, Any] = field(
        default_factory=lambda: {"worker": True, "work_ms": 200.0, "lease_ms": 1500.0})
    settle_poll_s: float = 0.5
    name: str = "takeover"
    checkers: tuple[str, ...] = ("queue", "stats")
    required_fs: tuple[str, ...] = ("enqueue", "read-item")
    model: str | None = None
    #: the queue checker counts an item as done only when read ``completed``
    queue_options: dict[str, Any] = field(
        default_factory=lambda: {"final_states": ("completed",), "consume_fs": ()})

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]:
        def enqueue(rng: random.Random, n: int) -> Any:
            return {"id": f"t{n}", "payload": n}

        return [Phase(time_limit_s, Mix({"enqueue": 1}, {"enqueue": enqueue}), rate_hz)]

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        """Poll until every item is completed (or the deadline), then read each once more."""
        client = new_client()
        try:
            ids = sorted({op.value["id"] for op in ctx.history_so_far()
                          if op.f == "enqueue" and op.type is OpType.INVOKE
                          and isinstance(op.value, dict)}, key=lambda s: (len(s), s))
            pending = list(ids)
            while pending and not ctx.deadline_passed():
                left = []
                for iid in pending:
                    out = client.invoke("read-item", {"id": iid})  # polling: not recorded
                    state = out.value.get("state") if isinstance(out.value, dict) else None
                    if out.type is not OpType.OK or state in ("queued", "processing"):
                        left.append(iid)
                pending = left
                if pending:
                    time.sleep(self.settle_poll_s)
            for iid in ids:
                ctx.call(client, "read-item", {"id": iid})
        finally:
            client.close()
