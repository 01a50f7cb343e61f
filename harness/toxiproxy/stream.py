"""Chunks and the channels that carry them between the stages of a link.

A link is a pipeline: reader -> channel -> stage -> channel -> ... -> writer.
Everything runs on one event loop, so a channel needs no locks: it is a deque
plus at most one waiting consumer. Channels never block their producer;
back-pressure is applied once, at the reader, from the link's byte budget
(see :mod:`harness.toxiproxy.link`). That keeps every stage's hand-off
synchronous, so an interrupted stage can always push what it holds downstream
without waiting, which is how toxics are added and removed without losing
data in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import Enum

__all__ = ["Channel", "Chunk", "Direction"]


class Direction(Enum):
    """Which way data flows: ``upstream`` is client to server."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass(slots=True)
class Chunk:
    """Bytes read from a socket in one go, and when (``loop.time()``).

    The timestamp is what latency is measured from, as in Toxiproxy: a chunk
    that waited in a queue is not delayed again for the time it waited.
    """

    data: bytes
    timestamp: float


# ``None`` in a channel is end of stream: the stage that reads it closes its output.
Item = Chunk | None


class Channel:
    """A FIFO of chunks with a single consumer; ``None`` marks end of stream."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._getter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Item) -> None:
        """Append an item and wake the consumer; never blocks (see module doc)."""
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self) -> Item:
        """Wait for the next item. Cancelling the wait loses nothing."""
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getter = getter
            try:
                await getter
            finally:
                if self._getter is getter:
                    self._getter = None
        return self._items.popleft()

    def drain_into(self, other: Channel) -> None:
        """Move every queued item to ``other``, keeping their order."""
        while self._items:
            other.put_nowait(self._items.popleft())
