"""Fixtures: one server per session, echo servers, and cleanup after every test.

Every test starts from an empty server (all proxies deleted afterwards) and
every socket a test opens through :func:`connect` is closed even when the
test fails.

Which server: by default our own (``harness.toxiproxy``), started as a
subprocess for the session. Set ``HARNESS_TOXIPROXY_URL`` (e.g.
``http://127.0.0.1:8474``) to run the same tests against a server that is
already running, normally a real ``toxiproxy-server`` 2.12::

    toxiproxy-server -host 127.0.0.1 -port 8474 &
    HARNESS_TOXIPROXY_URL=http://127.0.0.1:8474 pytest tests/toxiproxy

That server must be dedicated to the tests and on this host: every proxy on
it is deleted after each test, the echo upstreams listen on 127.0.0.1, and
proxies are reached on 127.0.0.1. Tests of what only our implementation has
(its module's imports, its log, its deliberate differences, such as binding
127.0.0.1 when ``listen`` is missing where the real server binds every
interface) carry the ``ours_only`` marker and are skipped in that mode. The
expectations elsewhere are the real server's (request ids, content types,
``"proxies": null``), so a difference is a failure in either mode. This
mode could not be run where these tests were written (no real server is
installable there); it is the switch, kept to the fixture below.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import toxiproxy

# pytest imports test modules by path (no packages under tests/), so make the
# helpers beside this file importable by name.
sys.path.insert(0, str(Path(__file__).parent))
from toxiproxy_helpers import EchoServer, HttpResult

from harness.toxiproxy import ServerProcess, ToxiproxyClient, toxiproxy_server

EXTERNAL_URL_VARIABLE = "HARNESS_TOXIPROXY_URL"


def external_url() -> str | None:
    """The running server the tests should use instead of starting ours, or ``None``."""
    return os.environ.get(EXTERNAL_URL_VARIABLE) or None


@dataclass(frozen=True)
class ExternalServer:
    """A server the tests did not start: the part of :class:`ServerProcess` the tests use."""

    url: str
    host: str
    port: int
    implementation: str = "external"

    @classmethod
    def from_url(cls, url: str) -> ExternalServer:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise pytest.UsageError(f"{EXTERNAL_URL_VARIABLE} is not http://HOST:PORT: {url!r}")
        return cls(url.rstrip("/"), parts.hostname, parts.port or 8474)

    def client(self, *, timeout_s: float = 5.0) -> ToxiproxyClient:
        return ToxiproxyClient(self.url, timeout_s=timeout_s)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ours_only: tests our implementation only; skipped with HARNESS_TOXIPROXY_URL"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    url = external_url()
    if url is None:
        return
    skip = pytest.mark.skip(reason=f"{EXTERNAL_URL_VARIABLE}={url}: tests our server only")
    for item in items:
        if item.get_closest_marker("ours_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess | ExternalServer]:
    url = external_url()
    if url is not None:
        external = ExternalServer.from_url(url)
        with external.client() as api:
            api.version()  # fails the session clearly when nothing answers there
            leftover = sorted(api.proxies())
        if leftover:
            pytest.exit(f"{url} already has proxies {leftover}: the tests need a dedicated server")
        yield external
        return
    with toxiproxy_server(implementation="python", seed=1234) as process:
        yield process
        log = process.log_text()
    # Anything the server logged (an exception in a callback, a task that
    # failed) is a bug even if every test passed.
    assert "Traceback" not in log and "exception" not in log.lower(), log


@pytest.fixture(scope="session")
def echo() -> Iterator[EchoServer]:
    echo_server = EchoServer()
    try:
        yield echo_server
    finally:
        echo_server.close()


@pytest.fixture
def client(server: ServerProcess | ExternalServer) -> Iterator[ToxiproxyClient]:
    """Our client; every proxy is deleted after the test."""
    with server.client(timeout_s=5.0) as api:
        try:
            yield api
        finally:
            for name in api.proxies():
                api.delete_proxy(name)


@pytest.fixture
def tp(server: ServerProcess | ExternalServer, client: ToxiproxyClient) -> toxiproxy.Toxiproxy:
    """The unchanged toxiproxy-python client, pointed at the server under test."""
    api = toxiproxy.Toxiproxy()
    api.update_api_consumer(server.host, server.port)
    return api


@pytest.fixture
def http(
    server: ServerProcess | ExternalServer, client: ToxiproxyClient
) -> Callable[..., HttpResult]:
    """Raw HTTP to the API: ``http(method, path, body=None, headers=None)``."""

    def request(
        method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> HttpResult:
        conn = HTTPConnection(server.host, server.port, timeout=5)
        try:
            payload: bytes | None
            if body is None:
                payload = None
            elif isinstance(body, bytes | str):
                payload = body.encode() if isinstance(body, str) else body
            else:
                payload = json.dumps(body).encode()
            conn.request(method, path, body=payload, headers=headers or {})
            response = conn.getresponse()
            return HttpResult(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()

    return request


@pytest.fixture
def connect() -> Iterator[Callable[[int], socket.socket]]:
    """Open client sockets to 127.0.0.1 that are closed after the test."""
    opened: list[socket.socket] = []

    def open_socket(port: int, timeout_s: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        with contextlib.suppress(OSError):
            sock.close()
