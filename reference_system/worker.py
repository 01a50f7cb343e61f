"""The worker loop each node may run: claim, process, renew, complete.

It goes through the same path as a client (``Node.execute``), so it
exercises forwarding, fencing and idempotency like any other client. The
worker keeps its own lease clock from the moment it *sent* the claim or the
last successful renewal, and abandons an item whose lease it cannot renew in
time: past that point another worker may own it, and any completion would be
refused by its stale token anyway.

Processing is simulated by sleeping ``work_ms``; an item whose payload is a
dict with ``"work_ms"`` uses that instead (lets tests make one item slow).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference_system.node import Node

__all__ = ["Worker"]

log = logging.getLogger("refsys.worker")


class Worker:
    """One worker of a node; ``name`` is recorded as the item's holder."""

    def __init__(self, node: Node, *, work_ms: float, poll_ms: float):
        self.node = node
        self.name = f"node{node.id}"
        self.work_ms = work_ms
        self.poll_ms = poll_ms
        self.completed = 0
        self.abandoned = 0
        self.current: str | None = None

    def stats(self) -> dict[str, Any]:
        """What /status reports about the worker."""
        return {"completed": self.completed, "abandoned": self.abandoned, "current": self.current}

    async def run(self) -> None:
        """Forever: claim one item and work on it."""
        while True:
            try:
                worked = await self._once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker iteration failed")
                worked = False
            if not worked:
                await asyncio.sleep(self.poll_ms / 1000.0)

    async def _once(self) -> bool:
        if not self.node.machine.queue:
            return False  # a hint from local state: spares the log idle claims
        sent_ms = time.monotonic() * 1000
        status, body = await self._call({"op": "claim", "worker": self.name})
        if status != 200 or not body.get("item"):
            return False
        item = body["item"]
        self.current = item["id"]
        try:
            done = await self._work(item, sent_ms)
        finally:
            self.current = None
        if not done:
            self.abandoned += 1
            return True
        status, body = await self._call(
            {
                "op": "complete",
                "id": item["id"],
                "token": item["token"],
                "result": {"by": self.name, "token": item["token"]},
            }
        )
        if status == 200:
            self.completed += 1
        else:
            log.info("completion of %s refused: %s %s", item["id"], status, body)
        return True

    async def _call(self, command: dict[str, Any], attempts: int = 5) -> tuple[int, Any]:
        """Execute with a request id, retrying an indeterminate outcome with the
        same id: a claim that timed out is then answered with the item it got,
        instead of leaving that item to wait for its lease to expire."""
        command = {**command, "rid": f"{self.name}-{uuid.uuid4().hex}"}
        status, body = 504, None
        for _ in range(attempts):
            status, body = await self.node.execute(command)
            if status not in (500, 504):
                break
            await asyncio.sleep(self.poll_ms / 1000.0)
        return status, body

    async def _work(self, item: dict[str, Any], lease_start_ms: float) -> bool:
        """Sleep through the work, renewing at a third of the lease; False if
        the lease was lost."""
        lease_ms = self.node.cfg.lease_ms
        payload = item.get("payload")
        work_ms = self.work_ms
        if isinstance(payload, dict) and isinstance(payload.get("work_ms"), int | float):
            work_ms = float(payload["work_ms"])
        end_ms = time.monotonic() * 1000 + work_ms
        while True:
            now = time.monotonic() * 1000
            if now >= end_ms:
                return now - lease_start_ms < lease_ms
            renew_at = lease_start_ms + lease_ms / 3
            if now < renew_at:
                await asyncio.sleep((min(end_ms, renew_at) - now) / 1000.0)
                continue
            sent = time.monotonic() * 1000
            status, _ = await self.node.execute(
                {"op": "renew", "id": item["id"], "token": item["token"]}
            )
            if status == 200:
                lease_start_ms = sent
            elif status in (404, 409):
                return False  # taken over: stop working on it
            elif time.monotonic() * 1000 - lease_start_ms >= lease_ms:
                return False
            else:
                await asyncio.sleep(min(0.1, lease_ms / 10000.0))
