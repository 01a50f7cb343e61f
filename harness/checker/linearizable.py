"""Is a history linearizable against a model? Wing & Gong / Lowe search, per partition.

``linearizable(history, model=...)`` answers ``True`` (a linearization
exists), ``False`` (none exists; ``details["counterexample"]`` says where the
search got stuck) or ``"unknown"`` (out of time or of memory, or the checker
failed; ``details["reason"]`` / ``error`` say which). An invalid
verdict is exact: it is only given once every linearization was excluded.

What the search sees (Jepsen's meanings):

* ``ok`` ops took effect between invocation and completion, with their
  observed output (the completion's value);
* ``info`` ops and ops that never completed may have taken effect at any
  point after their invocation, or never; their output is unknown;
* ``fail`` ops did not happen and are dropped, unless the model says the
  failure is itself an observation (``observes_failure``: etcd's "compare
  failed").

Real-time order is the order of events in the history. A model with a
``partition`` is checked key by key (P-compositionality); the partitions run
round-robin with growing step budgets and the whole check stops at the first
illegal one, so a huge partition cannot starve a small bad one.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from typing import Any

from harness.checker.details import LinearizableDetails
from harness.checker.models import EVERY, Operation
from harness.checker.native import native_searches
from harness.checker.result import UNKNOWN, Result
from harness.checker.wgl import ILLEGAL, OK, RUNNING, Entry, Search
from harness.errors import HarnessError
from harness.history import History, OpType

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "default_max_memory",
    "linearizable",
    "parse_bytes",
    "prepare",
    "set_default_max_memory",
]

CHECKER = "linearizable"

DEFAULT_MEMORY_BYTES = 1 << 30
"""What the searches may hold by default (1 GiB), beyond which the answer is "unknown".

It bounds the *tracked* size of the searches (:meth:`Search.memory_bytes`:
per-op arrays, memo, step caches, states, stack), not the process's RSS,
which also holds the history itself and whatever the caller keeps."""


_default_max_memory = DEFAULT_MEMORY_BYTES


def set_default_max_memory(n: int | None) -> int:
    """Set the bound a check uses when its caller passes none; returns the previous one.

    The CLI sets it from ``--max-memory`` for ``harness check`` and ``harness
    run``, whose check is called deep inside the runner; ``None`` restores
    :data:`DEFAULT_MEMORY_BYTES`.
    """
    global _default_max_memory
    prev = _default_max_memory
    _default_max_memory = DEFAULT_MEMORY_BYTES if n is None else n
    return prev


def default_max_memory() -> int:
    """The bound a check uses when its caller passes none (see :func:`set_default_max_memory`)."""
    return _default_max_memory


def parse_bytes(text: str) -> int:
    """``"512M"``, ``"1G"``, ``"1.5GiB"``, ``"200000000"`` -> bytes (K, M, G, T are powers
    of 1024, as in ``ulimit`` and ``docker --memory``)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(t[-1]) + 1))
        t = t[:-1]
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 512M, 1G, or bytes)") from None
    if not v > 0 or v != v or v == float("inf"):
        raise ValueError(f"not a positive size: {text!r}")
    return int(v * mult)


_FIRST_BUDGET = 256
_NATIVE_FIRST_BUDGET = 1 << 14
"""A C step costs about 1/50 of a Python one: the first round of the round-robin
schedule may take more of them for the same time."""
_MAX_BUDGET = 1 << 15


def _no(_op: Any) -> bool:
    return False


def _identity(index: int) -> int:
    return index


