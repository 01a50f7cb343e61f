"""Just enough HTTP/1.1 for the Toxiproxy API: requests in, responses out.

The standard library has no asyncio HTTP server, and the API is small, so
this reads a request line, headers and a body (``Content-Length`` or
chunked), and writes a response with keep-alive. Everything is bounded: a
header block over 64 KiB or a body over 16 MiB ends the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "HttpError", "Request", "Response", "read_request"]

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class HttpError(Exception):
    """A request that cannot be parsed; answered with 400 and the connection closed."""


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; header names are lower-cased."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        """Whether the client expects the connection to stay open."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass(slots=True)
class Response:
    """A response to encode; ``headers`` are added to the standard ones."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, *, keep_alive: bool, head_only: bool = False) -> bytes:
        """The bytes on the wire."""
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {self.status} {phrase}"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        for name, value in self.headers.items():
            lines.append(f"{name}: {value}")
        lines.append(f"Date: {formatdate(usegmt=True)}")
        if self.status not in (204, 304):
            lines.append(f"Content-Length: {len(self.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only or self.status in (204, 304) else head + self.body


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    """The next request on a connection, or ``None`` when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError("incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # tolerate stray CRLFs between requests
    if not lines:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError("malformed header")
        headers[name.lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    return Request(method, target, version, headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError("bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise HttpError("body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length_text = headers.get("content-length")
    if length_text is None:
        return b""
    try:
        length = int(length_text)
    except ValueError:
        raise HttpError("bad Content-Length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError("bad Content-Length")
    return await reader.readexactly(length)
