"""Each toxic's effect on the data, with timing tolerances for a noisy 2-core machine.

Lower bounds are tight (a toxic must never be weaker than asked); upper
bounds are loose (the machine may be slow, the proxy must not be slower by
an order of magnitude).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from toxiproxy_helpers import EchoServer, recv_exactly, recv_until_closed

from harness.toxiproxy import ToxiproxyClient

Connect = Callable[..., socket.socket]


@pytest.fixture
def port(client: ToxiproxyClient, echo: EchoServer) -> int:
    """An echo proxy called ``p``; its port."""
    return client.create_proxy("p", upstream=echo.address).port


def round_trip_s(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.perf_counter() - started


def add(client: ToxiproxyClient, type_: str, **kwargs: Any) -> None:
    client.add_toxic("p", type=type_, **kwargs)


def test_no_toxic_passes_large_data_intact(port: int, connect: Connect) -> None:
    sock = connect(port)
    payload = os.urandom(4 * 1024 * 1024)
    sock.sendall(payload[: 1024 * 1024])
    received = bytearray()
    # Interleave sends and reads: the echo server would block on a full buffer.
    for offset in range(1024 * 1024, len(payload) + 1, 1024 * 1024):
        received += recv_exactly(sock, 1024 * 1024)
        sock.sendall(payload[offset : offset + 1024 * 1024])
    assert bytes(received) == payload


def test_latency_downstream(port: int, connect: Connect, client: ToxiproxyClient) -> None:
    add(client, "latency", attributes={"latency": 100})
    sock = connect(port)
    elapsed = round_trip_s(sock)
    assert 0.095 <= elapsed < 0.4


def test_latency_on_both_streams_adds_up(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "latency", stream="upstream", attributes={"latency": 60})
    add(client, "latency", stream="downstream", attributes={"latency": 60})
    add(client, "latency", stream="downstream", name="more", attributes={"latency": 30})
    elapsed = round_trip_s(connect(port))
    assert 0.145 <= elapsed < 0.5


def test_latency_jitter_varies_within_bounds(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "latency", attributes={"latency": 40, "jitter": 30})
    sock = connect(port)
    samples = [round_trip_s(sock) for _ in range(12)]
    assert min(samples) >= 0.009
    assert max(samples) < 0.3
    assert max(samples) - min(samples) > 0.01  # not a constant delay


def test_bandwidth_limits_rate(port: int, connect: Connect, client: ToxiproxyClient) -> None:
    add(client, "bandwidth", attributes={"rate": 200})  # 200 KB/s downstream
    sock = connect(port)
    payload = os.urandom(100_000)
    started = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    elapsed = time.perf_counter() - started
    assert 0.4 <= elapsed < 1.5  # 0.5 s at 200 KB/s


def test_bandwidth_zero_holds_data_until_removed(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "bandwidth", attributes={"rate": 0})
    sock = connect(port, timeout_s=0.3)
    payload = os.urandom(50_000)
    sock.sendall(payload)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    client.remove_toxic("p", "bandwidth_downstream")
    sock.settimeout(5)
    assert recv_exactly(sock, len(payload)) == payload


def test_slow_close_delays_the_close(port: int, connect: Connect, client: ToxiproxyClient) -> None:
    add(client, "slow_close", attributes={"delay": 300})
    sock = connect(port)
    assert round_trip_s(sock) < 0.2  # data is not delayed
    started = time.perf_counter()
    sock.shutdown(socket.SHUT_WR)  # the proxy closes the upstream; its close comes back slowly
    assert recv_until_closed(sock) == b""
    assert 0.29 <= time.perf_counter() - started < 1.5


def test_close_without_slow_close_is_prompt(port: int, connect: Connect) -> None:
    sock = connect(port)
    started = time.perf_counter()
    sock.shutdown(socket.SHUT_WR)
    assert recv_until_closed(sock) == b""
    assert time.perf_counter() - started < 0.25


def test_timeout_drops_data_then_closes(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "timeout", attributes={"timeout": 200})
    sock = connect(port)
    started = time.perf_counter()
    sock.sendall(b"lost")
    assert recv_until_closed(sock) == b""
    assert 0.19 <= time.perf_counter() - started < 1.0


def test_timeout_zero_holds_the_connection_open(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "timeout", stream="upstream", attributes={"timeout": 0})
    sock = connect(port, timeout_s=0.4)
    sock.sendall(b"lost")
    with pytest.raises(TimeoutError):
        sock.recv(1)  # neither data nor a close


def test_reset_peer_resets_new_connections(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "reset_peer", attributes={"timeout": 100})
    sock = connect(port)
    started = time.perf_counter()
    sock.sendall(b"hello")
    with pytest.raises(ConnectionResetError):
        while sock.recv(1024):
            pass
    assert 0.09 <= time.perf_counter() - started < 1.0


def test_reset_peer_closes_older_connections_plainly(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    sock = connect(port)
    assert round_trip_s(sock) < 0.2
    add(client, "reset_peer", attributes={"timeout": 0})
    sock.sendall(b"hello")
    assert sock.recv(1024) == b""  # FIN, not RST


def test_removing_reset_peer_while_it_waits_still_resets(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    """Once reset_peer has dropped data its reset is committed: removing the toxic during
    the wait must not let the connection go on with that data missing from the middle
    of its stream (a framed peer protocol would read garbage or wait forever)."""
    add(client, "reset_peer", attributes={"timeout": 300})
    sock = connect(port)
    sock.sendall(b"hello")  # echoed downstream into the toxic: dropped, reset pending
    time.sleep(0.1)
    client.remove_toxic("p", "reset_peer_downstream")
    with contextlib.suppress(OSError):
        sock.sendall(b"world")
    assert recv_until_closed(sock) == b""  # neither "world" nor anything else


def test_removing_reset_peer_while_it_waits_still_passes_the_close(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    """An end of stream that reached reset_peer is not lost when the toxic is removed
    during its wait: the connection still ends."""
    add(client, "reset_peer", stream="upstream", attributes={"timeout": 300})
    sock = connect(port, timeout_s=3.0)
    sock.shutdown(socket.SHUT_WR)  # the client's end of stream goes into the toxic
    time.sleep(0.1)
    client.remove_toxic("p", "reset_peer_upstream")
    assert recv_until_closed(sock) == b""  # closed, not hung until the socket timeout


def test_slicer_delivers_everything_in_small_delayed_pieces(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "slicer", attributes={"average_size": 10, "size_variation": 5, "delay": 2000})
    sock = connect(port)
    payload = os.urandom(500)
    started = time.perf_counter()
    sock.sendall(payload)
    first = sock.recv(1000)
    assert 0 < len(first) < len(payload)  # the first piece arrives alone
    rest = recv_exactly(sock, len(payload) - len(first))
    assert first + rest == payload
    assert time.perf_counter() - started >= 0.03  # dozens of pieces, 2 ms apart


def test_limit_data_passes_that_many_bytes_then_closes(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "limit_data", attributes={"bytes": 100})
    sock = connect(port)
    payload = os.urandom(60)
    sock.sendall(payload)
    assert recv_exactly(sock, 60) == payload
    sock.sendall(payload)
    assert recv_until_closed(sock) == payload[:40]


def test_limit_data_upstream(
    port: int, connect: Connect, client: ToxiproxyClient, echo: EchoServer
) -> None:
    add(client, "limit_data", stream="upstream", attributes={"bytes": 10})
    before = len(echo.received)  # the echo server is shared: judge only our connection
    sock = connect(port)
    sock.sendall(b"0123456789abcdef")
    # The upstream socket is closed right after the 10 bytes (no half-close, as in
    # Toxiproxy), so the echo may not make it back; the client is closed either way.
    echoed = recv_until_closed(sock)
    assert echoed in (b"", b"0123456789"), echoed
    deadline = time.monotonic() + 5
    while (len(echo.received) <= before or len(echo.received[before]) < 10) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(echo.received) == before + 1, echo.received[before:]
    assert bytes(echo.received[before]) == b"0123456789", echo.received[before:]


def test_toxicity_zero_never_applies(port: int, connect: Connect, client: ToxiproxyClient) -> None:
    add(client, "latency", toxicity=0.0, attributes={"latency": 300})
    assert round_trip_s(connect(port)) < 0.2


def test_toxicity_is_rolled_per_connection(
    port: int, connect: Connect, client: ToxiproxyClient
) -> None:
    add(client, "latency", toxicity=0.5, attributes={"latency": 150})
    delayed = [round_trip_s(connect(port)) >= 0.15 for _ in range(16)]
    assert any(delayed) and not all(delayed)  # 2 * 0.5**16 chance of a false failure
