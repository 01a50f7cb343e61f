"""One direction of one proxied connection, and the socket ends it joins.

Data path. With no toxic on a direction, bytes go straight from the source
socket's read buffer into the destination transport (``fast path``): one
``recv_into`` into a reused buffer and one ``send`` per read, no per-byte
Python work. Once a toxic is on the direction, reads become :class:`Chunk`\\ s
on a pipeline ``head -> stage -> ... -> tail`` ending in a writer task. When
the last toxic goes away the pipeline drains and the fast path resumes by
itself: it is taken whenever there is no stage and nothing queued, so order is
always kept.

Back-pressure. A destination whose transport buffer is full pauses reading
from the source; so does a pipeline holding more than ``BUDGET_BYTES`` (a
stalled toxic therefore stalls the sender, as a real slow network would).

Closing follows Toxiproxy rather than TCP half-close: when a direction's
source ends, the destination socket is closed once the pipeline has delivered
what it held, which in turn ends the other direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterable

from harness.toxiproxy.stage import Stage
from harness.toxiproxy.stream import Channel, Chunk, Direction
from harness.toxiproxy.toxics import Toxic

__all__ = ["BUDGET_BYTES", "READ_SIZE", "Endpoint", "Link"]

READ_SIZE = 1024 * 1024
BUDGET_BYTES = 8 * 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)


_thread_state = threading.local()


def _read_buffer() -> memoryview:
    """The read buffer shared by every endpoint on this thread's event loop.

    Sharing is safe because a read is consumed before the next one starts (the
    fast path hands it to the destination transport, which copies what it
    cannot send at once; the pipeline copies it into a chunk), and it lets
    reads be large without costing memory per connection.
    """
    buffer = getattr(_thread_state, "buffer", None)
    if buffer is None:
        buffer = _thread_state.buffer = memoryview(bytearray(READ_SIZE))
    return buffer


class Endpoint(asyncio.BufferedProtocol):
    """One socket of a proxied connection (client side or upstream side).

    It is the source of its ``outbound`` link and the destination of its
    ``inbound`` link.
    """

    def __init__(
        self,
        on_lost: Callable[[Endpoint], None],
        on_made: Callable[[Endpoint], None] | None = None,
    ) -> None:
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.outbound: Link | None = None
        self.inbound: Link | None = None
        self.lost = False
        self._on_lost = on_lost
        self._buffer = _read_buffer()
        self._paused_reasons: set[str] = set()
        # Bytes (and EOF) read before the endpoint is wired: Python < 3.11.4 ignores
        # pause_reading() called from connection_made (CPython gh-103607; Debian 12
        # ships 3.11.2), so reads can arrive during "wiring" and must not be lost.
        self._early = bytearray()
        self._early_eof = False

    # --- asyncio protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.outbound is None:
            # Not wired yet (accepted before the upstream is dialled): hold reads.
            self.pause("wiring")
        if self._on_made is not None:
            self._on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.outbound is not None:
            self.outbound.feed(self._buffer[:nbytes])
        else:
            self._early += self._buffer[:nbytes]

    def eof_received(self) -> bool:
        if self.outbound is not None:
            self.outbound.feed_eof()
        else:
            self._early_eof = True
        return True  # keep the transport: the other direction may still deliver

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.outbound is not None:
            self.outbound.feed_eof()
        if self.inbound is not None:
            self.inbound.dest_lost()
        self._on_lost(self)

    def pause_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.dest_congested(True)

    def resume_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.dest_congested(False)

    # --- used by links and the proxy -------------------------------------

    def pause(self, reason: str) -> None:
        """Stop reading until every reason given is withdrawn."""
        if not self._paused_reasons and self.transport is not None:
            self.transport.pause_reading()
        self._paused_reasons.add(reason)

    def resume(self, reason: str) -> None:
        """Withdraw one reason to stop reading."""
        self._paused_reasons.discard(reason)
        if self.outbound is not None and (self._early or self._early_eof):
            early, self._early = bytes(self._early), bytearray()
            if early:
                self.outbound.feed(memoryview(early))
            if self._early_eof:
                self._early_eof = False
                self.outbound.feed_eof()
        if not self._paused_reasons and self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def set_linger_zero(self) -> None:
        """Make closing this socket send RST (reset_peer)."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)

    def close(self) -> None:
        """Close after flushing what the transport holds."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close now, discarding buffered data (proxy disabled or deleted)."""
        if self.transport is not None:
            self.transport.abort()


