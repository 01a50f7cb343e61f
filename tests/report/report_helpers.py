"""Synthetic run folders for the report tests: what the runner writes, without a cluster."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.formats import write_jsonl
from harness.history import NEMESIS, History, Op, OpType

RunFactory = Callable[..., Path]


def synthetic_register_history(n_ops: int, *, seed: int = 1, processes: int = 10) -> History:
    """A plausible register history of about ``n_ops`` events with faults and info ops.

    Each process alternates invoke and completion; one op in 200 is ``info``
    (and the worker goes on as process ``p + processes``, as the runner does); a
    partition every 10 s.
    """
    rng = random.Random(seed)
    ops: list[Op] = []
    t = 0
    proc = list(range(processes))
    open_: dict[int, Op] = {}
    fault_on = False
    while len(ops) < n_ops:
        t += rng.randrange(50_000, 400_000)  # 0.05 to 0.4 ms between events
        if t // 10_000_000_000 % 2 == 1 and not fault_on:
            fault_on = True
            ops.append(Op(len(ops), t, OpType.INFO, NEMESIS, "start-partition",
                          {"fault": "partition", "grudge": {"n1": ["n2", "n3"], "n2": ["n1"],
                                                            "n3": ["n1"]},
                           "plan": "isolate-one"}))
        elif t // 10_000_000_000 % 2 == 0 and fault_on:
            fault_on = False
            ops.append(Op(len(ops), t, OpType.INFO, NEMESIS, "stop-partition",
                          {"fault": "heal-network"}))
        slot = rng.randrange(processes)
        p = proc[slot]
        if p in open_:
            inv = open_.pop(p)
            r = rng.random()
            if r < 0.005:
                ops.append(Op(len(ops), t, OpType.INFO, p, inv.f, inv.value, "timeout"))
                proc[slot] = p + processes  # the runner's numbering: worker + k * concurrency
            elif inv.f == "cas" and r < 0.4:
                ops.append(Op(len(ops), t, OpType.FAIL, p, inv.f, inv.value, "mismatch"))
            else:
                v = [inv.value[0], rng.randrange(5)] if inv.f == "read" else inv.value
                ops.append(Op(len(ops), t, OpType.OK, p, inv.f, v, None, "n1"))
        else:
            f = rng.choice(["read", "read", "write", "cas"])
            key = f"k{rng.randrange(5)}"
            value: Any = ([key, None] if f == "read" else [key, rng.randrange(5)] if f == "write"
                          else [key, [rng.randrange(5), rng.randrange(5)]])
            op = Op(len(ops), t, OpType.INVOKE, p, f, value)
            open_[p] = op
            ops.append(op)
    return History(ops)


def write_run(run_dir: Path, history: History, results: dict[str, Any], *,
              lb: list[dict[str, Any]] | None = None, logs: dict[str, str] | None = None
              ) -> Path:
    """A run folder as the runner leaves it (``history.jsonl``, ``results.json``, ...)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(history, run_dir / "history.jsonl")
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    (run_dir / "schedule.json").write_text(json.dumps(results.get("schedule", {})))
    (run_dir / "logs").mkdir(exist_ok=True)
    for name, text in (logs or {}).items():
        (run_dir / "logs" / name).write_text(text)
    if lb is not None:
        (run_dir / "lb.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lb))
    return run_dir


def base_results(*, valid: Any, checkers: dict[str, Any], op_count: int,
                 workload: str = "register", started: float = 1_795_600_000.0,
                 test: str = "synthetic") -> dict[str, Any]:
    return {
        "valid": valid, "verdict": {True: "valid", False: "invalid"}.get(valid, "unknown"),
        "error": None, "seed": 7, "test": test, "started": started, "duration_s": 12.5,
        "op_count": op_count, "counts": {"ok": 1, "fail": 0, "info": 0},
        "config": {"system": "refsys", "workload": workload, "nemesis": ["partition"],
                   "time_limit_s": 10.0, "concurrency": 5, "rate_hz": 50.0,
                   "backend": "local", "nodes": 3, "seed": 7, "bug": None, "test": test,
                   "through_lb": True, "op_timeout_s": 5.0},
        "schedule": {"seed": 7, "faults": []},
        "results": checkers,
    }


def big_register_run(make_run: RunFactory, n_ops: int) -> Path:
    """A 100k-event register history whose results name a counterexample deep in it."""
    h = synthetic_register_history(n_ops)
    k1 = [c for c in h.calls() if c.value[0] == "k1" and c.ok]
    lin = {"valid": False, "checker": "linearizable", "model": "cas-register-per-key",
           "counterexample": {"key": "k1", "linearized_prefix": [c.invoke.index
                                                                 for c in k1[:5000]],
                              "could_not_place": [k1[5000].invoke.index], "state": "3"},
           "op_count": len(h.calls()), "partitions": 5}
    lb = [{"time": t * 1_000_000_000, "server": f"n{1 + t % 3}",
           "status": "DOWN" if t % 2 else "UP", "check": "L7OK"} for t in range(60)]
    logs = {"n1.log": "".join(f"2026-11-25 09:53:{s % 60:02d},000 node1 INFO line {s}\n"
                              for s in range(20_000))}
    return make_run(h, base_results(valid=False, checkers={"linearizable": lin},
                                    op_count=len(h)), lb=lb, logs=logs)