def prepare(
    history: History, model: Any
) -> tuple[dict[Hashable, list[Entry]], list[Entry], dict[str, int]]:
    """Turn calls into search entries, split by partition key.

    Returns ``(partitions, every, dropped)``: entries per key (in invocation
    order), the entries that belong to every partition (:data:`EVERY`), and
    counts of ops left out, by reason. An unpartitioned model gives a single
    partition with key ``None``.
    """
    # index -> place in real-time order; most histories are indexed by position
    pos = _identity if history.indexed_by_position else history.position
    part_fn = getattr(model, "partition", None)
    split = getattr(model, "split", None) if part_fn is not None else None
    inner = getattr(model, "inner", model) if part_fn is not None else model
    observes = getattr(model, "observes_failure", None)
    ro_fn = getattr(inner, "read_only", _no)
    parts: dict[Hashable, list[Entry]] = {}
    every: list[Entry] = []
    n_failed = n_ro = 0
    OKT, INFOT = OpType.OK, OpType.INFO
    # tuple.__new__ directly: the NamedTuple constructors are Python frames, and this
    # loop runs once per call of the history. A partitioned model with ``split`` makes
    # the per-key op without the whole-history op in between.
    new, OP, ENTRY = tuple.__new__, Operation, Entry
    for call in history.calls():
        inv = call.invoke
        comp = call.complete
        if comp is None:
            f, value, otype, err = inv.f, inv.value, INFOT, None
            ret = None
        else:
            ctype = comp.type
            if ctype is OKT:
                v = comp.value
                f, value, otype, err = inv.f, inv.value if v is None else v, OKT, comp.error
                ret = pos(comp.index)
            elif ctype is INFOT:
                v = inv.value
                f, value, otype, err = inv.f, comp.value if v is None else v, INFOT, comp.error
                ret = None
            else:
                if observes is None:
                    n_failed += 1
                    continue
                if not observes(Operation(inv.f, inv.value, ctype, comp.error)):
                    n_failed += 1
                    continue
                f, value, otype, err = inv.f, inv.value, ctype, comp.error
                ret = pos(comp.index)
        if split is not None:
            key, op = split(f, value, otype, err)
        elif part_fn is not None:
            key, op = part_fn(new(OP, (f, value, otype, err)))
        else:
            key, op = None, new(OP, (f, value, otype, err))
        if ret is None and ro_fn(op):
            n_ro += 1
            continue
        entry = new(ENTRY, (inv.index, pos(inv.index), ret, op))
        if key is EVERY:
            every.append(entry)
        else:
            lst = parts.get(key)
            if lst is None:
                parts[key] = [entry]
            else:
                lst.append(entry)
    dropped = {"failed": n_failed, "indeterminate_read_only": n_ro}
    if every:
        if not parts:
            parts[None] = list(every)  # no keys at all: check them against the initial state
        else:
            for key, lst in parts.items():
                parts[key] = sorted(lst + every, key=lambda e: e.call)
    return parts, every, dropped


def linearizable(
    history: History,
    *,
    model: Any,
    time_limit_s: float | None = None,
    max_memory: int | None = None,
    collect_s: float = 0.0,
    workers: int | None = None,
) -> Result:
    """Check ``history`` against ``model``; see the module docstring for the meanings.

    The check stops at the first illegal partition. With ``collect_s`` > 0 it
    goes on searching the other partitions for up to that many more seconds,
    so a report can show every failing partition it could decide
    (``details["counterexamples"]``); the verdict is the same either way.

    ``time_limit_s`` bounds the whole check; ``max_memory`` bounds, in bytes,
    what the searches hold (default :func:`default_max_memory`, normally
    :data:`DEFAULT_MEMORY_BYTES`; see there).
    Either bound reached gives ``"unknown"`` with the reason.

    ``workers``: processes that check partitions in parallel. ``None``
    chooses: one per core (at most :data:`MAX_WORKERS`) when the history
    has at least :data:`PARALLEL_MIN_OPS` ops in more than one partition,
    else the calling process alone, since starting a process costs more
    than a small check. The memory bound is shared out among the workers.

    ``details``: ``model``, ``op_count`` (ops searched), ``partitions``,
    ``dropped`` (failed ops, indeterminate read-only ops), ``partition_stats``
    (per key: ops, memoized states, steps, result), ``check_s``, ``workers``;
    on ``False`` a ``counterexample`` (``key``, ``linearized_prefix`` and
    ``could_not_place`` as op indices, ``state`` as the model describes it);
    on ``"unknown"`` a ``reason`` (or the result's ``error``).
    """
    t0 = time.perf_counter()
    deadline = None if time_limit_s is None else t0 + time_limit_s
    details: dict[str, Any] = {"model": getattr(model, "name", type(model).__name__)}
    bound = _default_max_memory if max_memory is None else max_memory
    # The cyclic GC would walk the entries and the memo (millions of tuples, none in a
    # cycle) again and again as they grow: paused for the check, restored after.
    was = gc.isenabled()
    gc.disable()
    try:
        return _check(history, model, deadline, bound, details, t0, collect_s, workers)
    except HarnessError as e:
        return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details),
                      error=f"{type(e).__name__}: {e}")
    except MemoryError:
        return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details),
                      error="checker ran out of memory (MemoryError); try a larger machine")
    except Exception as e:  # a crash must read as "unknown", never as a verdict
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details),
                      error=f"checker raised {tb}")
    finally:
        if was:
            gc.enable()


