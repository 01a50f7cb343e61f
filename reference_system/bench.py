"""A benchmark of a local 3-node cluster (behind HAProxy when installed)::

    python -m reference_system.bench [--clients 64] [--duration-s 5] [--json]

Prints, for N concurrent keep-alive clients: the throughput and p50/p99
latency of key-value writes, of enqueues, and of claim+complete pairs; then
the time from killing the leader to the next acknowledged write (failover).
A measurement, not a test: the figures depend on the machine. The clients
are asyncio coroutines in this process (cheaper than threads, so the client
is not the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from reference_system.local import LocalCluster, free_base_port

__all__ = ["Conn", "Result", "main", "run_benchmark"]


class Conn:
    """One keep-alive HTTP/1.1 connection (just enough for our JSON API)."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; reconnects when the connection was closed."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(data)}\r\n\r\n"
        self.writer.write(head.encode() + data)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise ConnectionError("connection closed") from None
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")  # e.g. HAProxy's own 503 page

    def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass(frozen=True)
class Result:
    """One workload's figures."""

    workload: str
    clients: int
    ops: int
    errors: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float


def _result(name: str, clients: int, lat: list[float], errors: int, seconds: float) -> Result:
    lat.sort()
    pick = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000) if lat else (lambda q: 0.0)
    return Result(name, clients, len(lat), errors, len(lat) / seconds, pick(0.5), pick(0.99))


async def _drive(port: int, clients: int, duration_s: float, name: str, op: Any) -> Result:
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + duration_s

    async def one(k: int) -> None:
        nonlocal errors
        conn = Conn(port)
        n = 0
        try:
            while time.monotonic() < stop:
                t = time.monotonic()
                try:
                    ok = await op(conn, k, n)
                except (ConnectionError, OSError):
                    ok = False
                    await asyncio.sleep(0.01)
                if ok:
                    lat.append(time.monotonic() - t)
                else:
                    errors += 1
                n += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(clients)))
    return _result(name, clients, lat, errors, time.monotonic() - t0)


async def _kv_write(conn: Conn, k: int, n: int) -> bool:
    return (await conn.request("POST", f"/kv/bench{k}", {"value": n}))[0] == 200


async def _enqueue(conn: Conn, k: int, n: int) -> bool:
    return (await conn.request("POST", "/enqueue", {"payload": n}))[0] == 200


async def _claim_complete(conn: Conn, k: int, n: int) -> bool:
    code, body = await conn.request("POST", "/claim", {"worker": f"bench{k}"})
    if code != 200 or not body["item"]:
        return False
    item = body["item"]
    code, _ = await conn.request(
        "POST", "/complete", {"id": item["id"], "token": item["token"], "result": n}
    )
    return code == 200


async def _failover(c: LocalCluster, port_of: Any) -> float:
    leader = c.wait_for_leader()
    c.kill(leader)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        port = port_of(leader)
        conn = Conn(port)
        try:
            if (await conn.request("POST", "/kv/failover", {"value": 1}))[0] == 200:
                return time.monotonic() - t0
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.01)
    return float("inf")


async def run_benchmark(
    c: LocalCluster, *, clients: int, duration_s: float
) -> tuple[list[Result], float]:
    """Run the workloads and the failover measurement on a started cluster."""
    leader = c.wait_for_leader()
    port = c.lb_port or c.http_port(leader)
    results = [await _drive(port, clients, duration_s, "kv write", _kv_write)]
    results.append(await _drive(port, clients, duration_s, "enqueue", _enqueue))
    results.append(await _drive(port, clients, duration_s, "claim+complete", _claim_complete))

    def port_of(dead: int) -> int:
        return c.lb_port or c.http_port(next(i for i in c.ids if i != dead))

    return results, await _failover(c, port_of)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m reference_system.bench``."""
    p = argparse.ArgumentParser(
        prog="python -m reference_system.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration-s", type=float, default=5.0)
    p.add_argument("--no-haproxy", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    with LocalCluster(
        3,
        base_port=free_base_port(),
        node_args=("--log-level", "WARNING"),
        haproxy=False if a.no_haproxy else None,
    ) as c:
        results, failover_s = asyncio.run(
            run_benchmark(c, clients=a.clients, duration_s=a.duration_s)
        )
        via = "haproxy" if c.lb_port else "the leader directly"
    if a.json:
        print(
            json.dumps(
                {"via": via, "results": [asdict(r) for r in results], "failover_s": failover_s}
            )
        )
        return 0
    print(f"3 local nodes, {a.clients} clients, {a.duration_s:g} s each, via {via}")
    print(f"{'workload':16} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r.workload:16} {r.ops_per_s:9.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.errors:7d}")
    print(f"failover (kill the leader -> next acknowledged write): {failover_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
