"""How fast the queue and fencing checkers are on a large synthetic history.

Target: a 1,000,000-operation queue history checked in under 3 s. "Operation"
here is a call (an invocation and its completion), the stricter reading:
the history holds 2,000,000 events.
"""

from __future__ import annotations

import random
import statistics
import time

from harness.checker.fencing import fencing
from harness.checker.queue import queue
from harness.history import History, Op, OpType

__all__ = ["main", "synthetic_queue_history"]


def synthetic_queue_history(calls: int, *, processes: int = 16, seed: int = 1) -> History:
    """Enqueues, claims and completes of distinct items, interleaved across processes."""
    rng = random.Random(seed)
    ops: list[Op] = []
    t = 0
    items = calls // 3
    open_: list[tuple[int, str, object, object]] = []
    steps: tuple[tuple[str, object, object], ...]
    for n in range(items):
        token = n + 1
        steps = (
            ("enqueue", {"id": n, "payload": n}, {"id": n, "payload": n}),
            ("claim", None, {"id": n, "token": token}),
            ("complete", {"id": n, "token": token, "result": 1}, {"id": n, "token": token}),
        )
        for f, v1, r1 in steps:
            p = rng.randrange(processes)
            open_.append((p, f, v1, r1))
    pending: dict[int, tuple[str, object, object]] = {}
    idx = 0
    for p, f, v0, r0 in open_:
        if p in pending:
            pf, _, pr = pending.pop(p)
            t += 1
            ops.append(Op(idx, t, OpType.OK, p, pf, pr))
            idx += 1
        t += 1
        ops.append(Op(idx, t, OpType.INVOKE, p, f, v0))
        idx += 1
        pending[p] = (f, v0, r0)
    for p, (pf, _, pr) in pending.items():
        t += 1
        ops.append(Op(idx, t, OpType.OK, p, pf, pr))
        idx += 1
    return History(ops)


def main(repeats: int = 5, calls: int = 1_000_000) -> int:
    t0 = time.perf_counter()
    h = synthetic_queue_history(calls)
    build = time.perf_counter() - t0
    print(f"synthetic history: {len(h.calls()):,} calls, {len(h):,} events "
          f"(built and paired in {build:.2f} s)")
    for name, fn in (("queue", queue), ("fencing", fencing)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = fn(h)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"{name:8s} checker: median {med:.3f} s of {repeats} "
              f"(min {min(times):.3f}, max {max(times):.3f}); verdict {r.verdict}; "
              f"target < 3 s: {'met' if med < 3 else 'NOT met'}")
    return 0
