"""The toxics: one class per Toxiproxy toxic type, and the definition that names one.

A :class:`Toxic` is what the API creates: name, type, stream, toxicity and an
attribute object (a :class:`ToxicKind`). A toxic acts on a connection through
a :class:`~harness.toxiproxy.stage.Stage`, one per link (connection and
direction) it is on: the kind's :meth:`ToxicKind.pipe` reads chunks from the
stage's input and emits them on its output, delayed, sliced, throttled or
dropped. A pipe coroutine may be cancelled at any ``await`` (that is how a
stage is interrupted when the chain changes); whatever it has taken from its
input but not yet emitted must then be listed in ``stage.pending`` so that the
stage can pass it on. That is the whole contract, and it is why adding,
updating or removing a toxic never loses data in flight. A toxic that has
decided something it cannot take back (``reset_peer``, once it dropped data)
calls ``stage.commit()``: an interrupt then waits for it to finish instead.

Behaviour follows Toxiproxy 2.12 (``toxics/*.go``); the comments say where we
deliberately differ.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.toxiproxy.decode import expect_object, get_int
from harness.toxiproxy.stream import Chunk, Direction

if TYPE_CHECKING:
    from harness.toxiproxy.stage import Stage

__all__ = [
    "TOXIC_KINDS",
    "BandwidthToxic",
    "LatencyToxic",
    "LimitDataToxic",
    "NoopToxic",
    "ResetPeerToxic",
    "SlicerToxic",
    "SlowCloseToxic",
    "TimeoutToxic",
    "Toxic",
    "ToxicKind",
]


class ToxicKind:
    """Attributes and behaviour of one toxic type. Attributes are int64 fields, 0 by default."""

    type_name: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ()
    go_name: ClassVar[str] = "ToxicWrapper.attributes"
    # A toxic whose removal closes the connections it is on (only ``timeout``).
    closes_on_removal: ClassVar[bool] = False
    # New connections get SO_LINGER 0 on both sockets, so closing them sends RST.
    resets_connections: ClassVar[bool] = False

    def __init__(self) -> None:
        self.values: dict[str, int] = dict.fromkeys(self.fields, 0)

    def __getattr__(self, name: str) -> int:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return int(values[name])
        raise AttributeError(name)

    def attributes(self) -> dict[str, int]:
        """The attribute object as the API shows it."""
        return dict(self.values)

    def merge(self, raw: Any) -> None:
        """Decode ``raw`` (the JSON ``attributes``) over the current values, all or nothing.

        Unknown keys are ignored and missing ones keep their value, as when Go
        decodes into an existing struct; a value of the wrong type is a
        :class:`DecodeError` (400).
        """
        obj = expect_object(raw, f"toxics.{type(self).__name__}")
        decoded = {
            name: get_int(obj, name, value, where=self.go_name)
            for name, value in self.values.items()
        }
        self.values.update(decoded)

    def new_state(self) -> Any:
        """Per-link state that survives updates of the toxic (only ``limit_data`` has some)."""
        return None

    async def pipe(self, stage: Stage) -> None:
        """Move chunks from ``stage.input`` to ``stage.output``; close at end of stream."""
        await NoopToxic.pass_through(stage)


class NoopToxic(ToxicKind):
    """Passes everything on unchanged; also what a toxic does when its toxicity roll fails."""

    type_name = "noop"

    @staticmethod
    async def pass_through(stage: Stage) -> None:
        """Forward chunks until end of stream, then close."""
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                stage.close()
                return
            stage.emit(chunk)


class LatencyToxic(ToxicKind):
    """Delays each chunk by ``latency`` ± ``jitter`` ms, counted from when it was read.

    Measuring from the read time (and moving the chunk's timestamp on by the
    delay) makes chunks queued behind each other not wait twice, and makes two
    latency toxics add up, as in Toxiproxy.
    """

    type_name = "latency"
    fields = ("latency", "jitter")
    go_name = "LatencyToxic.attributes"

    def delay_s(self, stage: Stage) -> float:
        """One draw of the delay, in seconds."""
        delay_ms = float(self.latency)
        jitter = self.jitter
        if jitter > 0:
            delay_ms += stage.rng.uniform(-jitter, jitter)
        return delay_ms / 1000.0

    async def pipe(self, stage: Stage) -> None:
        loop = asyncio.get_running_loop()
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                stage.close()
                return
            delay = self.delay_s(stage)
            wait = chunk.timestamp + delay - loop.time()
            if wait > 0:
                stage.pending.append(chunk)
                await asyncio.sleep(wait)
                stage.pending.clear()
            chunk.timestamp += delay
            stage.emit(chunk)


class BandwidthToxic(ToxicKind):
    """Limits throughput to ``rate`` KB/s (1 KB = 1000 bytes); rate 0 holds everything.

    Large chunks are cut into pieces of 100 ms worth of data, so a slow link
    delivers steadily instead of in one lump. With rate 0 the first chunk is
    held (and the rest queue behind it) until the toxic is updated or removed;
    the interrupt then delivers what was held.
    """

    type_name = "bandwidth"
    fields = ("rate",)
    go_name = "BandwidthToxic.attributes"

    async def pipe(self, stage: Stage) -> None:
        loop = asyncio.get_running_loop()
        rate = self.rate  # bytes per millisecond
        debt_s = 0.0
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                stage.close()
                return
            if rate <= 0:
                stage.pending.append(chunk)
                await loop.create_future()  # until interrupted
            debt_s += len(chunk.data) / (rate * 1000.0)
            data = chunk.data
            piece = rate * 100
            while len(data) > piece:
                stage.pending[:] = [Chunk(data, chunk.timestamp)]
                await asyncio.sleep(0.1)
                stage.emit(Chunk(data[:piece], chunk.timestamp))
                data = data[piece:]
                debt_s -= 0.1
            stage.pending[:] = [Chunk(data, chunk.timestamp)]
            started = loop.time()
            if debt_s > 0:
                await asyncio.sleep(debt_s)
            debt_s -= loop.time() - started
            stage.pending.clear()
            stage.emit(Chunk(data, chunk.timestamp))


class SlowCloseToxic(ToxicKind):
    """Passes data through, but delays passing the close on by ``delay`` ms."""

    type_name = "slow_close"
    fields = ("delay",)
    go_name = "SlowCloseToxic.attributes"

    async def pipe(self, stage: Stage) -> None:
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                # Held as pending: if the toxic is removed meanwhile, the close
                # goes through at once instead of being lost (Go loses it).
                stage.pending.append(None)
                await asyncio.sleep(self.delay / 1000.0)
                stage.pending.clear()
                stage.close()
                return
            stage.emit(chunk)


class TimeoutToxic(ToxicKind):
    """Drops all data; closes the connection after ``timeout`` ms, or never when 0.

    Removing it closes the connections it was holding (Toxiproxy's
    ``Cleanup``): a client stuck on a timed-out connection sees it end rather
    than resume mid-stream with a gap in the data.
    """

    type_name = "timeout"
    fields = ("timeout",)
    go_name = "TimeoutToxic.attributes"
    closes_on_removal = True

    async def pipe(self, stage: Stage) -> None:
        timeout_s = self.timeout / 1000.0
        try:
            async with asyncio.timeout(timeout_s if timeout_s > 0 else None):
                while True:
                    chunk = await stage.input.get()
                    if chunk is None:
                        break
                    stage.drop(chunk)
        except TimeoutError:
            pass
        stage.close()


class ResetPeerToxic(ToxicKind):
    """On the first data (or end of stream), waits ``timeout`` ms and resets the connection.

    The data is dropped. The RST comes from SO_LINGER 0, which is set on both
    sockets of connections opened while the toxic exists; connections opened
    before it get a plain close, as with Toxiproxy.
    """

    type_name = "reset_peer"
    fields = ("timeout",)
    go_name = "ResetToxic.attributes"
    resets_connections = True

    async def pipe(self, stage: Stage) -> None:
        chunk = await stage.input.get()
        # From here the reset is committed, as in Toxiproxy, whose wait ignores
        # interrupts: removing the toxic now waits for the reset. Cancelling instead
        # would let the connection go on with the dropped chunk missing from the
        # middle of its stream, or lose its end of stream, so that one side is
        # never closed (a peer protocol then waits on it forever).
        stage.commit()
        if chunk is not None:
            stage.drop(chunk)
        await asyncio.sleep(self.timeout / 1000.0)
        stage.close()


class SlicerToxic(ToxicKind):
    """Cuts chunks into pieces of about ``average_size`` ± ``size_variation`` bytes,
    ``delay`` microseconds apart (exercises clients' reassembly of partial reads)."""

    type_name = "slicer"
    fields = ("average_size", "size_variation", "delay")
    go_name = "SlicerToxic.attributes"

    def boundaries(self, stage: Stage, length: int) -> list[int]:
        """Cut points in ``[0, length]``: halve until pieces are near the average size."""
        average, variation = self.average_size, self.size_variation
        cuts = [0]
        stack = [(0, length)]  # explicit stack: a skewed split must not hit the recursion limit
        while stack:
            start, end = stack.pop()
            size = end - start
            if size <= 1 or size - average <= variation:
                cuts.append(end)
                continue
            mid = start + size // 2
            if variation > 0:
                mid += stage.rng.randrange(-variation, variation)
            mid = min(max(mid, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
        return cuts

    async def pipe(self, stage: Stage) -> None:
        delay_s = self.delay / 1e6
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                stage.close()
                return
            cuts = self.boundaries(stage, len(chunk.data))
            data = chunk.data
            for start, end in itertools.pairwise(cuts):
                stage.emit(Chunk(data[start:end], chunk.timestamp))
                if end < len(data):
                    stage.pending[:] = [Chunk(data[end:], chunk.timestamp)]
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                stage.pending.clear()


@dataclass(slots=True)
class LimitDataState:
    """Bytes passed so far on one link; kept across updates of the toxic."""

    transmitted: int = 0


class LimitDataToxic(ToxicKind):
    """Passes ``bytes`` bytes per connection and direction, then closes the connection."""

    type_name = "limit_data"
    fields = ("bytes",)
    go_name = "LimitDataToxic.attributes"

    def new_state(self) -> LimitDataState:
        return LimitDataState()

    async def pipe(self, stage: Stage) -> None:
        state: LimitDataState = stage.state
        while True:
            chunk = await stage.input.get()
            if chunk is None:
                stage.close()
                return
            remaining = max(self.bytes - state.transmitted, 0)
            if remaining < len(chunk.data):
                stage.drop_bytes(len(chunk.data) - remaining)
                chunk.data = chunk.data[:remaining]
            if chunk.data:
                state.transmitted += len(chunk.data)
                stage.emit(chunk)
            if self.bytes - state.transmitted <= 0:
                stage.close()
                return


TOXIC_KINDS: dict[str, type[ToxicKind]] = {
    kind.type_name: kind
    for kind in (
        NoopToxic,
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
    )
}


@dataclass(eq=False)
class Toxic:
    """A toxic as the API knows it. ``kind`` is mutated in place by updates,
    so the stages running it pick up new attributes when restarted."""

    name: str
    type: str
    stream: str
    direction: Direction
    toxicity: float
    kind: ToxicKind

    def to_json(self) -> dict[str, Any]:
        """The toxic object of the API."""
        return {
            "attributes": self.kind.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def make_kind(type_name: str) -> ToxicKind:
    """A fresh attribute object for ``type_name``; ``KeyError`` if the type is unknown."""
    return TOXIC_KINDS[type_name]()
