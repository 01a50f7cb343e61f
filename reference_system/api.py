"""The HTTP/JSON client API of a node: routes, input validation, status codes.

Every error body is ``{"error": code, "definite": bool, "message": ...}``.
``definite: true`` means the request certainly had no effect (400 bad input,
404 unknown item, 409 stale token / CAS mismatch / duplicate id, 503 no
leader before anything was proposed); ``definite: false`` means it may or may
not have taken effect (504 timeout after proposing, 500). A client retrying
with the same ``request_id`` gets the first outcome, never a second effect.

Routes (bodies are JSON objects; ``request_id`` is optional on every mutation):

* ``POST /enqueue`` ``{"id"?, "payload"?}`` -> ``{"ok", "id"}``; 409 ``exists``
* ``POST /claim`` ``{"worker"}`` -> ``{"ok", "item": {id, payload, token, attempts} | null}``
* ``POST /renew`` ``{"id", "token"}`` -> ``{"ok", "token"}``; 404, 409 ``stale``
* ``POST /complete`` ``{"id", "token", "result"?}`` -> ``{"ok", "result"}``
  (a repeat with the current token returns the stored result); 404, 409 ``stale``
* ``POST /fail`` ``{"id", "token"}`` -> ``{"ok", "state": "queued" | "dead"}``
* ``GET /items/{id}`` -> ``{"id", "state", "token", "attempts", "holder", ...}``; 404
* ``GET /kv/{key}`` -> ``{"ok", "value"}`` (``null`` when absent), through the log
* ``POST /kv/{key}`` ``{"value"}`` -> ``{"ok"}``
* ``POST /kv/{key}/cas`` ``{"from", "to"}`` -> ``{"ok"}``; 409 ``mismatch`` with ``value``
* ``GET /status``: role, leader, ballot, commit, applied, snapshot, item counts
* ``GET /replica``: this node's applied state, from this node alone (no log, no
  leader): ``{"node", "applied", "digest", "kv", "items", "queue"}``, for
  comparing replicas; a lagging or divergent node answers with what it holds
* ``GET /health``: 200 when a live leader is known and this node is caught up, else 503;
  ``GET /health?role=leader``: the same, and 503 also when this node is not the leader
  (as Vault's standby code: a load balancer may prefer the node that commits)
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

if TYPE_CHECKING:
    from reference_system.node import Node

__all__ = ["Api", "Request", "Response", "json_response", "start_http_server"]

log = logging.getLogger(__name__)

MAX_ID_CHARS = 256
MAX_DEPTH = 32
"""Deeper values are refused: every replica deep-copies and re-encodes what it
stores, and a value nested a thousand levels would hit Python's recursion limit
there, on every node, long after the client got its answer."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


class BadRequest(Exception):
    """The client's input is wrong; nothing was done."""


def _bad(message: str) -> Response:
    return json_response(400, {"error": "bad_request", "definite": True, "message": message})


