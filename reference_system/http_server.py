"""A small HTTP/1.1 server on asyncio streams (the node may not use PyPI).

Enough of HTTP for a JSON API behind HAProxy: keep-alive, ``Content-Length``
bodies, limits on header and body size, an idle timeout. Anything a client
sends that is not understood gets a 4xx and, when the stream can no longer be
trusted, the connection is closed; the server keeps serving other clients. A
handler exception is a 500 for that request only.

The body's length must be unambiguous (RFC 9112 6.3): ``Content-Length``
is digits only, and several of them must agree, else 400 at once. Taking the
last of two conflicting values waited for a body the client never meant to
send, until the 75 s idle timeout; a proxy taking the other value would also
split the stream differently from us (request smuggling). Header names with
whitespace and folded lines are refused for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Request", "Response", "json_response", "start_http_server"]

log = logging.getLogger(__name__)

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Request:
    """One parsed request; ``path`` is percent-decoded per segment by the router."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    """A response; ``body`` is already encoded."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any) -> Response:
    """A JSON response."""
    return Response(
        status,
        json.dumps(obj, separators=(",", ":")).encode(),
        {"Content-Type": "application/json"},
    )


def _error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": code, "definite": True, "message": message})


Handler = Callable[[Request], Awaitable[Response]]

# RFC 9110 token characters: a header name is one of these runs, nothing else.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


def _content_length(values: list[str]) -> int:
    """The body length the ``Content-Length`` lines state; ``ValueError`` if not one number.

    ``int()`` alone is too lenient (``+5``, ``5_0``, `` 5``); a list such as
    ``5, 5`` or repeated lines count only when every element agrees.
    """
    lengths = {
        item.strip() for value in values for item in value.split(",")
    }
    if not lengths:
        return 0
    if len(lengths) != 1:
        raise ValueError(f"conflicting Content-Length: {sorted(lengths)}")
    (text,) = lengths
    if not _DIGITS.fullmatch(text) or len(text) > 18:
        raise ValueError(f"bad Content-Length {text!r}")
    return int(text)


async def start_http_server(
    handler: Handler,
    host: str,
    port: int,
    *,
    max_body_bytes: int = 1 << 20,
    max_header_bytes: int = 32 * 1024,
    idle_timeout_s: float = 75.0,
) -> asyncio.Server:
    """Start serving; the caller owns (and closes) the returned server."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve_connection(reader, writer, handler, max_body_bytes, idle_timeout_s)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:  # a bug here must not take the server down
            log.exception("http connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(on_connection, host, port, limit=max_header_bytes)


async def _write(writer: asyncio.StreamWriter, resp: Response, keep_alive: bool) -> None:
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}"]
    headers = {"Content-Length": str(len(resp.body)), **resp.headers}
    headers["Connection"] = "keep-alive" if keep_alive else "close"
    head.extend(f"{k}: {v}" for k, v in headers.items())
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body)
    await writer.drain()


async def _linger(reader: asyncio.StreamReader, limit_bytes: int) -> None:
    """Read and discard what the client is still sending (up to a limit and a
    second), so it sees our error response instead of a reset connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while limit_bytes > 0 and loop.time() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(min(limit_bytes, 1 << 16)), 0.2)
        except TimeoutError:
            return
        if not chunk:
            return
        limit_bytes -= len(chunk)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    max_body_bytes: int,
    idle_timeout_s: float,
) -> None:
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):  # cheaper than wait_for: no task
                raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # the client closed the connection
        except asyncio.LimitOverrunError:
            await _write(writer, _error(431, "bad_request", "headers too large"), False)
            return
        try:
            text = raw.decode("latin-1")
            request_line, *header_lines = text[:-4].split("\r\n")
            method, target, version = request_line.split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            lengths: list[str] = []
            for line in header_lines:
                name, sep, value = line.partition(":")
                if not sep or not _TOKEN.fullmatch(name):
                    raise ValueError(line)  # also a folded line, or "Name :"
                key = name.lower()
                if key == "content-length":
                    lengths.append(value)
                headers[key] = value.strip()
            parts = urlsplit(target)
            path = parts.path
            query = parse_qs(parts.query)
        except ValueError:
            await _write(writer, _error(400, "bad_request", "malformed request head"), False)
            return
        if "transfer-encoding" in headers:
            await _write(writer, _error(411, "bad_request", "send a Content-Length body"), False)
            return
        try:
            length = _content_length(lengths)
        except ValueError as exc:
            await _write(writer, _error(400, "bad_request", str(exc)), False)
            return
        if length > max_body_bytes:
            await _write(
                writer, _error(413, "too_large", f"body over {max_body_bytes} bytes"), False
            )
            await _linger(reader, min(length, 64 << 20))
            return
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second otherwise
        async with asyncio.timeout(idle_timeout_s):
            body = await reader.readexactly(length)
        conn = headers.get("connection", "").lower()
        keep_alive = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
        req = Request(method.upper(), path, query, headers, body)
        try:
            resp = await handler(req)
        except Exception:
            log.exception("handler failed for %s %s", method, path)
            resp = json_response(
                500, {"error": "internal", "definite": False, "message": "internal error"}
            )
        await _write(writer, resp, keep_alive)
        if not keep_alive:
            return
