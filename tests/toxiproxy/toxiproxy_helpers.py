"""Helpers for the Toxiproxy tests: an echo server and socket reads with clear failures."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

from harness import sockets


class EchoServer:
    """Echoes everything back; thread per connection; ``close()`` ends all of them."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        # What each connection received, in accept order (to check what got through).
        self.received: list[bytearray] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.received.append(bytearray())
            thread = threading.Thread(
                target=self._echo, args=(conn, self.received[-1]), daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _echo(self, conn: socket.socket, received: bytearray) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(30)
            while data := conn.recv(65536):
                received += data
                conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=2)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(timeout=2)


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read ``n`` bytes or fail (socket timeout or early close)."""
    parts = []
    while n:
        data = sock.recv(n)
        if not data:
            raise ConnectionError(f"closed with {n} bytes still expected")
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def recv_until_closed(sock: socket.socket) -> bytes:
    """Everything until EOF (a reset counts as EOF here)."""
    parts = []
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(65536):
            parts.append(data)
    return b"".join(parts)


def free_port() -> int:
    """A port nothing listens on right now (below the ephemeral range)."""
    return sockets.free_port()
