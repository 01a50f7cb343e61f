"""Fixtures: one server subprocess per session, echo servers, and cleanup after every test.

Every test starts from an empty server (all proxies deleted afterwards) and
every socket a test opens through :func:`connect` is closed even when the
test fails.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import toxiproxy

# pytest imports test modules by path (no packages under tests/), so make the
# helpers beside this file importable by name.
sys.path.insert(0, str(Path(__file__).parent))
from toxiproxy_helpers import EchoServer, HttpResult

from harness.toxiproxy import ServerProcess, ToxiproxyClient, toxiproxy_server


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
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
def client(server: ServerProcess) -> Iterator[ToxiproxyClient]:
    """Our client; every proxy is deleted after the test."""
    with server.client(timeout_s=5.0) as api:
        try:
            yield api
        finally:
            for name in api.proxies():
                api.delete_proxy(name)


@pytest.fixture
def tp(server: ServerProcess, client: ToxiproxyClient) -> toxiproxy.Toxiproxy:
    """The unchanged toxiproxy-python client, pointed at our server."""
    api = toxiproxy.Toxiproxy()
    api.update_api_consumer(server.host, server.port)
    return api


@pytest.fixture
def http(server: ServerProcess, client: ToxiproxyClient) -> Callable[..., HttpResult]:
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
