"""What happens to connections that are open when the configuration changes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest
from toxiproxy_helpers import EchoServer, recv_exactly, recv_until_closed

from harness.toxiproxy import ToxiproxyClient

Connect = Callable[..., socket.socket]


@pytest.fixture
def port(client: ToxiproxyClient, echo: EchoServer) -> int:
    return client.create_proxy("p", upstream=echo.address).port


def round_trip_s(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.perf_counter() - started


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return recv_until_closed(sock) == b""
    except TimeoutError:
        return False


def test_latency_applies_to_open_connections_and_goes_away(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.1
    client.add_toxic("p", type="latency", attributes={"latency": 120})
    assert round_trip_s(sock) >= 0.115
    client.update_toxic("p", "latency_downstream", attributes={"latency": 250})
    assert round_trip_s(sock) >= 0.245
    client.remove_toxic("p", "latency_downstream")
    assert round_trip_s(sock) < 0.1


def test_removing_latency_keeps_data_in_flight(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    client.add_toxic("p", type="latency", attributes={"latency": 500})
    sock = connect(port)
    payload = os.urandom(2000)
    started = time.perf_counter()
    sock.sendall(payload)
    time.sleep(0.1)
    client.remove_toxic("p", "latency_downstream")
    assert recv_exactly(sock, len(payload)) == payload
    assert time.perf_counter() - started < 0.45  # delivered on removal, not after 500 ms
    assert round_trip_s(sock) < 0.1


def test_toxics_added_and_removed_under_traffic_lose_nothing(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    expected = bytearray()
    received = bytearray()
    for i in range(12):
        if i % 3 == 0:
            client.add_toxic(
                "p", type="slicer", name=f"s{i}", attributes={"average_size": 100, "delay": 10}
            )
            client.add_toxic(
                "p", type="latency", stream="upstream", name=f"l{i}", attributes={"latency": 5}
            )
        if i % 3 == 2:
            client.remove_toxic("p", f"s{i - 2}")
            client.remove_toxic("p", f"l{i - 2}")
        block = os.urandom(5000)
        sock.sendall(block)
        expected += block
        received += recv_exactly(sock, len(block))
    assert received == expected


def test_timeout_removal_closes_held_connections(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.1
    client.add_toxic("p", type="timeout", attributes={"timeout": 0})
    sock.sendall(b"held")
    assert not closed_within(sock, 0.3)
    client.remove_toxic("p", "timeout_downstream")
    assert closed_within(sock, 2.0)
    # New connections are fine again.
    assert round_trip_s(connect(port)) < 0.1


def test_disable_closes_connections_and_listener(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.1
    client.disable_proxy("p")
    assert closed_within(sock, 2.0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    client.enable_proxy("p")
    assert round_trip_s(connect(port)) < 0.1


def test_delete_closes_connections(port: int, connect: Connect, client: ToxiproxyClient) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.1
    client.delete_proxy("p")
    assert closed_within(sock, 2.0)


def test_changing_upstream_drops_connections(
    port: int, connect: Connect, client: ToxiproxyClient, echo: EchoServer
) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.1
    client.update_proxy("p", upstream=f"127.0.0.1:{echo.port}")  # same value: no restart
    assert round_trip_s(sock) < 0.1
    client.update_proxy("p", upstream=f"localhost:{echo.port}")
    assert closed_within(sock, 2.0)
    assert round_trip_s(connect(port)) < 0.1


def test_reset_removes_toxics_from_open_connections(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    client.add_toxic("p", type="latency", attributes={"latency": 200})
    assert round_trip_s(sock) >= 0.195
    client.reset()
    assert round_trip_s(sock) < 0.1


def test_unreachable_upstream_closes_the_client(client: ToxiproxyClient, connect: Connect) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = unused.getsockname()[1]
    port = client.create_proxy("dead", upstream=f"127.0.0.1:{dead}").port
    sock = connect(port)
    assert closed_within(sock, 2.0)
