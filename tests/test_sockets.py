"""Self-connects: a client polling a dead local port can be joined to itself.

The kernel is made to do it on purpose here (a client bound to the very port it
dials, with nothing listening), which is what happens by chance when the
ephemeral port it is given equals the port it dials.
"""

from __future__ import annotations

import http.client
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import sockets
from harness.cluster.local import _PortPool
from reference_system.local import free_base_port, http_json

HOST = "127.0.0.1"


def _dead_port() -> int:
    return sockets.free_port(HOST)


def _self_connected(address: tuple[str, int], timeout: float | None = None,
                    source_address: object = None) -> socket.socket:
    """``socket.create_connection`` as the unlucky case makes it: the source port is
    the destination port, and nothing listens there."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(timeout)
    s.bind(address)
    s.connect(address)
    return s


def test_the_kernel_joins_a_socket_to_itself() -> None:
    """The hazard is real on this kernel: the unguarded client reads its own request."""
    port = _dead_port()
    with _self_connected((HOST, port), 2) as raw:
        assert sockets.is_self_connected(raw)
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    conn._create_connection = _self_connected  # type: ignore[attr-defined]
    try:
        conn.request("GET", "/status")
        with pytest.raises(http.client.BadStatusLine, match="GET /status"):
            conn.getresponse()
    finally:
        conn.close()


def test_guarded_connections_refuse_a_self_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _dead_port()
    monkeypatch.setattr(sockets.socket, "create_connection", _self_connected)
    with pytest.raises(sockets.SelfConnectError):
        sockets.connect(HOST, port, timeout=2)
    conn = sockets.HTTPConnection(HOST, port, timeout=2)
    conn._create_connection = _self_connected  # type: ignore[attr-defined]
    with pytest.raises(ConnectionRefusedError):  # what a client handles as "not delivered"
        conn.request("GET", "/status")
    conn.close()
    # and a server (which sets SO_REUSEADDR, as asyncio's do) can bind the port again
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        s.listen()


def test_a_guarded_connection_to_a_live_port_works() -> None:
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        with sockets.connect(HOST, server.getsockname()[1], timeout=2) as c:
            assert not sockets.is_self_connected(c)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=3))
def test_ports_handed_out_lie_outside_the_ephemeral_range(_: int) -> None:
    lo, hi = sockets.ephemeral_range()
    assert not lo <= sockets.free_port(HOST) <= hi
    pool = _PortPool()
    try:
        assert not lo <= pool.take() <= hi
    finally:
        pool.release()
    base = free_base_port(3)
    assert all(not lo <= p <= hi for p in (base, base + 3, base + 103))


def test_the_reference_systems_client_refuses_a_self_connect(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """reference_system.local.http_json, as the local cluster's pollers use it."""
    port = _dead_port()
    monkeypatch.setattr(socket, "create_connection", _self_connected)
    with pytest.raises(ConnectionRefusedError):
        http_json(port, "GET", "/status", timeout_s=2)
