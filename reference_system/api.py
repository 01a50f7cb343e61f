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
* ``GET /health``: 200 when a live leader is known and this node is caught up, else 503
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from reference_system.http_server import Request, Response, json_response

if TYPE_CHECKING:
    from reference_system.node import Node

__all__ = ["Api"]

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
        if _depth(body) > MAX_DEPTH:
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
