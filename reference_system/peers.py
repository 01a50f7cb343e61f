"""Peer RPC over TCP: length-prefixed JSON frames, one connection per direction.

A node *sends* only on connections it opened to each peer and *receives* only
on connections peers opened to it. One connection per directed pair is what
lets the harness put one Toxiproxy proxy on each link and cut exactly one
direction.

Frames are ``length (4 bytes, big-endian) | JSON``. The first frame on a
connection is ``{"hello": <node id>}``. ``on_closed(src)`` hears when a peer's
connection to us ends (its process may have died). Delivery is best effort: the protocol
above retransmits, so a full queue or a broken connection drops messages
rather than blocking the node. Connecting retries with randomized exponential
backoff. A malformed frame closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["PeerTransport", "decode_frame_body", "encode_frame"]

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024


def encode_frame(obj: Any) -> bytes:
    """One frame: length prefix and compact JSON."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return _LEN.pack(len(body)) + body


def decode_frame_body(body: bytes) -> Any:
    """The JSON value of a frame body (ValueError if it is not JSON)."""
    return json.loads(body)


async def _read_frame(reader: asyncio.StreamReader, max_bytes: int) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if n > max_bytes:
        raise ValueError(f"frame of {n} bytes is over the limit")
    return decode_frame_body(await reader.readexactly(n))


class PeerTransport:
    """Connections to and from the other nodes of a fixed membership."""

    def __init__(
        self,
        node_id: int,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        on_message: Callable[[int, Any], None],
        *,
        on_closed: Callable[[int], None] | None = None,
        queue_max: int = 10_000,
        write_timeout_s: float = 2.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        rng: random.Random | None = None,
    ):
        self.node_id = node_id
        self.listen = listen
        self.peers = dict(peers)
        self.on_message = on_message
        self.on_closed = on_closed
        self._stopping = False
        self.max_frame_bytes = max_frame_bytes
        self.rng = rng or random.Random()
        self.queue_max = queue_max
        self.write_timeout_s = write_timeout_s
        self._queues: dict[int, deque[bytes]] = {p: deque() for p in peers}
        self._ready: dict[int, asyncio.Event] = {p: asyncio.Event() for p in peers}
        self._connected: dict[int, bool] = dict.fromkeys(peers, False)
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inbound: set[asyncio.StreamWriter] = set()
        self.dropped = 0

    async def start(self) -> None:
        """Listen for peers and start connecting to them."""
        host, port = self.listen
        self._server = await asyncio.start_server(self._accept, host, port)
        for p in self.peers:
            self._tasks.append(asyncio.create_task(self._sender(p), name=f"peer-send-{p}"))

    async def stop(self) -> None:
        """Close every connection."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            self._server.close()
        for w in list(self._inbound):
            w.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def send(self, dst: int, frame: bytes) -> None:
        """Queue an encoded frame for ``dst``; dropped if the peer is unreachable."""
        q = self._queues.get(dst)
        if q is None:
            return
        limit = self.queue_max if self._connected[dst] else 1000
        if len(q) >= limit:
            self.dropped += 1
            return
        q.append(frame)
        self._ready[dst].set()

    def connected(self, dst: int) -> bool:
        """Whether the outgoing connection to ``dst`` is up."""
        return self._connected.get(dst, False)

    async def _sender(self, peer: int) -> None:
        host, port = self.peers[peer]
        q = self._queues[peer]
        ready = self._ready[peer]
        backoff_s = 0.02
        while True:
            try:
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection(host, port)
                if writer.get_extra_info("sockname") == writer.get_extra_info("peername"):
                    # a dead peer's port given to us as our own: the socket met itself,
                    # and would hold the port the peer must bind when it restarts
                    writer.transport.abort()
                    raise ConnectionRefusedError(f"nothing listens on {host}:{port}")
            except (OSError, TimeoutError):
                self.dropped += len(q)  # stale by the time we reconnect; retransmitted
                q.clear()
                await asyncio.sleep(backoff_s * (0.5 + self.rng.random()))
                backoff_s = min(backoff_s * 2, 1.0)
                continue
            backoff_s = 0.02
            self._connected[peer] = True
            closed = False

            def on_eof(_: asyncio.Future[bytes]) -> None:
                nonlocal closed
                closed = True
                ready.set()

            watcher = asyncio.ensure_future(reader.read(1))  # EOF from a dead peer
            watcher.add_done_callback(on_eof)
            try:
                writer.write(encode_frame({"hello": self.node_id}))
                while not closed:
                    if not q:
                        ready.clear()
                        await ready.wait()
                        continue
                    frames = list(q)
                    q.clear()
                    writer.write(b"".join(frames))
                    # A link that accepts nothing for this long (a stopped peer, a
                    # black-holing proxy) is as good as cut: start over on a new
                    # connection rather than queue behind it forever.
                    async with asyncio.timeout(self.write_timeout_s):
                        await writer.drain()
            except (OSError, ConnectionError, TimeoutError):
                self.dropped += len(q)
                q.clear()
            finally:
                self._connected[peer] = False
                watcher.remove_done_callback(on_eof)
                watcher.cancel()
                writer.close()
                # A close waits to flush what is buffered, which a stopped peer or a
                # black-holing link never takes: give up on it rather than on the peer.
                try:
                    async with asyncio.timeout(1.0):
                        await writer.wait_closed()
                except Exception:
                    writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._inbound.add(writer)
        src: Any = None
        try:
            async with asyncio.timeout(5.0):
                hello = await _read_frame(reader, 1024)
            src = hello.get("hello") if isinstance(hello, dict) else None
            if src not in self.peers:
                return
            while True:
                obj = await _read_frame(reader, self.max_frame_bytes)
                try:
                    self.on_message(src, obj)
                except Exception:
                    log.exception("dropping a message from %s that could not be handled", src)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, TimeoutError):
            pass
        except ValueError as e:
            log.warning("closing connection from a peer that sent a bad frame: %s", e)
        finally:
            self._inbound.discard(writer)
            writer.close()
            if src in self.peers and self.on_closed is not None and not self._stopping:
                try:
                    self.on_closed(src)
                except Exception:
                    log.exception("the close of the link from %s could not be handled", src)
