"""Is a history linearizable against a model? Wing & Gong / Lowe search, per partition.

``linearizable(history, model=...)`` answers ``True`` (a linearization
exists), ``False`` (none exists; ``details["counterexample"]`` says where the
search got stuck) or ``"unknown"`` (out of time or memoized states, or the
checker failed; ``details["reason"]`` / ``error`` say which). An invalid
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

import time
import traceback
from collections.abc import Hashable
from typing import Any

from harness.checker.details import LinearizableDetails
from harness.checker.models import EVERY, Operation
from harness.checker.result import UNKNOWN, Result
from harness.checker.wgl import ILLEGAL, OK, RUNNING, Entry, Search
from harness.errors import HarnessError
from harness.history import History, OpType

__all__ = ["DEFAULT_MEMORY_BYTES", "default_max_states", "linearizable", "prepare"]

CHECKER = "linearizable"

DEFAULT_MEMORY_BYTES = 1 << 30
"""What the memo may take by default: about 1 GiB, beyond which the answer is "unknown"."""


def default_max_states(largest_partition_ops: int) -> int:
    """Memoized configurations that fit in :data:`DEFAULT_MEMORY_BYTES`.

    Each is an int of (ops + state id) bits in a set: about 100 bytes plus
    one byte per 8 ops of the largest partition, with the search stack and
    interned states on top, so the estimate is generous per entry.
    """
    return max(10_000, DEFAULT_MEMORY_BYTES // (120 + largest_partition_ops // 8))


_FIRST_BUDGET = 256
_MAX_BUDGET = 1 << 15


def _no(_op: Any) -> bool:
    return False


def prepare(
    history: History, model: Any
) -> tuple[dict[Hashable, list[Entry]], list[Entry], dict[str, int]]:
    """Turn calls into search entries, split by partition key.

    Returns ``(partitions, every, dropped)``: entries per key (in invocation
    order), the entries that belong to every partition (:data:`EVERY`), and
    counts of ops left out, by reason. An unpartitioned model gives a single
    partition with key ``None``.
    """
    pos = history.position  # index -> place in real-time order, without a new map
    part_fn = getattr(model, "partition", None)
    inner = getattr(model, "inner", model) if part_fn is not None else model
    observes = getattr(model, "observes_failure", None)
    ro_fn = getattr(inner, "read_only", _no)
    parts: dict[Hashable, list[Entry]] = {}
    every: list[Entry] = []
    n_failed = n_ro = 0
    OKT, INFOT = OpType.OK, OpType.INFO
    # tuple.__new__ directly: the NamedTuple constructors are Python frames, and this
    # loop runs once per call of the history.
    new, OP, ENTRY = tuple.__new__, Operation, Entry
    for call in history.calls():
        inv = call.invoke
        comp = call.complete
        if comp is None:
            op = new(OP, (inv.f, inv.value, INFOT, None))
            ret = None
        else:
            ctype = comp.type
            if ctype is OKT:
                v = comp.value
                op = new(OP, (inv.f, inv.value if v is None else v, OKT, comp.error))
                ret = pos(comp.index)
            elif ctype is INFOT:
                v = inv.value
                op = new(OP, (inv.f, comp.value if v is None else v, INFOT, comp.error))
                ret = None
            else:
                if observes is None:
                    n_failed += 1
                    continue
                op = Operation(inv.f, inv.value, ctype, comp.error)
                if not observes(op):
                    n_failed += 1
                    continue
                ret = pos(comp.index)
        if part_fn is not None:
            key, op = part_fn(op)
        else:
            key = None
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
    max_states: int | None = None,
    collect_s: float = 0.0,
) -> Result:
    """Check ``history`` against ``model``; see the module docstring for the meanings.

    The check stops at the first illegal partition. With ``collect_s`` > 0 it
    goes on searching the other partitions for up to that many more seconds,
    so a report can show every failing partition it could decide
    (``details["counterexamples"]``); the verdict is the same either way.

    ``time_limit_s`` bounds the whole check; ``max_states`` bounds the
    memoized configurations summed over partitions (default
    :func:`default_max_states`, about 1 GiB). Either bound reached gives
    ``"unknown"``.

    ``details``: ``model``, ``op_count`` (ops searched), ``partitions``,
    ``dropped`` (failed ops, indeterminate read-only ops), ``partition_stats``
    (per key: ops, memoized states, steps, result), ``check_s``; on
    ``False`` a ``counterexample`` (``key``, ``linearized_prefix`` and
    ``could_not_place`` as op indices, ``state`` as the model describes it);
    on ``"unknown"`` a ``reason`` (or the result's ``error``).
    """
    t0 = time.perf_counter()
    deadline = None if time_limit_s is None else t0 + time_limit_s
    details: dict[str, Any] = {"model": getattr(model, "name", type(model).__name__)}
    try:
        return _check(history, model, deadline, max_states, details, t0, collect_s)
    except HarnessError as e:
        return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details),
                      error=f"{type(e).__name__}: {e}")
    except Exception as e:  # a crash must read as "unknown", never as a verdict
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details),
                      error=f"checker raised {tb}")


def _check(
    history: History,
    model: Any,
    deadline: float | None,
    max_states: int | None,
    details: dict[str, Any],
    t0: float,
    collect_s: float = 0.0,
) -> Result:
    parts, every, dropped = prepare(history, model)
    largest = max((len(v) for v in parts.values()), default=0)
    cap = default_max_states(largest) if max_states is None else max_states
    partitioned = getattr(model, "partition", None) is not None
    inner = getattr(model, "inner", model) if partitioned else model
    details["op_count"] = sum(len(v) for v in parts.values()) - len(every) * max(
        0, len(parts) - 1
    )
    details["partitions"] = len(parts)
    details["dropped"] = dropped
    searches = [(key, Search(inner, entries)) for key, entries in parts.items()]
    verdict = _schedule(searches, deadline, cap, details, collect_s)
    details["partition_stats"] = [
        {
            "key": key,
            "ops": s.n,
            "states": s.states_explored,
            "steps": s.steps,
            "result": _STATUS[s.status],
        }
        for key, s in searches
    ]
    if verdict is True and every and len(parts) > 1:
        # Ops that observe every key make per-key checks a necessary condition
        # only: confirm the pass on the whole history.
        searches.clear()  # free the per-key memo tables first: their stats are recorded
        whole = _whole(history, model)
        details["whole_history_check"] = True
        search = Search(model, whole)
        verdict = _schedule([(None, search)], deadline, cap, details)
    details["check_s"] = round(time.perf_counter() - t0, 6)
    if verdict is True:
        return Result(True, CHECKER, LinearizableDetails.of(details))
    if verdict is False:
        return Result(False, CHECKER, LinearizableDetails.of(details))
    return Result(UNKNOWN, CHECKER, LinearizableDetails.of(details))


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
    cap: int,
    details: dict[str, Any],
    collect_s: float = 0.0,
) -> bool | str:
    """Run searches round-robin with growing budgets until all pass or one fails.

    Every unfinished search gets the same step budget per round, so a small
    illegal partition is found after about (partitions x its own cost) steps
    however hard the others are; the budget grows by half each round to keep
    the per-round overhead small once every partition needs a long search.
    After the first illegal partition, the others keep running only while
    ``collect_s`` allows, to find more counterexamples.
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
    if found and not collecting():
        return False
    active = [(k, s) for k, s in searches if s.status == RUNNING]
    budget = _FIRST_BUDGET
    used = sum(s.states_explored for _, s in searches)
    while active:
        still: list[tuple[Hashable, Search]] = []
        for key, s in active:
            before = s.states_explored
            s.max_states = cap - (used - before)
            st = s.run(budget)
            used += s.states_explored - before
            if st == ILLEGAL:
                illegal(key, s)
                if not collecting():
                    return False
                continue
            if st == RUNNING:
                if s.out_of_states:
                    if found:
                        return False
                    details["reason"] = (
                        f"memory bound reached: {used} memoized states (max_states={cap}) "
                        f"while searching partition {key!r}"
                    )
                    return UNKNOWN
                still.append((key, s))
            if found and not collecting():
                return False
            if deadline is not None and time.perf_counter() > deadline:
                if found:
                    return False
                unfinished = sum(1 for _, x in searches if x.status == RUNNING)
                if unfinished:
                    details["reason"] = (
                        f"time limit reached after {used} memoized states; "
                        f"{unfinished} partition(s) unfinished"
                    )
                    return UNKNOWN
        active = still
        budget = min(budget + budget // 2, _MAX_BUDGET)
    return not found
