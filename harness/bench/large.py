"""Checking long runs' histories: verdict, check time and peak memory at scale.

``harness bench large`` generates seeded register histories, writes each as
JSONL, and checks each one in a fresh child process (this module with
``--check``) so that the peak RSS it reports (the child's ``VmHWM``) is that
one history's parse and check, not the generator's or another history's:

* ``1M valid``: 1,000,000 operations over 10 keys, concurrency 10, about 1%
  indeterminate; produced by simulating a linearizable register (each op
  takes effect at one instant between its invocation and its completion), so
  its verdict must be "valid";
* ``1M + stale read``: the same history with one read inserted that returns a
  value overwritten before the read began (a write W, then a write W2 invoked
  after W completed and completed before the read): no linearization exists;
* ``1 key``: 100,000 operations on one key at concurrency 5.

Goals (issue 15): every verdict right; each 1M-op history under 30 s and
1 GiB; the single key under 10 s. The figures are printed, never asserted by
a timed test. ``--parse-only`` histories: the parse of a large file alone
(time and peak RSS), the figure for "a 200 MB history parses in under 10 s and
under 1 GiB". ``--workers 1`` against the default measures what checking
partitions in parallel processes gains.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

__all__ = ["generate", "main"]

MODEL = "strict-cas-register-per-key"


def generate(
    out: TextIO,
    *,
    ops: int,
    keys: int,
    concurrency: int,
    seed: int,
    info_rate: float = 0.01,
    stale_read: bool = False,
) -> dict[str, Any]:
    """Write a register history of ``ops`` operations as JSONL to ``out``.

    The simulation keeps ``concurrency`` client processes busy. Picking a
    process at random, it invokes a new op (reads 50%, writes 30%, cas 20%
    on a random key), makes an invoked op take effect on the key's current
    value, or completes an op that took effect. About ``info_rate`` of the
    writes and cas complete as ``info`` (half of those took effect, half
    not) and their process is replaced by a fresh one, as Jepsen does.
    Written and cas'd-to values are unique op numbers, so a stale read can
    only be explained by an old write.

    With ``stale_read`` one extra read (a process of its own, invoked and
    completed at once) is inserted half-way: it returns the value of an ok
    write W on some key although an ok write W2 of that key was invoked after
    W completed and completed before the read. Returns what was generated
    (events, the stale read's index and value).
    """
    rng = random.Random(seed)
    state: list[int | None] = [None] * keys
    # per key: (value, invoke index, complete index) of the last ok writes
    writes: list[list[tuple[int, int, int]]] = [[] for _ in range(keys)]
    procs: list[list[Any] | None] = [None] * concurrency  # [pid, f, key, arg, inv, stage, res]
    pids = list(range(concurrency))
    next_pid = concurrency
    idx = 0
    t = 0
    started = 0
    done = 0
    stale: dict[str, Any] | None = None
    stale_at = ops // 2 if stale_read else -1
    w = out.write

    def line(typ: str, pid: int, f: str, value: Any) -> None:
        nonlocal idx, t
        t += 1000 + rng.randrange(1000)
        w(f'{{"index":{idx},"time":{t},"type":"{typ}","process":{pid},"f":"{f}",'
          f'"value":{json.dumps(value, separators=(",", ":"))}}}\n')
        idx += 1

    while done < ops:
        if stale_read and stale is None and started >= stale_at:
            stale = _insert_stale(writes, idx, line, next_pid)
            if stale is not None:
                next_pid += 1
        i = rng.randrange(concurrency)
        p = procs[i]
        if p is None:
            if started >= ops:
                continue
            r = rng.random()
            k = rng.randrange(keys)
            arg: Any
            if r < 0.5:
                f, arg = "read", None
            elif r < 0.8:
                f, arg = "write", started
            else:
                cur = state[k]
                if rng.random() < 0.6 or cur is None:
                    frm = cur  # usually succeeds
                else:
                    frm = max(0, cur - 1 - rng.randrange(5))  # usually fails
                f, arg = "cas", [frm, started]
            p = procs[i] = [pids[i], f, k, arg, idx, 0, None]
            line("invoke", pids[i], f, [k, arg])
            started += 1
        elif p[5] == 0:
            f, k, arg = p[1], p[2], p[3]
            if f != "read" and rng.random() < info_rate / 2:
                _finish(line, p, "info", [k, arg])  # timed out before it took effect
                pids[i] = next_pid
                next_pid += 1
                procs[i] = None
                done += 1
                continue
            if f == "read":
                p[6] = state[k]
            elif f == "write":
                state[k] = arg
            else:
                p[6] = state[k] == arg[0]
                if p[6]:
                    state[k] = arg[1]
            p[5] = 1
        else:
            f, k, arg = p[1], p[2], p[3]
            if f != "read" and rng.random() < info_rate / 2:
                _finish(line, p, "info", [k, arg])  # took effect, but nobody knows
                pids[i] = next_pid
                next_pid += 1
            elif f == "read":
                _finish(line, p, "ok", [k, p[6]])
            elif f == "write":
                writes[k].append((arg, p[4], idx))
                del writes[k][:-50]
                _finish(line, p, "ok", [k, arg])
            else:
                _finish(line, p, "ok" if p[6] else "fail", [k, arg])
            procs[i] = None
            done += 1
    return {"events": idx, "stale_read": stale}


def _finish(line: Any, p: list[Any], typ: str, value: Any) -> None:
    line(typ, p[0], p[1], value)


def _insert_stale(
    writes: list[list[tuple[int, int, int]]], idx: int, line: Any, pid: int
) -> dict[str, Any] | None:
    """Emit a read returning a provably overwritten value, if some key has one."""
    for k, ws in enumerate(writes):
        for j in range(len(ws) - 1, 0, -1):
            w2 = ws[j]
            for w1 in reversed(ws[:j]):
                if w1[2] < w2[1]:  # W1 completed before W2 was invoked; W2 completed already
                    line("invoke", pid, "read", [k, None])
                    line("ok", pid, "read", [k, w1[0]])
                    return {"index": idx, "key": k, "value": w1[0], "overwritten_by": w2[0]}
    return None


# --------------------------------------------------------------------------- the child


def _vm_hwm_mb() -> float:
    """This process's peak resident set (``VmHWM``) in MiB, or -1 if unreadable."""
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(path: str, model: str, workers: int | None, parse_only: bool,
           max_memory: int | None) -> dict[str, Any]:
    from harness.checker.linearizable import linearizable
    from harness.checker.models import get_model
    from harness.commands.check import load_for_check

    t0 = time.perf_counter()
    h = load_for_check(path).history  # as harness check reads it
    parse_s = time.perf_counter() - t0
    out: dict[str, Any] = {"events": len(h), "parse_s": round(parse_s, 2),
                           "parse_peak_mb": round(_vm_hwm_mb(), 1)}
    if parse_only:
        return out
    kw: dict[str, Any] = {}
    if workers is not None:
        kw["workers"] = workers
    if max_memory is not None:
        kw["max_memory"] = max_memory
    t1 = time.perf_counter()
    r = linearizable(h, model=get_model(model), time_limit_s=600, **kw)
    out["check_s"] = round(time.perf_counter() - t1, 2)
    out["verdict"] = r.verdict
    out["reason"] = r.details.get("reason") or r.error
    out["peak_mb"] = round(_vm_hwm_mb(), 1)
    out["workers"] = r.details.get("workers", 1)
    import resource

    # the largest worker's peak: its pages shared with this process count in both
    out["worker_peak_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return out


def _run_child(path: Path, *, workers: int | None = None, parse_only: bool = False,
               max_memory: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "harness.bench.large", "--check", str(path), "--model", MODEL]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if parse_only:
        cmd.append("--parse-only")
    if max_memory is not None:
        cmd += ["--max-memory", str(max_memory)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(wall, 2)
    return res


# --------------------------------------------------------------------------- the bench


def _spin(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def _machine_speedup(n: int = 20_000_000) -> float:
    """What two processes gain over one on this machine right now (a pure CPU loop):
    the ceiling for the parallel check's speed-up, since other work shares the cores."""
    import multiprocessing

    t0 = time.perf_counter()
    _spin(n)
    _spin(n)
    serial = time.perf_counter() - t0
    ctx = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_spin, args=(n,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return serial / (time.perf_counter() - t0)


_CASES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("1M valid, 10 keys, c=10", {"ops": 1_000_000, "keys": 10, "concurrency": 10}, "valid"),
    ("1M + stale read", {"ops": 1_000_000, "keys": 10, "concurrency": 10, "stale_read": True},
     "invalid"),
    ("1 key, 100k ops, c=5", {"ops": 100_000, "keys": 1, "concurrency": 5}, "valid"),
)


def _workers(res: dict[str, Any]) -> str:
    """"1", or "2, 410 MB": how many processes checked, and the largest worker's peak."""
    n = res.get("workers", 1)
    return str(n) if n <= 1 else f"{n}, {res['worker_peak_mb']:.0f} MB"


def _cases(scale: float) -> Iterator[tuple[str, dict[str, Any], str]]:
    for _, kw, expected in _CASES:
        kw = dict(kw)
        kw["ops"] = max(1000, int(kw["ops"] * scale))
        name = f"{kw['ops']:,} ops, {kw['keys']} key{'s' if kw['keys'] > 1 else ''}, " \
               f"c={kw['concurrency']}" + (" +stale" if kw.get("stale_read") else "")
        yield name, kw, expected


def main(argv: list[str] | None = None) -> int:
    """``harness bench large [--seed N] [--scale F] [--speedup]``: print the table."""
    ap = argparse.ArgumentParser(prog="harness bench large")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every history's size (0.1 for a quick look)")
    ap.add_argument("--speedup", action="store_true",
                    help="also check the 1M valid history with one worker, for the speed-up")
    ap.add_argument("--parse-mb", type=int, default=200,
                    help="also time parsing alone of a history of about this many MB (0: skip)")
    ap.add_argument("--keep", help="write the histories to this folder and keep them")
    ap.add_argument("--check", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=MODEL, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--parse-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-memory", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.check:
        print(json.dumps(_child(args.check, args.model, args.workers, args.parse_only,
                                args.max_memory)))
        return 0
    with tempfile.TemporaryDirectory(prefix="harness-large-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"seed {args.seed}; each history parsed and checked in a process of its own "
              f"(peak MB = its VmHWM; workers: processes checking partitions, with the largest "
              f"one's peak RSS, which counts pages shared with the parent again); "
              f"{os.cpu_count()} cores")
        print(f"{'history':28} {'MB':>6} {'verdict':>8} {'expect':>8} {'parse s':>8} "
              f"{'check s':>8} {'peak MB':>8} {'workers':>8}")
        bad = 0
        first: Path | None = None
        for n, (name, kw, expected) in enumerate(_cases(args.scale)):
            path = folder / f"large-{n}.jsonl"
            with open(path, "w", encoding="utf-8", buffering=1 << 20) as fh:
                gen = generate(fh, seed=args.seed, **kw)
            if first is None:
                first = path
            res = _run_child(path)
            size = path.stat().st_size / 1e6
            if "error" in res:
                print(f"{name:28} {size:>6.0f} ERROR {res['error']}")
                bad += 1
                continue
            ok = res["verdict"] == expected
            bad += not ok
            print(f"{name:28} {size:>6.0f} {res['verdict']:>8} {expected:>8} "
                  f"{res['parse_s']:>8.2f} {res['check_s']:>8.2f} {res['peak_mb']:>8.0f} "
                  f"{_workers(res):>8}" + ("" if ok else f"  WRONG ({res.get('reason')})"))
            if gen["stale_read"]:
                print(f"{'':28} stale read: {gen['stale_read']}")
            if args.speedup and n == 0:
                one = _run_child(path, workers=1)
                if "error" not in one:
                    print(f"{'  same, one process':28} {size:>6.0f} {one['verdict']:>8} "
                          f"{expected:>8} {one['parse_s']:>8.2f} {one['check_s']:>8.2f} "
                          f"{one['peak_mb']:>8.0f} {_workers(one):>8}")
                    if res.get("workers", 1) > 1:
                        print(f"{'':28} parallel speed-up: "
                              f"{one['check_s'] / res['check_s']:.2f}x (two busy-looping "
                              f"processes get {_machine_speedup():.2f}x here now: what the "
                              f"other work on this machine leaves)")
                    else:
                        print(f"{'':28} (below the parallel threshold: one process both times)")
        if args.parse_mb:
            path = folder / "parse.jsonl"
            with open(path, "w", encoding="utf-8", buffering=1 << 20) as fh:
                # about 95 bytes a line, two lines an op: 5,300 ops a MB
                generate(fh, seed=args.seed, ops=args.parse_mb * 5300, keys=10, concurrency=10)
            res = _run_child(path, parse_only=True)
            size = path.stat().st_size / 1e6
            if "error" in res:
                print(f"{'parse alone':28} {size:>6.0f} ERROR {res['error']}")
            else:
                print(f"{'parse alone':28} {size:>6.0f} {'':>8} {'':>8} {res['parse_s']:>8.2f} "
                      f"{'':>8} {res['parse_peak_mb']:>8.0f}")
    print("figures from one run on a shared machine; goals: verdicts right, 1M-op histories "
          "< 30 s and < 1024 MB each, the single key < 10 s, 200 MB parse < 10 s and < 1024 MB")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