PARALLEL_MIN_OPS = 100_000
"""Ops (summed over partitions) from which a check uses worker processes by default."""

MAX_WORKERS = 8


def _choose_workers(workers: int | None, parts: dict[Hashable, list[Entry]]) -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1  # the workers read the partitions from a forked copy of this process
    if workers is not None:
        return max(1, min(workers, len(parts)))
    if len(parts) < 2 or sum(len(v) for v in parts.values()) < PARALLEL_MIN_OPS:
        return 1
    if threading.active_count() > 1:
        return 1  # forking a process with threads can copy a held lock: stay in-process
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS, len(parts)))


def _check(
    history: History,
    model: Any,
    deadline: float | None,
    max_memory: int,
    details: dict[str, Any],
    t0: float,
    collect_s: float = 0.0,
    workers: int | None = None,
) -> Result:
    if workers is None or workers <= 1:
        native = native_searches(history, model)
        if native is not None:
            return _check_native(native, deadline, max_memory, details, t0, collect_s)
    parts, every, dropped = prepare(history, model)
    partitioned = getattr(model, "partition", None) is not None
    inner = getattr(model, "inner", model) if partitioned else model
    details["op_count"] = sum(len(v) for v in parts.values()) - len(every) * max(
        0, len(parts) - 1
    )
    details["partitions"] = len(parts)
    details["dropped"] = dropped
    nw = _choose_workers(workers, parts)
    details["workers"] = nw
    if nw > 1:
        verdict, stats = _parallel(parts, inner, nw, deadline, max_memory, details, collect_s)
    else:
        searches = []
        for key in list(parts):
            searches.append((key, Search(inner, parts[key])))
            parts[key] = []  # each search holds what it needs of the entries
        verdict = _schedule(searches, deadline, max_memory, details, collect_s)
        stats = _stats(searches)
        searches.clear()  # free the per-key memo tables: their stats are recorded
    details["partition_stats"] = stats
    if verdict is True and every and len(parts) > 1:
        # Ops that observe every key make per-key checks a necessary condition
        # only: confirm the pass on the whole history.
        whole = _whole(history, model)
        details["whole_history_check"] = True
        search = Search(model, whole)
        verdict = _schedule([(None, search)], deadline, max_memory, details)
    return _result(verdict, details, t0)


def _result(verdict: bool | str, details: dict[str, Any], t0: float) -> Result:
    """The result of a finished schedule, with the check's time in its details."""
    details["check_s"] = round(time.perf_counter() - t0, 6)
    valid = verdict if verdict is True or verdict is False else UNKNOWN
    return Result(valid, CHECKER, LinearizableDetails.of(details))


def _check_native(
    native: tuple[list[tuple[Hashable, Any]], dict[str, int]],
    deadline: float | None,
    max_memory: int,
    details: dict[str, Any],
    t0: float,
    collect_s: float,
) -> Result:
    """The check with the C searches of :mod:`harness.checker.native`: same schedule, same
    details, same meanings; they are small partitions, so one process."""
    searches, dropped = native
    details["op_count"] = sum(s.n for _, s in searches)
    details["partitions"] = len(searches)
    details["dropped"] = dropped
    details["workers"] = 1
    details["engine"] = "native"
    verdict = _schedule(searches, deadline, max_memory, details, collect_s,
                        first_budget=_NATIVE_FIRST_BUDGET)
    details["partition_stats"] = _stats(searches)
    searches.clear()
    return _result(verdict, details, t0)


