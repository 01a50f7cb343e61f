"""How much a proxy with no toxic costs: throughput and round-trip latency, direct vs proxied.

The proxy sits on every link of a test cluster, so it must not be what the
test measures: the targets are at least half of a direct loopback
connection's throughput and under 0.3 ms added to the median request-response
round trip. The machine is noisy, so each figure is the median of several
rounds, direct and proxied measured alternately within one run.

``python -m harness.toxiproxy.bench`` (the CLI will call :func:`main`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from harness.toxiproxy.process import toxiproxy_server

__all__ = ["main", "run_benchmark"]

TARGET_RATIO = 0.5
TARGET_ADDED_P50_MS = 0.3
_CHUNK = 1024 * 1024


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        data = sock.recv(n)
        if not data:
            raise ConnectionError("connection closed early")
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


@contextlib.contextmanager
def _tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A thread-per-connection server on 127.0.0.1; yields its port; stops on exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(30)
            with contextlib.suppress(OSError):
                handle(conn)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=serve, args=(conn,), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        acceptor.join(timeout=2)
        listener.close()
        for thread in threads:
            thread.join(timeout=2)


def _sink(conn: socket.socket) -> None:
    """Reads a length-prefixed stream, then acknowledges with one byte."""
    total = struct.unpack("!Q", _recv_exactly(conn, 8))[0]
    buffer = bytearray(_CHUNK)
    while total > 0:
        n = conn.recv_into(buffer, min(len(buffer), total))
        if n == 0:
            raise ConnectionError("sender went away")
        total -= n
    conn.sendall(b"k")


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def _throughput_mb_s(port: int, total_bytes: int) -> float:
    payload = b"\x00" * _CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        started = time.perf_counter()
        sock.sendall(struct.pack("!Q", total_bytes))
        sent = 0
        while sent < total_bytes:
            piece = payload[: min(_CHUNK, total_bytes - sent)]
            sock.sendall(piece)
            sent += len(piece)
        _recv_exactly(sock, 1)
        elapsed = time.perf_counter() - started
    return total_bytes / elapsed / 1e6


def _round_trips_ms(port: int, requests: int, payload_bytes: int) -> list[float]:
    message = b"r" * payload_bytes
    samples = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(requests + 50):
            started = time.perf_counter()
            sock.sendall(message)
            _recv_exactly(sock, payload_bytes)
            if i >= 50:  # warm-up
                samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_benchmark(
    *,
    rounds: int = 5,
    throughput_bytes: int = 256 * 1024 * 1024,
    requests: int = 2000,
    payload_bytes: int = 64,
) -> dict[str, Any]:
    """Measure direct vs proxied throughput and latency; returns the figures (medians).

    Starts our server as a subprocess (the proxy must not share a GIL with the
    load) and a sink and an echo server in this process, all on 127.0.0.1.
    """
    per_round: list[dict[str, float]] = []
    with (
        _tcp_server(_sink) as sink_port,
        _tcp_server(_echo) as echo_port,
        toxiproxy_server(implementation="python") as server,
        server.client() as client,
    ):
        sink_proxy = client.create_proxy("bench_sink", upstream=f"127.0.0.1:{sink_port}").port
        echo_proxy = client.create_proxy("bench_echo", upstream=f"127.0.0.1:{echo_port}").port
        for _ in range(rounds):
            direct_mb_s = _throughput_mb_s(sink_port, throughput_bytes)
            proxied_mb_s = _throughput_mb_s(sink_proxy, throughput_bytes)
            direct = _round_trips_ms(echo_port, requests, payload_bytes)
            proxied = _round_trips_ms(echo_proxy, requests, payload_bytes)
            per_round.append(
                {
                    "direct_mb_s": direct_mb_s,
                    "proxied_mb_s": proxied_mb_s,
                    "ratio": proxied_mb_s / direct_mb_s,
                    "direct_p50_ms": _percentile(direct, 0.5),
                    "direct_p99_ms": _percentile(direct, 0.99),
                    "proxied_p50_ms": _percentile(proxied, 0.5),
                    "proxied_p99_ms": _percentile(proxied, 0.99),
                }
            )

    def median(key: str) -> float:
        return statistics.median(r[key] for r in per_round)

    added = statistics.median(r["proxied_p50_ms"] - r["direct_p50_ms"] for r in per_round)
    ratio = median("ratio")
    return {
        "rounds": rounds,
        "throughput_bytes": throughput_bytes,
        "requests": requests,
        "payload_bytes": payload_bytes,
        "direct_mb_s": median("direct_mb_s"),
        "proxied_mb_s": median("proxied_mb_s"),
        "throughput_ratio": ratio,
        "direct_p50_ms": median("direct_p50_ms"),
        "direct_p99_ms": median("direct_p99_ms"),
        "proxied_p50_ms": median("proxied_p50_ms"),
        "proxied_p99_ms": median("proxied_p99_ms"),
        "added_p50_ms": added,
        "meets_targets": ratio >= TARGET_RATIO and added < TARGET_ADDED_P50_MS,
        "per_round": per_round,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; exit code 0 if the targets are met, else 1."""
    parser = argparse.ArgumentParser(prog="harness bench proxy", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=256, help="MiB sent per throughput measurement")
    parser.add_argument("--requests", type=int, default=2000, help="round trips per latency round")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run_benchmark(
        rounds=args.rounds, throughput_bytes=args.mb * 1024 * 1024, requests=args.requests
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"proxy benchmark: median of {result['rounds']} rounds")
        print(
            f"  throughput  direct {result['direct_mb_s']:8.0f} MB/s   "
            f"proxied {result['proxied_mb_s']:8.0f} MB/s   "
            f"ratio {result['throughput_ratio']:.2f} (target >= {TARGET_RATIO})"
        )
        print(
            f"  round trip  direct p50 {result['direct_p50_ms']:.3f} ms p99 "
            f"{result['direct_p99_ms']:.3f} ms   proxied p50 {result['proxied_p50_ms']:.3f} ms "
            f"p99 {result['proxied_p99_ms']:.3f} ms"
        )
        print(
            f"  added p50   {result['added_p50_ms']:.3f} ms (target < {TARGET_ADDED_P50_MS} ms)"
        )
        print("  targets met" if result["meets_targets"] else "  TARGETS NOT MET")
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
