"""What recording costs: the per-op price of streaming a history to disk.

Target: under 5 µs per op for writing, so that the harness itself is never
what limits a run. Measured with a realistic op (a queue claim with a map
value) through :class:`HistoryWriter`, median of several rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from harness.formats import HistoryWriter
from harness.history import Op, OpType

__all__ = ["main"]


def _round(n: int, path: Path) -> float:
    ops = [
        Op(i, 1_000_000 + i * 997, OpType.OK if i % 2 else OpType.INVOKE, i % 16, "claim",
           {"id": f"item-{i}", "token": i} if i % 2 else None, None, "n1")
        for i in range(n)
    ]
    t0 = time.perf_counter()
    with HistoryWriter(path) as w:
        for op in ops:
            w.write(op)
    return (time.perf_counter() - t0) / n


def main(repeats: int = 5, n: int = 200_000) -> int:
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        per_op = [_round(n, Path(tmp) / f"h{i}.jsonl") for i in range(repeats)]
    med = statistics.median(per_op) * 1e6
    print(f"history writing: median {med:.2f} µs/op over {repeats} rounds of {n:,} ops "
          f"(min {min(per_op) * 1e6:.2f}, max {max(per_op) * 1e6:.2f}); "
          f"target < 5 µs: {'met' if med < 5 else 'NOT met'}")
    return 0