def _stats(searches: list[tuple[Hashable, Search]]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "ops": s.n,
            "states": s.states_explored,
            "steps": s.steps,
            "result": _STATUS[s.status],
        }
        for key, s in searches
    ]


# The partitions a forked worker checks, set just before the fork: the children read
# them from the parent's memory instead of having them pickled through a pipe.
_FORK_INPUT: tuple[dict[Hashable, list[Entry]], Any] | None = None


def _parallel(
    parts: dict[Hashable, list[Entry]],
    inner: Any,
    nw: int,
    deadline: float | None,
    max_memory: int,
    details: dict[str, Any],
    collect_s: float,
) -> tuple[bool | str, list[dict[str, Any]]]:
    """Check the partitions in ``nw`` forked processes, largest partitions spread first.

    Each worker runs :func:`_schedule` on its share with ``max_memory / nw``
    and sends back its verdict, details and stats. The first illegal
    partition anywhere stops the others (a shared event they poll between
    budgets), as in one process. A worker that dies gives "unknown".
    """
    global _FORK_INPUT
    ctx = multiprocessing.get_context("fork")
    groups: list[list[Hashable]] = [[] for _ in range(nw)]
    load = [0] * nw
    for key in sorted(parts, key=lambda k: -len(parts[k])):
        i = load.index(min(load))
        groups[i].append(key)
        load[i] += len(parts[key])
    stop = ctx.Event()
    results = ctx.SimpleQueue()
    _FORK_INPUT = (parts, inner)
    procs = []
    try:
        for i, keys in enumerate(groups):
            pr = ctx.Process(target=_worker, args=(i, keys, deadline, max_memory // nw,
                                                   collect_s, stop, results), daemon=True)
            pr.start()
            procs.append(pr)
    finally:
        _FORK_INPUT = None
    got: dict[int, tuple[bool | str, dict[str, Any], list[dict[str, Any]]]] = {}
    stop_at: float | None = None  # once one worker found an illegal partition
    while len(got) < len(procs):
        if stop_at is not None and time.perf_counter() >= stop_at:
            stop.set()
        if results.empty():
            if all(not pr.is_alive() for pr in procs) and results.empty():
                break
            time.sleep(0.005)
            continue
        i, verdict, wdetails, stats = results.get()
        got[i] = (verdict, wdetails, stats)
        if verdict is False and stop_at is None:
            stop_at = time.perf_counter() + collect_s  # the others collect, then stop
    for pr in procs:
        pr.join(timeout=5)
        if pr.is_alive():
            pr.kill()
    stats_all: list[dict[str, Any]] = []
    verdicts: list[bool | str] = []
    reasons: list[str] = []
    found: list[dict[str, Any]] = []
    for i in range(nw):
        if i not in got:
            code = procs[i].exitcode
            verdicts.append(UNKNOWN)
            reasons.append(f"worker process {i} died (exit code {code}) while checking "
                           f"{len(groups[i])} partition(s)")
            continue
        verdict, wd, stats = got[i]
        verdicts.append(verdict)
        stats_all.extend(stats)
        if "reason" in wd and verdict is not False:
            reasons.append(wd["reason"])
        found.extend(wd.get("counterexamples", ()))
    order = {k: j for j, k in enumerate(parts)}
    stats_all.sort(key=lambda st: order.get(st["key"], len(order)))
    if found:
        details["counterexample"] = found[0]
        details["counterexamples"] = found
    if any(v is False for v in verdicts):
        return False, stats_all
    if all(v is True for v in verdicts):
        return True, stats_all
    details["reason"] = "; ".join(reasons) or "a worker did not finish"
    return UNKNOWN, stats_all


