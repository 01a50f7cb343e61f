"""Takeover: the system's own workers process items while nodes are killed and paused.

The product brief's third failure: an instance crashes while processing a work
item; its lease expires and another instance takes the item over. Here the
harness only enqueues (items with unique ids) and, after the faults are healed,
waits for the system to finish and reads every item's final state.

The wait follows the work (:func:`harness.workloads.settle.settle`): it goes on
while the backlog shrinks, bounded by what the measured completion rate says
the backlog needs, and its record goes into the history. Then every item is
read (recorded) through the load balancer, then a sample of them through
every node directly (:func:`harness.workloads.base.read_items_through_nodes`);
items still not finished are read once more after the
system's lease plus its takeover grace, so that an item held under one token
all that time is proven *stuck*, while one that is merely slow stays
*unfinished* (a progress finding: verdict unknown, never "lost"). An item
whose final state could not be read is unresolved.

The default rate (``default_rate_hz``) is balanced with the workers'
capacity: three nodes, one worker each, ``work_ms`` per item, finish about
``3 * 1000 / (work_ms + ~30 ms)`` items a second, twice this rate with a node
down, so a correct system finishes its backlog on a loaded 2-core machine.
Exactly-once completion is what the ``queue`` workload's fencing checks test
from the client's side.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.checker.queue import PENDING_STATES
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

__all__ = ["TakeoverWorkload"]


def read_state(client: Client, iid: Any) -> Any:
    """An unrecorded poll of one item's state (None when the read did not answer)."""
    out = client.invoke("read-item", {"id": iid})
    if out.type is not OpType.OK or not isinstance(out.value, dict):
        return "unanswered"
    return out.value.get("state")


@dataclass
class TakeoverWorkload:
    #: options for the system: run the nodes' own workers, with this processing
    #: time and lease, so kills and pauses land mid-item
    system_options: dict[str, Any] = field(
        default_factory=lambda: {"worker": True, "work_ms": 100.0, "lease_ms": 1500.0})
    #: enqueues per second when the run states no rate (see the module docstring)
    default_rate_hz: float = 10.0
    settle_poll_s: float = 0.5
    #: items read through every node directly after the final reads (a sample past it)
    node_reads_max: int = 200
    #: the longest the backlog may go without shrinking, when the system states no
    #: lease (with one, it is the lease plus the takeover grace)
    stall_s: float = 10.0
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
        """Wait while the backlog shrinks, read every item, re-read the unfinished."""
        client = new_client()
        try:
            ids = enqueued_ids(ctx)
            stuck_after_ms = ctx.stuck_after_ms
            stall_s = (stuck_after_ms / 1000.0 + self.settle_poll_s
                       if stuck_after_ms else self.stall_s)
            pending = list(ids)

            def backlog() -> int:
                nonlocal pending
                pending = [i for i in pending
                           if read_state(client, i) in (*PENDING_STATES, "unanswered")]
                return len(pending)

            record = settle(backlog, stall_s=stall_s, poll_s=self.settle_poll_s,
                            cap_passed=ctx.deadline_passed)
            ctx.note("settle", {**record.to_dict(), "stuck_after_ms": stuck_after_ms})
            left = read_unsettled(ctx, client, ids)
            read_items_through_nodes(ctx, ids, max_items=self.node_reads_max)
            if left and stuck_after_ms:
                # a second recorded read past the stuck bound tells stuck from slow
                time.sleep(stuck_after_ms / 1000.0 + self.settle_poll_s)
                for iid in left:
                    ctx.call(client, "read-item", {"id": iid})
        finally:
            client.close()
