"""A minimal RESP2 client (the Redis protocol), standard library only.

Enough for an adapter: send a command, read one reply. Transport failures
raise :class:`RespConnectionError` with ``sent`` telling whether the command
may have reached the server (a refused connection certainly did not), so the
adapter can tell a definite failure from an indeterminate one; server errors
(``-ERR ...``) come back as :class:`RespError` values, never raised.
"""

from __future__ import annotations

import socket
from typing import Any

from harness.system import Address

__all__ = ["Resp", "RespConnectionError", "RespError"]


class RespError(str):
    """An error reply from the server (``-READONLY ...``): a value, not an exception."""

    @property
    def kind(self) -> str:
        return self.split(" ", 1)[0]


class RespConnectionError(Exception):
    """No reply; ``sent`` is False only when the command certainly never left."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Resp:
    """One connection to one server, reconnecting after any transport failure."""

    def __init__(self, address: Address, *, timeout_s: float = 5.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = b""

    def command(self, *args: Any) -> Any:
        """Send one command and return its reply (errors as :class:`RespError`)."""
        if self._sock is None:
            try:
                self._sock = socket.create_connection(
                    (self.address.host, self.address.port), timeout=self.timeout_s)
            except OSError as e:
                self.close()
                raise RespConnectionError(f"{type(e).__name__}: {e}", sent=False) from None
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        try:
            self._sock.sendall(b"".join(out))
            return self._reply()
        except (OSError, ValueError) as e:
            self.close()
            raise RespConnectionError(f"{type(e).__name__}: {e}", sent=True) from None

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self._buf += chunk

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self._buf) < n + 2:
                self._fill()
            data, self._buf = self._buf[:n], self._buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError(f"not a RESP reply: {line[:40]!r}")