def _str(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    v = body.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v or len(v) > MAX_ID_CHARS:
        raise BadRequest(f"{name!r} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return v


def _token(body: dict[str, Any]) -> int:
    v = body.get("token")
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise BadRequest("'token' must be a non-negative integer")
    return v


class Api:
    """Routes requests to a :class:`~reference_system.node.Node`."""

    def __init__(self, node: Node):
        self.node = node

    async def handle(self, req: Request) -> Response:
        """Answer one request; never raises for bad input."""
        segments = [unquote(s) for s in req.path.split("/")[1:]]
        try:
            return await self._route(req, segments)
        except BadRequest as e:
            return _bad(str(e))

    def _body(self, req: Request) -> dict[str, Any]:
        if not req.body:
            return {}
        try:
            body = json.loads(req.body, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise BadRequest(f"body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        # Bug "no_depth_limit": the depth guard is skipped.
        if "no_depth_limit" not in self.node.cfg.bugs and _depth(body) > MAX_DEPTH:
            raise BadRequest(f"body nests deeper than {MAX_DEPTH} levels")
        return body

    async def _run(self, command: dict[str, Any], body: dict[str, Any] | None = None) -> Response:
        if body is not None:
            rid = _str(body, "request_id", required=False)
            if rid is not None:
                command["rid"] = rid
        status, result = await self.node.execute(command)
        if status != 200 and isinstance(result, dict):
            result = {"definite": True, "message": "", **result}
        return json_response(status, result)

    async def _route(self, req: Request, seg: list[str]) -> Response:
        m = req.method
        node = self.node
        if seg == ["health"] and m == "GET":
            # Cheap on purpose (no item counts): the load balancer asks often.
            ok = node.healthy()
            if ok and req.query.get("role") == ["leader"]:
                ok = node.leads()
            return json_response(200 if ok else 503, {"ok": ok, **node.status(brief=True)})
        if seg == ["status"] and m == "GET":
            return json_response(200, node.status())
        if seg == ["replica"] and m == "GET":
            return json_response(200, node.replica_state())
        if len(seg) == 1 and seg[0] in {"enqueue", "claim", "renew", "complete", "fail"}:
            if m != "POST":
                return _method()
            return await getattr(self, f"_{seg[0]}")(self._body(req))
        if len(seg) == 2 and seg[0] == "items" and seg[1]:
            if m != "GET":
                return _method()
            if "local_reads" in node.cfg.bugs:
                # Bug "local_reads": answer from local state, bypassing the log.
                view = node.machine.item(seg[1])
                if view is None:
                    return json_response(404, {"error": "unknown", "definite": True})
                return json_response(200, view)
            status, result = await node.execute({"op": "get", "id": seg[1]})
            if status == 200:
                return json_response(200, result["item"])
            return json_response(status, {"definite": True, "message": "", **result})
        if len(seg) == 2 and seg[0] == "kv" and seg[1]:
            key = seg[1]
            if m == "GET":
                if "local_reads" in node.cfg.bugs:
                    return json_response(200, {"ok": True, "value": node.machine.kv.get(key)})
                return await self._run({"op": "read", "key": key})
            if m in {"POST", "PUT"}:
                body = self._body(req)
                if "value" not in body:
                    raise BadRequest("'value' is required")
                return await self._run({"op": "write", "key": key, "value": body["value"]}, body)
            return _method()
        if len(seg) == 3 and seg[0] == "kv" and seg[1] and seg[2] == "cas":
            if m != "POST":
                return _method()
            body = self._body(req)
            if "from" not in body or "to" not in body:
                raise BadRequest("'from' and 'to' are required")
            cmd = {"op": "cas", "key": seg[1], "from": body["from"], "to": body["to"]}
            return await self._run(cmd, body)
        return json_response(
            404, {"error": "not_found", "definite": True, "message": f"no route {m} {req.path}"}
        )

    async def _enqueue(self, body: dict[str, Any]) -> Response:
        item_id = _str(body, "id", required=False) or uuid.uuid4().hex
        return await self._run(
            {"op": "enqueue", "id": item_id, "payload": body.get("payload")}, body
        )

    async def _claim(self, body: dict[str, Any]) -> Response:
        return await self._run({"op": "claim", "worker": _str(body, "worker")}, body)

    async def _renew(self, body: dict[str, Any]) -> Response:
        return await self._run({"op": "renew", "id": _str(body, "id"), "token": _token(body)}, body)

    async def _complete(self, body: dict[str, Any]) -> Response:
        cmd = {
            "op": "complete",
            "id": _str(body, "id"),
            "token": _token(body),
            "result": body.get("result"),
        }
        return await self._run(cmd, body)

    async def _fail(self, body: dict[str, Any]) -> Response:
        return await self._run({"op": "fail", "id": _str(body, "id"), "token": _token(body)}, body)


def _method() -> Response:
    return json_response(405, {"error": "method_not_allowed", "definite": True, "message": ""})


# ------------------------------------------------------------------ HTTP on aiohttp
#
# aiohttp's low-level server (``web.Server``) parses HTTP; llhttp, its C parser,
# is what Node.js uses. It is in Debian (``python3-aiohttp``, 3.8.4 in bookworm, the
# node image) and on PyPI (the local backend), so the node needs no HTTP code of
# its own. What stays here is the contract the harness relies on, which aiohttp
# does not give by itself: JSON error bodies with ``definite``, 431 for a head
# over the limit, 411 for a body without a length, one unambiguous
# ``Content-Length`` (RFC 9112 6.3), 413 before a large body is read, and an
# ``Expect: 100-continue`` answer (aiohttp sends it only from its router).


@dataclass(frozen=True)
class Request:
    """One request as the API sees it; ``path`` is raw, percent-decoded per segment
    by the router (so ``%2F`` stays inside a key)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
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


def _error(status: int, code: str, message: str, *, definite: bool = True) -> Response:
    return json_response(status, {"error": code, "definite": definite, "message": message})


Handler = Callable[[Request], Awaitable[Response]]

_DIGITS = re.compile(r"[0-9]{1,18}")

#: aiohttp 3.8 (Debian bookworm) cancels the handler when the client goes away;
#: 3.9 and later do not by default. A command half-way through the log must not
#: be cancelled by a client's disconnect, so on 3.8 the handler is shielded.
_CANCELS_HANDLERS = "handler_cancellation" not in inspect.signature(web.Server).parameters


def _wire(resp: Response, *, close: bool = False) -> web.Response:
    out = web.Response(status=resp.status, body=resp.body, headers=resp.headers)
    if close:
        out.force_close()
    return out


class _JsonErrors(RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses in JSON.

    ``handle_error`` is where aiohttp turns a parse error (and a handler's
    exception) into a response; its own answer is text, the harness reads JSON.
    The connection is closed after it, as aiohttp does: the stream is no longer
    trusted.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already under way; cannot send an error")
        if status >= 500:
            log.error("handler failed for %s %s", request.method, request.path, exc_info=exc)
            resp = _error(500, "internal", "internal error", definite=False)
        elif isinstance(exc, LineTooLong):
            resp = _error(431, "bad_request", "headers too large")
        else:
            log.debug("refused a request head: %s", exc)
            resp = _error(status, "bad_request", f"malformed request: {message or exc}")
        return _wire(resp, close=True)


class _Server(web.Server):
    """``web.Server`` whose connections answer errors in JSON (:class:`_JsonErrors`)."""

    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


async def start_http_server(
    handler: Handler,
    host: str,
    port: int,
    *,
    max_body_bytes: int = 1 << 20,
    max_header_bytes: int = 32 * 1024,
    idle_timeout_s: float = 75.0,
) -> asyncio.Server:
    """Serve ``handler`` over HTTP/1.1; the caller owns (and closes) the returned server.

    Limits: a head over ``max_header_bytes`` (one line, or all of them) gets 431,
    a body over ``max_body_bytes`` 413 before it is read (aiohttp then reads and
    drops the rest for up to 10 s so the client sees the answer rather than a
    reset), an idle keep-alive connection is closed after ``idle_timeout_s``, as
    is a body that does not arrive within it.
    """

    async def serve(raw: web.BaseRequest) -> web.StreamResponse:
        headers = raw.headers
        if "Transfer-Encoding" in headers:
            return _wire(_error(411, "bad_request", "send a Content-Length body"), close=True)
        if sum(len(k) + len(v) + 4 for k, v in raw.raw_headers) > max_header_bytes:
            return _wire(_error(431, "bad_request", "headers too large"), close=True)
        lengths = headers.getall("Content-Length", [])
        if len(lengths) > 1 or (lengths and not _DIGITS.fullmatch(lengths[0])):
            # llhttp already refuses these; aiohttp's pure-Python parser may not.
            msg = f"Content-Length must be one number, got {lengths}"
            return _wire(_error(400, "bad_request", msg), close=True)
        length = int(lengths[0]) if lengths else 0
        if length > max_body_bytes:
            return _wire(_error(413, "too_large", f"body over {max_body_bytes} bytes"))
        body = b""
        if length:
            if headers.get("Expect", "").lower() == "100-continue":
                await raw.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                if raw.content.is_eof():  # all here already: no timer to arm
                    body = await raw.content.readexactly(length)
                else:
                    async with asyncio.timeout(idle_timeout_s):
                        body = await raw.content.readexactly(length)
            except (asyncio.IncompleteReadError, TimeoutError):
                msg = f"body shorter than its Content-Length {length}"
                return _wire(_error(400, "bad_request", msg), close=True)
        target = raw.raw_path  # the request target as sent
        if target.startswith("/") and "#" not in target:
            path, _, query = target.partition("?")  # no URL object per request: cheaper
        else:  # absolute form (http://host/path) or a fragment: let yarl take it apart
            path, query = raw.rel_url.raw_path, raw.query_string
        req = Request(raw.method, path, parse_qs(query) if query else {}, headers, body)
        if _CANCELS_HANDLERS:
            resp = await asyncio.shield(handler(req))
        else:
            resp = await handler(req)
        return _wire(resp)

    kwargs: dict[str, Any] = {
        "keepalive_timeout": idle_timeout_s,
        "max_line_size": max_header_bytes,
        "max_field_size": max_header_bytes,
        "access_log": None,  # a log line per request costs CPU; the node logs what matters
    }
    server = _Server(serve, **kwargs)
    return await asyncio.get_running_loop().create_server(server, host, port)
