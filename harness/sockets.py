"""Loopback ports and connections that cannot meet themselves.

On one host, a client that connects to a port nobody listens on can be given
that very port as its own ephemeral source port; the kernel then joins the
socket to itself (a TCP "self-connect"). The client reads back its own bytes
(an HTTP request where it waits for a status line), a readiness probe believes
a dead node is up, and, worst, the socket holds the port, so the node cannot
bind it when it restarts. Every local cluster polls dead nodes' ports under
kill faults, so over a long suite this rare event happens.

Two guards, both here: ports handed to nodes and proxies are drawn below the
kernel's ephemeral range, so no client socket can be given them; and every
connection the harness makes checks that its two ends differ, answering a
self-connect as the refused connection it stands for.
"""

from __future__ import annotations

import http.client
import random
import socket
from pathlib import Path
from typing import Any

__all__ = ["HTTPConnection", "SelfConnectError", "connect", "ephemeral_range", "free_port",
           "hold_free_port", "http_get", "is_self_connected"]

#: Linux's default when /proc cannot be read
DEFAULT_EPHEMERAL = (32768, 60999)
#: the lowest port handed out: above the well-known and most registered services
LOWEST = 10_000


class SelfConnectError(ConnectionRefusedError):
    """A connection joined to itself: nothing listened on the port."""


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ephemeral (client source) ports, inclusive."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def _candidates(rng: random.Random) -> list[int]:
    """Ports outside the ephemeral range, in random order (empty if there are none)."""
    lo, hi = ephemeral_range()
    spans = [(LOWEST, lo - 1), (hi + 1, 65535)]
    ports: list[int] = []
    for a, b in spans:
        if b - a >= 100:
            ports.extend(rng.sample(range(a, b + 1), min(200, b - a + 1)))
    rng.shuffle(ports)
    return ports


def hold_free_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port outside the ephemeral range, held until closed.

    Falls back to a kernel-chosen port when no port outside the range is free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in _candidates(random.Random()):
        s = socket.socket(family)
        try:
            s.bind((host, port))
            return s
        except OSError:
            s.close()
    s = socket.socket(family)
    s.bind((host, 0))
    return s


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now outside the ephemeral range (released at once)."""
    with hold_free_port(host) as s:
        return int(s.getsockname()[1])


def is_self_connected(sock: Any) -> bool:
    """Whether a connected socket (or asyncio's view of one) has the same address at
    both ends."""
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


def connect(host: str, port: int, timeout: float | None = None, *,
            source_address: tuple[str, int] | None = None) -> socket.socket:
    """``socket.create_connection`` that refuses a self-connect."""
    sock = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
    if is_self_connected(sock):
        sock.close()
        raise SelfConnectError(f"nothing listens on {host}:{port} (the socket met itself)")
    return sock


class HTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` that refuses a self-connect."""

    def connect(self) -> None:
        super().connect()
        if self.sock is not None and is_self_connected(self.sock):
            self.sock.close()
            self.sock = None
            raise SelfConnectError(
                f"nothing listens on {self.host}:{self.port} (the socket met itself)")


def http_get(host: str, port: int, path: str, *, timeout: float
             ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One GET over a guarded connection: (status, headers, body) whatever the status.

    Raises ``OSError`` (a self-connect included) or ``http.client.HTTPException``
    when nothing answered in HTTP.
    """
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()
