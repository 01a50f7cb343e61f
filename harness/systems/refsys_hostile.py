"""Malformed requests for the reference system (:class:`harness.system.TakesHostileInput`).

Every request :func:`hostile_request` draws is one ``reference_system/api.py``
documents as malformed, so a correct node answers it with a 4xx (400, 404, 405,
411, 413, 431), never a 2xx or a 5xx: values nested deeper than ``MAX_DEPTH``
(32) in ``payload``, ``value``, ``from``/``to`` or ``result``; bodies that are
not JSON (truncated, random bytes, invalid UTF-8), JSON that is not an object,
the constants ``NaN`` and ``Infinity``; required fields missing; fields of the
wrong type or over ``MAX_ID_CHARS``; unknown routes and wrong methods; framing
the node refuses (a chunked body, headers over 32 KiB, a body over 1 MiB), each
with a body that is malformed as well, so a load balancer that re-frames the
request still delivers something the node must refuse.

A request is a JSON-ready mapping (it goes into the history): ``why``,
``method``, ``path``, and optionally ``body`` (text) with its ``encoding``
(``utf-8``, the default; ``latin-1`` for bytes that are not UTF-8; ``base64``
for random bytes), ``pad_to`` (pad the body with spaces to that many bytes),
``chunked`` (send it with ``Transfer-Encoding: chunked``) and ``headers``
(``{name: [text, times]}``: the text repeated, to keep big headers small in
the history). Item ids and keys start with ``hostile-``, so one a faulty node
accepts shows as an unexpected item or key, never as a change to the
workload's own.

:func:`send_hostile` sends one with the standard library and classifies the
answer (see :meth:`harness.system.TakesHostileInput.send_hostile`).
"""

from __future__ import annotations

import base64
import http.client
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from harness import sockets
from harness.hostile import ACCEPTED, DROPPED, ERROR, NO_ANSWER, REFUSED
from harness.system import Address

__all__ = ["MAX_DEPTH", "MAX_ID_CHARS", "body_bytes", "classify", "hostile_request",
           "send_hostile"]

# The node's limits (reference_system/api.py and node.py), restated so the harness
# does not import the system it tests.
MAX_DEPTH = 32
MAX_ID_CHARS = 256
MAX_BODY_BYTES = 1 << 20
MAX_HEADER_BYTES = 32 * 1024

#: nesting depths of the deep values: just over the limit, well over it, near and
#: over Python's recursion limit (which the node's JSON parser hits first, at about
#: 980 on CPython 3.11). Just under that (about 970 to 979) a value the node parses
#: is one its peer messages, which wrap it a few levels deeper, can no longer encode.
DEPTHS = (33, 34, 40, 64, 100, 128, 250, 500, 800, 950, 965, 972, 976, 990, 1200, 3000)

Request = dict[str, Any]


def _id(rng: random.Random) -> str:
    return f"hostile-{rng.getrandbits(48):012x}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _deep(rng: random.Random, depth: int) -> str:
    """A JSON value (as text) nested ``depth`` levels: lists, objects or both,
    built as text (``json.dumps`` itself recurses and fails past ~1000 levels)."""
    style = rng.choice(("list", "dict", "mixed", "padded"))
    opens: list[str] = []
    closes: list[str] = []
    for _ in range(depth - 1):
        kind = style if style in ("list", "dict") else rng.choice(("list", "dict"))
        if kind == "list":
            opens.append("[1," if style == "padded" and rng.random() < 0.3 else "[")
            closes.append("]")
        else:
            opens.append('{"k":')
            closes.append("}")
    leaf = _dumps(rng.choice((0, "x", None, True, [], {})))
    return "".join(opens) + leaf + "".join(reversed(closes))


def _depth_of(rng: random.Random) -> int:
    return rng.choice(DEPTHS) + rng.randrange(0, 4)


def _with(fields: Mapping[str, str]) -> str:
    """A JSON object whose fields are given as JSON texts (so a deep value stays text)."""
    return "{" + ",".join(f"{_dumps(k)}:{v}" for k, v in fields.items()) + "}"


def _maybe_rid(rng: random.Random, fields: dict[str, str]) -> dict[str, str]:
    if rng.random() < 0.5:
        fields["request_id"] = _dumps(_id(rng))
    return fields


def _post(why: str, path: str, body: str, **extra: Any) -> Request:
    return {"why": why, "method": "POST", "path": path, "body": body, **extra}


# ------------------------------------------------------------------ the classes


