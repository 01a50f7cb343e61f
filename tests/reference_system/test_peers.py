"""Peer transport in-process: delivery, reconnection after the other side
restarts, and a garbage frame that closes one connection, not the node."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from reference_system.local import free_base_port
from reference_system.peers import PeerTransport, encode_frame


async def eventually(pred: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_frames_arrive_and_links_reconnect() -> None:
    async def main() -> None:
        base = free_base_port(2)
        addr = {1: ("127.0.0.1", base + 101), 2: ("127.0.0.1", base + 102)}
        got: list[tuple[int, Any]] = []
        a = PeerTransport(1, addr[1], {2: addr[2]}, lambda s, o: None)
        b = PeerTransport(2, addr[2], {1: addr[1]}, lambda s, o: got.append((s, o)))
        await a.start()
        await b.start()
        try:
            await eventually(lambda: a.connected(2))
            for k in range(100):
                a.send(2, encode_frame({"k": k}))
            await eventually(lambda: len(got) == 100)
            assert got == [(1, {"k": k}) for k in range(100)]
            await b.stop()  # the peer goes away ...
            await eventually(lambda: not a.connected(2))
            got.clear()
            b = PeerTransport(2, addr[2], {1: addr[1]}, lambda s, o: got.append((s, o)))
            await b.start()  # ... and comes back
            await eventually(lambda: a.connected(2))
            a.send(2, encode_frame("again"))
            await eventually(lambda: got == [(1, "again")])
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_garbage_and_strangers_are_disconnected() -> None:
    async def main() -> None:
        base = free_base_port(2)
        got: list[Any] = []
        b = PeerTransport(
            2, ("127.0.0.1", base + 102), {1: ("127.0.0.1", base + 101)}, lambda s, o: got.append(o)
        )
        await b.start()
        try:

            def attack(payload: bytes) -> bytes:
                with socket.create_connection(("127.0.0.1", base + 102), timeout=5) as s:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    return s.recv(10)

            hello = encode_frame({"hello": 1})
            for junk in [
                encode_frame({"hello": 99}) + encode_frame("x"),  # not a member
                hello + struct.pack(">I", 4) + b"{{{{",  # not JSON
                hello + struct.pack(">I", 2**31),  # absurd length
                b"\x00\x00",
            ]:
                assert await asyncio.to_thread(attack, junk) == b""
            await asyncio.to_thread(attack, hello + encode_frame("fine"))
            await eventually(lambda: got == ["fine"])
        finally:
            await b.stop()

    asyncio.run(main())
