"""One toxic running on one link (Toxiproxy's ``ToxicStub``).

A stage owns a task that runs its toxic's ``pipe`` from ``input`` to
``output``. The link rewires stages when toxics come and go; to do that safely
it *interrupts* a stage (cancels the task; whatever the toxic was holding, in
``pending``, is pushed to ``output`` first), changes its channels, and starts
it again. A stage whose toxic has passed on end of stream is *closed* and is
never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any, Protocol

from harness.toxiproxy.stream import Channel, Chunk, Item
from harness.toxiproxy.toxics import NoopToxic, Toxic

__all__ = ["Budget", "Stage"]


class Budget(Protocol):
    """Where a stage reports bytes that leave the link without being written (dropped)."""

    def release(self, nbytes: int) -> None:
        """``nbytes`` are no longer held by the link."""


class Stage:
    """The runtime of one toxic on one link."""

    def __init__(
        self, toxic: Toxic, *, budget: Budget, rng: random.Random, input: Channel, output: Channel
    ) -> None:
        self.toxic = toxic
        self.input = input
        self.output = output
        self.rng = rng
        self.state: Any = toxic.kind.new_state()
        self.pending: list[Item] = []
        self.closed = False
        self._budget = budget
        self._active = True
        self._committed = False
        self._task: asyncio.Task[None] | None = None

    def start(self, *, roll: bool) -> None:
        """Run the toxic; ``roll`` draws its toxicity again (on start and on update, as in Go)."""
        if roll:
            self._active = self.rng.random() < self.toxic.toxicity
        self._committed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            if self._active:
                await self.toxic.kind.pipe(self)
            else:
                await NoopToxic.pass_through(self)
        except asyncio.CancelledError:
            # Interrupted: hand on what the toxic held, in order. Swallowing the
            # cancellation is deliberate; the interrupter awaits this task.
            for item in self.pending:
                self.output.put_nowait(item)
            self.pending.clear()

    async def interrupt(self) -> bool:
        """Stop the toxic; ``False`` if the stage had already closed (then it stays stopped).

        A committed toxic is waited for, not cancelled; it then closes the stage."""
        task = self._task
        if self.closed or task is None:
            return False
        if not task.done():
            if not self._committed:
                task.cancel()
            await asyncio.wait([task])
        return not self.closed

    def cancel(self) -> None:
        """Tear down without handing anything on (the connection is gone)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- what a toxic's pipe calls ---------------------------------------

    def commit(self) -> None:
        """The toxic must run to its end: an interrupt waits for it rather than cancel
        it (Toxiproxy's reset_peer, whose wait before the reset ignores interrupts)."""
        self._committed = True

    def emit(self, chunk: Chunk) -> None:
        """Pass a chunk downstream."""
        self.output.put_nowait(chunk)

    def close(self) -> None:
        """Pass end of stream downstream; the stage is finished."""
        if not self.closed:
            self.closed = True
            self.output.put_nowait(None)

    def drop(self, chunk: Chunk) -> None:
        """Discard a chunk (timeout, reset_peer)."""
        self._budget.release(len(chunk.data))

    def drop_bytes(self, nbytes: int) -> None:
        """Discard part of a chunk (limit_data)."""
        self._budget.release(nbytes)


async def wait_quietly(task: asyncio.Task[Any]) -> None:
    """Await a task that may have been cancelled, without raising."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