def _worker(i: int, keys: list[Hashable], deadline: float | None, max_memory: int,
            collect_s: float, stop: Any, results: Any) -> None:
    assert _FORK_INPUT is not None
    parts, inner = _FORK_INPUT
    wd: dict[str, Any] = {}
    searches: list[tuple[Hashable, Search]] = []
    try:
        searches = [(key, Search(inner, parts[key])) for key in keys]
        verdict = _schedule(searches, deadline, max_memory, wd, collect_s, stop=stop.is_set)
    except MemoryError:
        verdict, wd["reason"] = UNKNOWN, "worker process ran out of memory (MemoryError)"
    except Exception as e:
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        verdict, wd["reason"] = UNKNOWN, f"checker raised {tb}"
    results.put((i, verdict, {k: wd[k] for k in ("reason", "counterexamples") if k in wd},
                 _stats(searches)))


_STATUS = {RUNNING: "unfinished", OK: "linearizable", ILLEGAL: "not linearizable"}


def _whole(history: History, model: Any) -> list[Entry]:
    """Every kept op of the history as one partition, for the whole-model check."""

    class _Unpartitioned:
        def __init__(self, m: Any) -> None:
            self.m = m
            self.observes_failure = getattr(m, "observes_failure", _no)
            self.read_only = getattr(m, "read_only", _no)

    parts, _, _ = prepare(history, _Unpartitioned(model))
    return parts.get(None, [])


def _schedule(
    searches: list[tuple[Hashable, Search]],
    deadline: float | None,
    max_memory: int,
    details: dict[str, Any],
    collect_s: float = 0.0,
    stop: Callable[[], bool] | None = None,
    first_budget: int = _FIRST_BUDGET,
) -> bool | str:
    """Run searches round-robin with growing budgets until all pass or one fails.

    Every unfinished search gets the same step budget per round, so a small
    illegal partition is found after about (partitions x its own cost) steps
    however hard the others are; the budget grows by half each round to keep
    the per-round overhead small once every partition needs a long search.
    After the first illegal partition, the others keep running only while
    ``collect_s`` allows, to find more counterexamples. A search that passes
    frees its memo at once. ``stop`` (a worker's view of "another worker
    found an illegal partition") ends the loop early; the verdict is then
    unknown here and the caller knows better.
    """
    found: list[dict[str, Any]] = []
    collect_until: float | None = None

    def illegal(key: Hashable, s: Search) -> None:
        nonlocal collect_until
        cx = {"key": key, **s.counterexample()}
        found.append(cx)
        details.setdefault("counterexample", cx)
        details["counterexamples"] = found
        if collect_until is None:
            collect_until = time.perf_counter() + collect_s

    def collecting() -> bool:
        return collect_until is not None and time.perf_counter() < collect_until

    for key, s in searches:
        if s.status == ILLEGAL:
            illegal(key, s)
        elif s.status == OK:
            s.release()
    if found and not collecting():
        return False
    active = [(k, s) for k, s in searches if s.status == RUNNING]
    budget = first_budget
    held = {id(s): s.memory_bytes() for _, s in searches}
    used = sum(held.values())
    while active:
        still: list[tuple[Hashable, Search]] = []
        for key, s in active:
            st = s.run(budget)
            if st == OK:
                s.release()
            now = s.memory_bytes()
            used += now - held[id(s)]
            held[id(s)] = now
            if st == ILLEGAL:
                illegal(key, s)
                if not collecting():
                    return False
                continue
            if st == RUNNING:
                if used > max_memory:
                    if found:
                        return False
                    details["reason"] = (
                        f"memory bound reached: the searches hold about {used / 2**20:.0f} MiB "
                        f"(max memory {max_memory / 2**20:.0f} MiB) while searching "
                        f"partition {key!r} ({s.n} ops, {s.states_explored} memoized states)"
                    )
                    return UNKNOWN
                still.append((key, s))
            if found and not collecting():
                return False
            if stop is not None and stop():
                details["reason"] = "stopped: another worker found an illegal partition"
                return UNKNOWN
            if deadline is not None and time.perf_counter() > deadline:
                if found:
                    return False
                unfinished = sum(1 for _, x in searches if x.status == RUNNING)
                if unfinished:
                    details["reason"] = (
                        f"time limit reached after {used / 2**20:.0f} MiB of search state; "
                        f"{unfinished} partition(s) unfinished"
                    )
                    return UNKNOWN
        active = still
        budget = min(budget + budget // 2, max(_MAX_BUDGET, first_budget))
    return not found
