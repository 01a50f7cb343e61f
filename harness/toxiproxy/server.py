"""The Toxiproxy 2.x HTTP API (see ``toxiproxy-api.md``), served with asyncio.

Routing, status codes, headers and error bodies follow Toxiproxy 2.12 as a
real server answers them (the same tests run against one with
``HARNESS_TOXIPROXY_URL``): unknown paths are 404 ``404 page not found``, a
known path with the wrong method is an empty 405, any ``User-Agent``
starting with ``Mozilla/`` gets 403 (Toxiproxy's guard against cross-site
requests from browsers). Responses from a handler carry an
``X-Toxiproxy-Request-Id``; the router's own 404 and 405 (and a request the
HTTP layer cannot parse) carry none, because in Toxiproxy they are answered
before its request-id middleware runs. Handler errors go through Go's
``http.Error``: the JSON body and a newline, but ``text/plain;
charset=utf-8`` with ``X-Content-Type-Options: nosniff``, so a client must
parse the body whatever the content type says. ``/populate`` marshals its
own answer: ``application/json``, and ``"proxies": null`` (Go's nil slice)
when no proxy was created.

One difference is deliberate: a proxy created without ``listen`` (or with an
empty host) binds the API's own host, 127.0.0.1 by default, where the real
server binds every interface; a test harness should not open ports to the
network by accident. Requests are handled one at a time, so two clients
changing the same proxy see the changes in some order, never interleaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from harness.toxiproxy import api_errors
from harness.toxiproxy.api_errors import ApiError
from harness.toxiproxy.decode import (
    DecodeError,
    expect_object,
    field,
    get_bool,
    get_float,
    get_str,
    json_kind,
    parse_body,
)
from harness.toxiproxy.http11 import MAX_HEAD_BYTES, HttpError, Request, Response, read_request
from harness.toxiproxy.proxy import Proxy, format_address
from harness.toxiproxy.stream import Direction
from harness.toxiproxy.toxics import TOXIC_KINDS, Toxic

__all__ = ["VERSION", "ToxiproxyServer"]

VERSION = "2.12.0"
_PLAIN_TEXT = "text/plain; charset=utf-8"
log = logging.getLogger(__name__)

Handler = Callable[[Request, list[str]], Awaitable[Response]]


def _json(status: int, obj: Any) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")


def _error(exc: ApiError) -> Response:
    # Go's http.Error: the JSON and a newline, served as plain text.
    body = (json.dumps(exc.body(), separators=(",", ":")) + "\n").encode()
    return Response(
        exc.status, body, _PLAIN_TEXT, headers={"X-Content-Type-Options": "nosniff"}
    )


def _populated(proxies: list[Proxy]) -> list[dict[str, Any]] | None:
    """Go marshals an empty (nil) slice of created proxies as ``null``."""
    return [proxy.to_json() for proxy in proxies] or None


class ToxiproxyServer:
    """The API server and the proxies it manages, on the running event loop.

    ``seed`` fixes every random draw (toxicity rolls, jitter, slice sizes), so
    a run can be replayed.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 8474, seed: int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.rng = random.Random(seed)
        self.proxies: dict[str, Proxy] = {}
        self._server: asyncio.Server | None = None
        self._lock = asyncio.Lock()
        self._request_prefix = f"{int(time.time()) & 0xFFFFFFFF:08x}"
        self._request_count = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
            (("reset",), {"POST": self._reset}),
            (("version",), {"GET": self._version}),
            (("populate",), {"POST": self._populate}),
            (("proxies",), {"GET": self._proxy_index, "POST": self._proxy_create}),
            (
                ("proxies", "*"),
                {
                    "GET": self._proxy_show,
                    "POST": self._proxy_update,
                    "PATCH": self._proxy_update,
                    "DELETE": self._proxy_delete,
                },
            ),
            (("proxies", "*", "toxics"), {"GET": self._toxic_index, "POST": self._toxic_create}),
            (
                ("proxies", "*", "toxics", "*"),
                {
                    "GET": self._toxic_show,
                    "POST": self._toxic_update,
                    "PATCH": self._toxic_update,
                    "DELETE": self._toxic_delete,
                },
            ),
        ]

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Listen for API requests; ``port`` 0 picks a free port (see :attr:`port`)."""
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self.port, limit=MAX_HEAD_BYTES
        )
        sockname = self._server.sockets[0].getsockname()
        self.port = sockname[1]

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://{format_address(self.host, self.port)}"

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop the API and every proxy, dropping their connections."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        for proxy in self.proxies.values():
            proxy.stop()
        self.proxies.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let connection_lost callbacks run

    # --- HTTP ----------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except HttpError as exc:
                    # Go's net/http answers this itself: no handler, no request id.
                    response = Response(400, f"400 Bad Request: {exc}\n".encode(), _PLAIN_TEXT)
                    writer.write(response.encode(keep_alive=False))
                    await writer.drain()
                    return
                if request is None:
                    return
                response = await self.handle(request)
                keep_alive = request.keep_alive
                writer.write(response.encode(keep_alive=keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._clients.discard(writer)
            writer.close()

    def _request_id(self) -> str:
        self._request_count += 1
        return f"{self._request_prefix}{self._request_count:012x}"

    async def handle(self, request: Request) -> Response:
        """Answer one request (also usable without a socket, for tests)."""
        response, handled = await self._route(request)
        if handled:
            response.headers["X-Toxiproxy-Request-Id"] = self._request_id()
        return response

    async def _route(self, request: Request) -> tuple[Response, bool]:
        """The response, and whether it passed Toxiproxy's middleware (not the router's 404/405)."""
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", _PLAIN_TEXT), True
        path = request.path
        segments = [unquote(part) for part in path[1:].split("/")] if path.startswith("/") else []
        for pattern, methods in self._routes:
            if len(pattern) != len(segments):
                continue
            if not all((p == "*" and s) or p == s for p, s in zip(pattern, segments, strict=True)):
                continue
            handler = methods.get(request.method)
            if handler is None:
                return Response(405), False
            args = [s for p, s in zip(pattern, segments, strict=True) if p == "*"]
            async with self._lock:
                try:
                    return await handler(request, args), True
                except ApiError as exc:
                    return _error(exc), True
                except Exception as exc:  # a bug must not kill the API: answer 500
                    log.exception("API handler failed")
                    return _error(ApiError(500, str(exc) or type(exc).__name__)), True
        not_found = Response(
            404, b"404 page not found\n", _PLAIN_TEXT, {"X-Content-Type-Options": "nosniff"}
        )
        return not_found, False

    # --- helpers -------------------------------------------------------------

    def _proxy(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise api_errors.proxy_not_found()
        return proxy

    @staticmethod
    def _body_object(request: Request, go_type: str) -> dict[str, Any]:
        try:
            return expect_object(parse_body(request.body), go_type)
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None

    def _new_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy(
            name=name, listen=listen, upstream=upstream, default_host=self.host, rng=self.rng
        )

    # --- endpoints -------------------------------------------------------------

    async def _version(self, request: Request, args: list[str]) -> Response:
        body = json.dumps({"version": VERSION}) + "\n"
        return Response(200, body.encode(), "application/json;charset=utf-8")

    async def _reset(self, request: Request, args: list[str]) -> Response:
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.toxics.reset()
        return Response(204)

    async def _proxy_index(self, request: Request, args: list[str]) -> Response:
        return _json(200, {name: proxy.to_json() for name, proxy in self.proxies.items()})

    async def _proxy_create(self, request: Request, args: list[str]) -> Response:
        obj = self._body_object(request, "proxy.Proxy")
        try:
            name = get_str(obj, "name", "", where="Proxy")
            listen = get_str(obj, "listen", "", where="Proxy")
            upstream = get_str(obj, "upstream", "", where="Proxy")
            enabled = get_bool(obj, "enabled", True, where="Proxy")
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        if not name:
            raise api_errors.missing_field("name")
        if not upstream:
            raise api_errors.missing_field("upstream")
        if name in self.proxies:
            raise api_errors.proxy_exists()
        proxy = self._new_proxy(name, listen, upstream)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return _json(201, proxy.to_json())

    async def _populate(self, request: Request, args: list[str]) -> Response:
        created: list[Proxy] = []
        try:
            entries = self._populate_entries(request)
            for name, listen, upstream, enabled in entries:
                existing = self.proxies.get(name)
                if existing is not None:
                    if existing.listen == listen and existing.upstream == upstream:
                        created.append(existing)
                        continue
                    existing.stop()
                proxy = self._new_proxy(name, listen, upstream)
                if enabled:
                    await proxy.start()
                self.proxies[name] = proxy
                created.append(proxy)
        except ApiError as exc:
            # Not all-or-nothing: what was created stays, and is reported.
            exc.extra["proxies"] = _populated(created)
            return _json(exc.status, exc.body())
        return _json(201, {"proxies": _populated(created)})

    def _populate_entries(self, request: Request) -> list[tuple[str, str, str, bool]]:
        """Decode and validate the whole request before changing anything."""
        try:
            value = parse_body(request.body)
            if value is None:
                value = []
            if not isinstance(value, list):
                raise DecodeError(
                    f"json: cannot unmarshal {json_kind(value)} into Go value of type []struct"
                )
            entries = []
            for raw in value:
                obj = expect_object(raw, "struct")
                entries.append(
                    (
                        get_str(obj, "name", "", where="Proxy"),
                        get_str(obj, "listen", "", where="Proxy"),
                        get_str(obj, "upstream", "", where="Proxy"),
                        get_bool(obj, "enabled", True, where="Proxy"),
                    )
                )
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        for index, (name, _listen, upstream, _enabled) in enumerate(entries, start=1):
            if not name:
                raise api_errors.missing_field(f"name at proxy {index}")
            if not upstream:
                raise api_errors.missing_field(f"upstream at proxy {index}")
        return entries

    async def _proxy_show(self, request: Request, args: list[str]) -> Response:
        return _json(200, self._proxy(args[0]).to_json())

    async def _proxy_update(self, request: Request, args: list[str]) -> Response:
        proxy = self._proxy(args[0])
        obj = self._body_object(request, "proxy.Proxy")
        try:
            listen = get_str(obj, "listen", proxy.listen, where="Proxy")
            upstream = get_str(obj, "upstream", proxy.upstream, where="Proxy")
            enabled = get_bool(obj, "enabled", proxy.enabled, where="Proxy")
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        if listen != proxy.listen or upstream != proxy.upstream:
            proxy.stop()  # a new address or upstream restarts the proxy
            proxy.listen, proxy.upstream = listen, upstream
        if enabled != proxy.enabled:
            if enabled:
                await proxy.start()
            else:
                proxy.stop()
        return _json(200, proxy.to_json())

    async def _proxy_delete(self, request: Request, args: list[str]) -> Response:
        proxy = self._proxy(args[0])
        proxy.stop()
        del self.proxies[args[0]]
        return Response(204)

    async def _toxic_index(self, request: Request, args: list[str]) -> Response:
        proxy = self._proxy(args[0])
        return _json(200, [toxic.to_json() for toxic in proxy.toxics.all()])

    async def _toxic_create(self, request: Request, args: list[str]) -> Response:
        proxy = self._proxy(args[0])
        obj = self._body_object(request, "toxics.ToxicWrapper")
        try:
            name = get_str(obj, "name", "", where="ToxicWrapper")
            type_name = get_str(obj, "type", "", where="ToxicWrapper")
            stream = get_str(obj, "stream", "downstream", where="ToxicWrapper")
            toxicity = get_float(obj, "toxicity", 1.0, where="ToxicWrapper")
            _found, raw_attributes = field(obj, "attributes")
            if raw_attributes is not None and not isinstance(raw_attributes, dict):
                raise DecodeError(
                    f"json: cannot unmarshal {json_kind(raw_attributes)} into Go struct field "
                    "ToxicWrapper.attributes of type toxics.NoopToxic"
                )
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        try:
            direction = Direction(stream.lower())
        except ValueError:
            raise api_errors.invalid_stream() from None
        if not name:
            name = f"{type_name}_{stream}"
        kind_class = TOXIC_KINDS.get(type_name)
        if kind_class is None:
            raise api_errors.invalid_toxic_type()
        if proxy.toxics.find(name) is not None:
            raise api_errors.toxic_exists()
        kind = kind_class()
        try:
            kind.merge(raw_attributes)
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        toxic = Toxic(
            name=name,
            type=type_name,
            stream=stream,
            direction=direction,
            toxicity=toxicity,
            kind=kind,
        )
        await proxy.toxics.add(toxic)
        return _json(200, toxic.to_json())

    def _toxic(self, proxy: Proxy, name: str) -> Toxic:
        toxic = proxy.toxics.find(name)
        if toxic is None:
            raise api_errors.toxic_not_found()
        return toxic

    async def _toxic_show(self, request: Request, args: list[str]) -> Response:
        return _json(200, self._toxic(self._proxy(args[0]), args[1]).to_json())

    async def _toxic_update(self, request: Request, args: list[str]) -> Response:
        toxic = self._toxic(self._proxy(args[0]), args[1])
        proxy = self._proxy(args[0])
        obj = self._body_object(request, "struct")
        try:
            toxicity = get_float(obj, "toxicity", toxic.toxicity, where="struct")
            _found, raw_attributes = field(obj, "attributes")
            toxic.kind.merge(raw_attributes)
        except DecodeError as exc:
            raise api_errors.bad_request_body(str(exc)) from None
        toxic.toxicity = toxicity
        await proxy.toxics.update(toxic)
        return _json(200, toxic.to_json())

    async def _toxic_delete(self, request: Request, args: list[str]) -> Response:
        proxy = self._proxy(args[0])
        toxic = self._toxic(proxy, args[1])
        await proxy.toxics.remove(toxic)
        return Response(204)