def _too_deep(rng: random.Random) -> Request:
    depth = _depth_of(rng)
    deep = _deep(rng, depth)
    target = rng.choice(("payload", "value", "from", "to", "result"))
    why = f"{target!r} nested {depth} levels (limit {MAX_DEPTH})"
    if target == "payload":
        return _post(why, "/enqueue", _with(_maybe_rid(rng, {"id": _dumps(_id(rng)),
                                                             "payload": deep})))
    if target == "value":
        return _post(why, f"/kv/{_id(rng)}", _with(_maybe_rid(rng, {"value": deep})))
    if target in ("from", "to"):
        other = "to" if target == "from" else "from"
        fields = {target: deep, other: _dumps(rng.choice((None, 1, "x")))}
        return _post(why, f"/kv/{_id(rng)}/cas", _with(_maybe_rid(rng, fields)))
    fields = {"id": _dumps(_id(rng)), "token": _dumps(rng.randrange(1, 100)), "result": deep}
    return _post(why, "/complete", _with(_maybe_rid(rng, fields)))


def _valid_body(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A route and a well-formed body for it (to be broken by the caller)."""
    route = rng.choice(("/enqueue", "/claim", "/renew", "/kv", "/cas"))
    if route == "/enqueue":
        return route, {"id": _id(rng), "payload": {"n": rng.randrange(1000)}}
    if route == "/claim":
        return route, {"worker": _id(rng)}
    if route == "/renew":
        return route, {"id": _id(rng), "token": rng.randrange(1, 100)}
    if route == "/kv":
        return f"/kv/{_id(rng)}", {"value": rng.randrange(1000)}
    return f"/kv/{_id(rng)}/cas", {"from": 1, "to": 2}


def _not_json(rng: random.Random) -> Request:
    kind = rng.choice(("truncated", "random", "utf8", "trailing"))
    path, body = _valid_body(rng)
    text = _dumps(body)
    if kind == "truncated":
        # a strict prefix of a compact JSON object is never a JSON value
        cut = rng.randrange(1, len(text))
        return _post(f"truncated JSON ({cut} of {len(text)} chars)", path, text[:cut])
    if kind == "trailing":
        junk = rng.choice(("}", "]", ",", "x", "{}", "1"))
        return _post("JSON object followed by junk", path, text + junk)
    if kind == "utf8":
        bad = rng.choice(("\xff", "\xfe\xff", "\xc3(", "\x80", "a\xe2\x82"))
        field = next(iter(body))
        broken = text.replace(_dumps(body[field]), '"' + bad + '"', 1)
        return _post("body is not UTF-8", path, broken, encoding="latin-1")
    while True:
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
        if not _parses_as_object(raw):  # what the node would take (it does not happen)
            break
    return _post("body is random bytes", path, base64.b64encode(raw).decode(),
                 encoding="base64")


def _parses_as_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _not_object(rng: random.Random) -> Request:
    path, body = _valid_body(rng)
    text = rng.choice((f"[{_dumps(body)}]", "[]", "1", "-0.5", '"x"', "null", "true",
                       _dumps(list(body.items()))))
    return _post("JSON body is not an object", path, text)


def _constants(rng: random.Random) -> Request:
    const = rng.choice(("NaN", "Infinity", "-Infinity"))
    where = rng.choice(("payload", "value", "from", "to", "result"))
    if where == "payload":
        fields = {"id": _dumps(_id(rng)), "payload": const}
        path = "/enqueue"
    elif where == "value":
        fields, path = {"value": const}, f"/kv/{_id(rng)}"
    elif where in ("from", "to"):
        fields = {"from": "1", "to": "2", where: const}
        path = f"/kv/{_id(rng)}/cas"
    else:
        fields = {"id": _dumps(_id(rng)), "token": "1", "result": const}
        path = "/complete"
    return _post(f"{const} in {where!r} is not JSON", path, _with(fields))


def _missing(rng: random.Random) -> Request:
    route = rng.choice(("claim", "kv", "cas", "renew", "complete", "fail"))
    fields: dict[str, Any] = {}
    if route == "claim":
        path, gone = "/claim", "worker"
        fields = rng.choice(({}, {"workr": _id(rng)}, {"id": _id(rng)}))
    elif route == "kv":
        path, gone = f"/kv/{_id(rng)}", "value"
        fields = rng.choice(({}, {"val": 1}, {"from": 1, "to": 2}))
    elif route == "cas":
        path = f"/kv/{_id(rng)}/cas"
        gone = rng.choice(("from", "to", "from and to"))
        fields = {k: 1 for k in ("from", "to") if k not in gone}
    else:
        path = f"/{route}"
        gone = rng.choice(("id", "token", "id and token"))
        full = {"id": _id(rng), "token": rng.randrange(1, 100)}
        fields = {k: v for k, v in full.items() if k not in gone}
        if route == "complete" and rng.random() < 0.5:
            fields["result"] = "done"
    if rng.random() < 0.5:
        fields["request_id"] = _id(rng)
    body = "" if not fields and rng.random() < 0.5 else _dumps(fields)
    return _post(f"{gone} missing on {path.split('/')[1]}", path, body)


_BAD_IDS: tuple[Callable[[random.Random], Any], ...] = (
    lambda r: r.randrange(0, 10**6), lambda r: [_id(r)], lambda r: True, lambda r: False,
    lambda r: "", lambda r: {"id": _id(r)}, lambda r: 1.5,
    lambda r: _id(r) + "x" * (MAX_ID_CHARS + r.randrange(0, 50)),
)
_BAD_TOKENS: tuple[Any, ...] = ("1", "", -1, -(2**40), 1.5, 0.0, True, False, None, [1], {"t": 1})
_BAD_WORKERS: tuple[Callable[[random.Random], Any], ...] = (
    lambda r: r.randrange(0, 1000), lambda r: "", lambda r: [_id(r)], lambda r: True,
    lambda r: None, lambda r: {"w": 1}, lambda r: "w" * (MAX_ID_CHARS + 1 + r.randrange(0, 50)),
)


def _wrong_type(rng: random.Random) -> Request:
    what = rng.choice(("id", "token", "worker", "request_id", "enqueue-id"))
    if what in ("id", "token"):
        route = rng.choice(("renew", "complete", "fail"))
        fields: dict[str, Any] = {"id": _id(rng), "token": rng.randrange(1, 100)}
        fields[what] = rng.choice(_BAD_IDS)(rng) if what == "id" else rng.choice(_BAD_TOKENS)
        path = f"/{route}"
    elif what == "enqueue-id":
        # on enqueue the id is optional, but null is the only way to leave it out
        what, path = "id", "/enqueue"
        fields = {"id": rng.choice(_BAD_IDS)(rng), "payload": 1}
    elif what == "worker":
        path, fields = "/claim", {"worker": rng.choice(_BAD_WORKERS)(rng)}
    else:
        path, fields = _valid_body(rng)
        bad = rng.choice((rng.randrange(1, 10**6), "", ["r"], True, 2.5,
                          "r" * (MAX_ID_CHARS + 1 + rng.randrange(0, 50))))
        fields = {**fields, "request_id": bad}
    shown = _dumps(fields[what])
    shown = shown if len(shown) <= 24 else f"{shown[:12]}... ({len(shown)} chars)"
    return _post(f"{what} {shown} has the wrong type or length", path, _dumps(fields))


def _bad_route(rng: random.Random) -> Request:
    key = _id(rng)
    method, path, why = rng.choice((
        ("GET", "/enqueue", "wrong method"), ("PUT", "/claim", "wrong method"),
        ("GET", "/renew", "wrong method"), ("DELETE", "/complete", "wrong method"),
        ("PATCH", "/fail", "wrong method"), ("DELETE", f"/kv/{key}", "wrong method"),
        ("PATCH", f"/kv/{key}", "wrong method"), ("GET", f"/kv/{key}/cas", "wrong method"),
        ("PUT", f"/kv/{key}/cas", "wrong method"), ("POST", f"/items/{key}", "wrong method"),
        ("DELETE", f"/items/{key}", "wrong method"), ("POST", "/status", "wrong method"),
        ("DELETE", "/replica", "wrong method"),
        ("GET", f"/{key}", "unknown route"), ("POST", "/", "unknown route"),
        ("GET", "/items/", "unknown route (no id)"), ("POST", "/kv/", "unknown route (no key)"),
        ("POST", f"/kv/{key}/cas/more", "unknown route"), ("GET", "/kv", "unknown route"),
        ("POST", "/enqueue/more", "unknown route"), ("GET", f"/items/{key}/x", "unknown route"),
        ("POST", f"/kv/{key}/swap", "unknown route"), ("GET", "/health/x", "unknown route"),
    ))
    req: Request = {"why": f"{why}: {method} {path.replace(key, 'hostile-...')}",
                    "method": method, "path": path}
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.7:
        req["body"] = _dumps({"id": _id(rng), "value": 1})
    return req


def _framing(rng: random.Random) -> Request:
    """Framing the node refuses, around a body it refuses as well."""
    kind = rng.choice(("chunked", "headers", "too-large"))
    if kind == "chunked":
        req = _post("chunked body (the node wants a Content-Length) without 'worker'",
                    "/claim", _dumps({"request_id": _id(rng)}), chunked=True)
    elif kind == "headers":
        times = MAX_HEADER_BYTES + 1 + rng.randrange(0, 4096)
        req = _post(f"a {times}-byte header (limit {MAX_HEADER_BYTES}) on a claim without "
                    "'worker'", "/claim", "{}", headers={"X-Hostile": ["h", times]})
    else:
        size = MAX_BODY_BYTES + 1 + rng.randrange(0, 1024)
        req = _post(f"a {size}-byte body (limit {MAX_BODY_BYTES}) with 'worker' an int",
                    "/claim", _dumps({"worker": 7}), pad_to=size)
    return req


#: the classes and their weights: the deep values most, as they are the ones that
#: reach the replicas when a node lets them through
CLASSES: tuple[tuple[Callable[[random.Random], Request], int], ...] = (
    (_too_deep, 6), (_not_json, 3), (_not_object, 2), (_constants, 2), (_missing, 3),
    (_wrong_type, 4), (_bad_route, 2), (_framing, 1),
)


def hostile_request(rng: random.Random) -> dict[str, Any]:
    """One request the node's API documents as malformed (see the module doc)."""
    draw = rng.choices([c for c, _ in CLASSES], weights=[w for _, w in CLASSES])[0]
    return draw(rng)


# ------------------------------------------------------------------ sending


def body_bytes(request: Mapping[str, Any]) -> bytes | None:
    """The body a request stands for (None: no body)."""
    text = request.get("body")
    if text is None:
        return None
    encoding = request.get("encoding", "utf-8")
    if encoding == "base64":
        data = base64.b64decode(str(text))
    elif encoding == "latin-1":
        data = str(text).encode("latin-1")
    else:
        data = str(text).encode("utf-8")
    pad = request.get("pad_to")
    if isinstance(pad, int) and pad > len(data):
        data += b" " * (pad - len(data))
    return data


def _headers(request: Mapping[str, Any], data: bytes | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    for name, spec in (request.get("headers") or {}).items():
        if isinstance(spec, list | tuple) and len(spec) == 2:
            headers[str(name)] = str(spec[0]) * int(spec[1])
        else:
            headers[str(name)] = str(spec)
    return headers


def classify(status: int, raw: bytes) -> tuple[str, str]:
    """The answer to a malformed request, from its HTTP status and body."""
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    fields = body if isinstance(body, dict) else {}
    code = fields.get("error")
    from_lb = fields.get("source") == "lb"
    detail = f"{status} {code}" if isinstance(code, str) else f"{status}"
    if from_lb:
        detail += " (load balancer)"
    if 200 <= status < 300:
        return ACCEPTED, detail
    if 400 <= status < 500:
        return REFUSED, detail
    if 500 <= status < 600:
        if from_lb or not isinstance(code, str) or "definite" not in fields:
            # a proxy's or load balancer's own page: the system did not answer
            kind = "JSON" if body is not None else "not JSON"
            return NO_ANSWER, detail if from_lb else f"{detail} ({kind}, not the node's error)"
        if status == 503 and fields.get("definite") is True:
            return REFUSED, detail  # nothing was proposed: no leader, not the leader
        return ERROR, detail
    return NO_ANSWER, f"{detail} (unexpected status)"


def send_hostile(request: Mapping[str, Any], address: Address, *,
                 timeout_s: float) -> tuple[str, str]:
    """Send ``request`` to ``address`` (one connection, one request) and classify
    the answer; never raises."""
    try:
        data = body_bytes(request)
        headers = _headers(request, data)
        method = str(request.get("method", "POST"))
        path = str(request.get("path", "/"))
    except Exception as e:  # a request this module did not draw
        return NO_ANSWER, f"unsendable request: {type(e).__name__}: {e}"
    conn = sockets.HTTPConnection(address.host, address.port, timeout=timeout_s)
    try:
        try:
            if request.get("chunked") and data is not None:
                headers["Transfer-Encoding"] = "chunked"
                conn.request(method, path, body=iter([data]), headers=headers,
                             encode_chunked=True)
            else:
                conn.request(method, path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as e:
            # a node may answer (413) and close before the whole body is sent: its
            # answer may still be readable
            try:
                resp = conn.getresponse()
                return classify(resp.status, resp.read())
            except Exception:
                return NO_ANSWER, f"{type(e).__name__} while sending"
        try:
            resp = conn.getresponse()
            return classify(resp.status, resp.read())
        except (http.client.BadStatusLine, http.client.IncompleteRead,
                ConnectionResetError) as e:
            # the whole request went out and the other end closed without an answer
            # (RemoteDisconnected is both a reset and a bad status line)
            return DROPPED, f"closed without an answer ({type(e).__name__})"
    except ConnectionRefusedError:
        return NO_ANSWER, "connection refused"
    except TimeoutError:
        return NO_ANSWER, f"no answer in {timeout_s:g} s"
    except Exception as e:
        return NO_ANSWER, f"{type(e).__name__}: {str(e)[:100]}"
    finally:
        conn.close()
