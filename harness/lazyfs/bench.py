"""What the lose-unsynced layer costs the reference system's writes::

    python -m harness.lazyfs.bench [--clients 32] [--duration-s 3] [--rounds 3]

Two 3-node reference-system clusters as local processes
(:class:`reference_system.local.LocalCluster`, no load balancer: clients
write to the leader), one with every node's data directory on the layer and
one on the plain file system beside it. N keep-alive clients write keys for
a few seconds; rounds alternate between the two clusters so a noisy spell
on this small machine hits both, and the medians are printed with the
overhead (throughput lost and p50 latency added).

The layer fsyncs its backing file when a node fsyncs, so both clusters pay
the disk's fsync; what the figure shows is the cost of every write and fsync
crossing FUSE into a Python process. A benchmark command, not a test: the
figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass

__all__ = ["Figures", "main", "measure"]


@dataclass(frozen=True)
class Figures:
    """One round on one cluster."""

    ops_per_s: float
    p50_ms: float
    errors: int


async def _drive(port: int, clients: int, duration_s: float, value: str) -> Figures:
    from reference_system.bench import Conn

    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + duration_s

    async def client(k: int) -> None:
        nonlocal errors
        conn = Conn(port)
        try:
            while time.monotonic() < stop:
                t0 = time.monotonic()
                try:
                    code, _ = await asyncio.wait_for(
                        conn.request("POST", f"/kv/bench{k}", {"value": value}), 10)
                except (OSError, TimeoutError, ValueError):
                    errors += 1
                    conn.close()
                    continue
                if code == 200:
                    lat.append(time.monotonic() - t0)
                else:
                    errors += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(clients)))
    seconds = time.monotonic() - t0
    lat.sort()
    return Figures(len(lat) / seconds, 1000 * lat[len(lat) // 2] if lat else float("nan"),
                   errors)


def measure(*, clients: int, duration_s: float, rounds: int, value_bytes: int = 64
            ) -> dict[str, list[Figures]]:
    """Rounds of writes on a plain cluster and a layered one, alternating."""
    from reference_system.local import LocalCluster, free_base_port

    value = "x" * value_bytes
    out: dict[str, list[Figures]] = {"plain": [], "layer": []}
    with contextlib.ExitStack() as stack:
        clusters = {
            name: stack.enter_context(LocalCluster(
                3, base_port=free_base_port(), node_args=("--log-level", "WARNING"),
                haproxy=False, lose_unsynced=(name == "layer")))
            for name in out
        }
        for r in range(rounds):
            for name in (["plain", "layer"] if r % 2 == 0 else ["layer", "plain"]):
                c = clusters[name]
                port = c.http_port(c.wait_for_leader())
                out[name].append(asyncio.run(_drive(port, clients, duration_s, value)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.lazyfs.bench",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration-s", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    if a.clients < 1 or a.duration_s <= 0 or a.rounds < 1:
        p.error("--clients, --duration-s and --rounds must be positive")
    from harness.lazyfs import available

    why = available()
    if why is not None:
        print(f"{p.prog}: cannot mount the layer: {why}", file=sys.stderr)
        return 2
    res = measure(clients=a.clients, duration_s=a.duration_s, rounds=a.rounds)
    med = {name: (statistics.median(f.ops_per_s for f in fs),
                  statistics.median(f.p50_ms for f in fs), sum(f.errors for f in fs))
           for name, fs in res.items()}
    print(f"refsys kv writes, 3 local nodes, {a.clients} clients, {a.rounds} rounds of "
          f"{a.duration_s:g} s (medians)")
    for name, (ops, p50, errs) in med.items():
        per = " ".join(f"{f.ops_per_s:.0f}" for f in res[name])
        print(f"  {name:<6} {ops:8.0f} writes/s  p50 {p50:6.1f} ms  errors {errs}  "
              f"(rounds: {per})")
    plain, layer = med["plain"], med["layer"]
    print(f"overhead of the lose-unsynced layer: {100 * (1 - layer[0] / plain[0]):.1f} % "
          f"of write throughput, p50 latency x{layer[1] / plain[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