class Link:
    """Data from ``source`` to ``dest`` through the toxics of one direction."""

    def __init__(
        self,
        *,
        direction: Direction,
        source: Endpoint,
        dest: Endpoint,
        rng: random.Random,
    ) -> None:
        self.direction = direction
        self.source = source
        self.dest = dest
        self._rng = rng
        self._loop = asyncio.get_running_loop()
        self.tail = Channel()
        self.head = self.tail
        self.stages: list[Stage] = []
        self._held = 0  # bytes inside the pipeline
        self._dest_congested = False
        self._drained: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._eof = False
        self._dest_closed = False
        self._writer: asyncio.Task[None] | None = None
        source.outbound = self
        dest.inbound = self

    def start(self, toxics: Iterable[Toxic]) -> None:
        """Build the initial chain (toxicity rolled now) and start the writer."""
        for toxic in toxics:
            if toxic.kind.resets_connections:
                self.source.set_linger_zero()
                self.dest.set_linger_zero()
            self._append(toxic)
        self._writer = self._loop.create_task(self._write_loop())

    def _new_stage(self, toxic: Toxic, input: Channel, output: Channel) -> Stage:
        return Stage(toxic, budget=self, rng=self._rng, input=input, output=output)

    def _append(self, toxic: Toxic) -> Stage:
        channel = Channel()
        if self.stages:
            self.stages[-1].output = channel
        else:
            self.head = channel
        stage = self._new_stage(toxic, channel, self.tail)
        self.stages.append(stage)
        stage.start(roll=True)
        return stage

    # --- source side --------------------------------------------------------

    def feed(self, data: memoryview) -> None:
        """Bytes read from the source; ``data`` is only valid during this call."""
        if self.head is self.tail and not len(self.tail):
            if not self._dest_closed:
                transport = self.dest.transport
                if transport is not None and not transport.is_closing():
                    transport.write(data)
            return
        nbytes = len(data)
        self._held += nbytes
        self.head.put_nowait(Chunk(bytes(data), self._loop.time()))
        if self._held > BUDGET_BYTES:
            self.source.pause("budget")

    def feed_eof(self) -> None:
        """The source ended (FIN, reset, or closed by us)."""
        if self._eof:
            return
        self._eof = True
        if self.head is self.tail and not len(self.tail):
            self._close_dest()
        else:
            self.head.put_nowait(None)

    def release(self, nbytes: int) -> None:
        """Bytes left the pipeline (written or dropped)."""
        self._held -= nbytes
        if self._held <= BUDGET_BYTES // 2:
            self.source.resume("budget")

    # --- destination side ---------------------------------------------------

    def dest_congested(self, congested: bool) -> None:
        """The destination transport's buffer went over/under its high-water mark."""
        self._dest_congested = congested
        if congested:
            self.source.pause("dest")
        else:
            self.source.resume("dest")
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    def dest_lost(self) -> None:
        """The destination socket is gone; later data is discarded."""
        self._dest_closed = True
        self.source.resume("dest")
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _close_dest(self) -> None:
        if not self._dest_closed:
            self._dest_closed = True
            self.dest.close()

    async def _write_loop(self) -> None:
        while True:
            chunk = await self.tail.get()
            if chunk is None:
                self._close_dest()
                return
            transport = self.dest.transport
            if not self._dest_closed and transport is not None and not transport.is_closing():
                transport.write(chunk.data)
            self.release(len(chunk.data))
            if self._dest_congested and not self._dest_closed:
                self._drained = self._loop.create_future()
                await self._drained
                self._drained = None

    # --- chain changes (serialised per link) --------------------------------

    async def add_toxic(self, toxic: Toxic) -> None:
        """Append a toxic to the chain; it starts on this link now."""
        async with self._lock:
            if self.stages:
                last = self.stages[-1]
                if not await last.interrupt():
                    return  # the chain has already closed: the link is ending
                self._append(toxic)
                last.start(roll=False)
            else:
                self._append(toxic)

    async def update_toxic(self, toxic: Toxic) -> None:
        """Restart the toxic's stage so that it uses the new attributes and toxicity."""
        async with self._lock:
            stage = self._find(toxic)
            if stage is not None and await stage.interrupt():
                stage.start(roll=True)

    async def remove_toxic(self, toxic: Toxic) -> None:
        """Take the toxic out of the chain, passing on everything it held."""
        async with self._lock:
            stage = self._find(toxic)
            if stage is None or not await stage.interrupt():
                return
            if toxic.kind.closes_on_removal:
                stage.close()  # the link ends here: the connection closes
                return
            index = self.stages.index(stage)
            previous = self.stages[index - 1] if index > 0 else None
            previous_running = await previous.interrupt() if previous is not None else False
            stage.input.drain_into(stage.output)
            del self.stages[index]
            if previous is None:
                self.head = stage.output
            else:
                previous.output = stage.output
                if previous_running:
                    previous.start(roll=False)

    def _find(self, toxic: Toxic) -> Stage | None:
        for stage in self.stages:
            if stage.toxic is toxic:
                return stage
        return None

    def stop(self) -> None:
        """Cancel every task of the link (the connection is gone)."""
        for stage in self.stages:
            stage.cancel()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
