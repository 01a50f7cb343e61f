"""How fast the harness itself drives and records operations.

The harness must never be the bottleneck of a run. This benchmark drives an
in-memory register (a dict behind a lock: the cheapest possible system) with
the runner's own worker loop (:func:`harness.runner.drive_worker`) and
recorder (streaming every op to a JSONL file), pinned to one core, and prints
operations per second. Target: at least 5,000 ops/s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.client import Outcome, fail, ok
from harness.formats import HistoryWriter
from harness.runner import Recorder, drive_worker, unpaced_ops
from harness.workloads.register import RegisterWorkload

__all__ = ["InMemoryRegisterClient", "main", "measure"]


class InMemoryRegisterClient:
    """A linearizable register map in process memory, for measuring the harness alone."""

    def __init__(self, store: dict[str, Any], lock: threading.Lock) -> None:
        self.store = store
        self.lock = lock

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        key, v = value
        with self.lock:
            cur = self.store.get(key)
            if f == "read":
                return ok([key, cur])
            if f == "write":
                self.store[key] = v
                return ok(value)
            if cur == v[0]:
                self.store[key] = v[1]
                return ok(value)
        return fail("mismatch")

    def close(self) -> None:
        pass


def measure(*, seconds: float, concurrency: int, path: Path) -> float:
    """Ops/s driven and recorded in ``seconds`` by ``concurrency`` worker threads."""
    phases = RegisterWorkload().phases(time_limit_s=seconds, rate_hz=0)
    store: dict[str, Any] = {}
    lock = threading.Lock()
    stop = threading.Event()
    counts = [0] * concurrency
    with HistoryWriter(path) as writer:
        recorder = Recorder(writer)
        t0 = time.monotonic()
        end = t0 + seconds

        def worker(w: int) -> None:
            ops = unpaced_ops(phases, worker=w, concurrency=concurrency,
                              rng=random.Random(w), t0=t0)
            counts[w] = drive_worker(InMemoryRegisterClient(store, lock), recorder, ops,
                                     process=w, concurrency=concurrency, t0=t0, end=end,
                                     stop=stop)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.bench.driver")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=5)
    a = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    with tempfile.TemporaryDirectory(prefix="harness-driver-") as tmp:
        rates = [measure(seconds=a.seconds, concurrency=a.concurrency,
                         path=Path(tmp) / f"h{i}.jsonl") for i in range(a.rounds)]
    med = statistics.median(rates)
    print(f"harness driving an in-memory register on one core, {a.concurrency} workers: "
          f"median {med:,.0f} ops/s over {a.rounds} rounds of {a.seconds:g} s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}); history recorded to disk; "
          f"target >= 5,000 ops/s: {'met' if med >= 5000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
