"""What a run report shows, computed by pure functions from the history and the results.

Everything here is data in, data out: no files, no HTML. That is what makes
the report testable (principle 9): the counterexample layout, the item
trails, the fault intervals and the latency figures are unit-tested on tiny
handmade histories, and the template only draws them.

Times stay on the history's clock (nanoseconds from the run's start) until the
renderer scales them; ``None`` as an end time means "never completed, or
``info``": the op may have taken effect at any later time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checker.details import (
    ConvergenceDetails,
    FencingDetails,
    LeaseDetails,
    LinearizableDetails,
    QueueDetails,
)
from harness.checker.queue import (
    DEFAULT_CONSUME,
    DEFAULT_ENQUEUE,
    DEFAULT_OBSERVE,
    item_id,
    item_key,
)
from harness.checker.result import UNKNOWN, Result, result_from_dict, typed
from harness.history import NEMESIS, Call, History, Op

__all__ = [
    "CounterexampleBar",
    "CounterexampleLayout",
    "FaultInterval",
    "ItemTrail",
    "QuantileRow",
    "TimeAxis",
    "TrailGroup",
    "TrailStep",
    "checker_result",
    "compact",
    "convergence_view",
    "counterexample_layout",
    "fault_intervals",
    "faults_between",
    "history_end_ns",
    "item_trails",
    "latency_quantiles",
    "latency_series",
    "nearest_rank",
    "retry_of",
    "throughput_series",
    "time_axis",
]

VALUE_CHARS_MAX = 160
"""Longest value text drawn in a table cell; the full record is a hover away."""


def compact(value: Any, *, limit: int | None = VALUE_CHARS_MAX) -> str:
    """A value as compact JSON text, cut at ``limit`` characters with a visible ellipsis."""
    try:
        s = json.dumps(value, separators=(",", ":"), sort_keys=True, default=_json_default)
    except (TypeError, ValueError):
        s = repr(value)
    if limit is not None and len(s) > limit:
        return s[: limit - 1] + "…"
    return s


def _json_default(v: Any) -> Any:
    if isinstance(v, set | frozenset | tuple):
        return list(v)
    if isinstance(v, Mapping):  # typed checker details
        return dict(v)
    return repr(v)


def history_end_ns(history: History) -> int:
    """The last time on the history's clock (0 for an empty history)."""
    return max((op.time for op in history), default=0)


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """The span the plots and the timeline draw: the first client operation to the end.

    The history's clock starts when the run does, before the cluster is up;
    on a cold start the setup took most of a 30 s run, and an axis from 0
    left 70% of every plot and of the timeline empty. So the axis starts at
    the first client invocation (``lo_ns``), keeping the history's clock for
    its labels (the fault table, the trails and the logs use that clock too),
    and ``setup_ns`` (equal to ``lo_ns``) is only mentioned in words.
    """

    lo_ns: int
    hi_ns: int

    @property
    def setup_ns(self) -> int:
        """How long the run took before its first client operation (cluster setup)."""
        return self.lo_ns

    @property
    def lo_s(self) -> float:
        return self.lo_ns / 1e9

    @property
    def hi_s(self) -> float:
        return self.hi_ns / 1e9


def time_axis(history: History) -> TimeAxis:
    """From the first client invocation to the last client or nemesis event (never empty).

    The ``replicas`` reads after the final phase are left out at the end as
    the setup is at the start: waiting for replicas to catch up takes a
    second or two in which nothing is drawn. A history with no client
    operation (a run killed during setup) keeps the whole clock.
    """
    end = max((op.time for op in history if op.is_client or op.process == NEMESIS),
              default=0) or history_end_ns(history)
    first = next((op.time for op in history.client_ops()), None)
    if first is None:
        return TimeAxis(0, max(end, 1))
    return TimeAxis(first, max(end, first + 1))


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class FaultInterval:
    """One fault from its ``start-*`` event to its ``stop-*`` (or ``heal-all``) event.

    ``end_ns`` is ``None`` when nothing ended the fault before the history did;
    such a fault is drawn to the end, because it was still in force.
    """

    kind: str
    start_ns: int
    end_ns: int | None
    label: str
    start_index: int
    end_index: int | None
    start_value: Any
    end_value: Any

    def overlaps(self, lo_ns: int, hi_ns: int) -> bool:
        """Whether the fault was in force at some moment of ``[lo_ns, hi_ns]``."""
        return self.start_ns <= hi_ns and (self.end_ns is None or self.end_ns >= lo_ns)


def fault_intervals(history: History) -> tuple[FaultInterval, ...]:
    """The faults of a run, paired from the nemesis's ``start-X`` / ``stop-X`` events.

    Faults may overlap (two kills open at once, a kill inside a partition), so
    ``stop-X`` ends the open ``X`` on the same node when both name one, else
    the most recent open ``X``; ``heal-all`` ends every open fault. A start
    that failed (its value holds an ``error``) was never in force: it is a
    zero-length interval, and no stop ends it. Other nemesis events
    (``recovered``) are marks, not intervals.
    """
    open_: dict[str, list[Op]] = {}
    out: list[FaultInterval] = []
    for op in history.nemesis_ops():
        if op.process != NEMESIS:  # the ``replicas`` reads at the end are not faults
            continue
        f = op.f
        if f.startswith("start-") and isinstance(op.value, dict) and "error" in op.value:
            out.append(_interval(f[6:], op, op))
        elif f.startswith("start-"):
            open_.setdefault(f[6:], []).append(op)
        elif f.startswith("stop-") and open_.get(f[5:]):
            starts = open_[f[5:]]
            node = op.value.get("node") if isinstance(op.value, dict) else None
            same = [k for k, s in enumerate(starts)
                    if node is not None and isinstance(s.value, dict)
                    and s.value.get("node") == node]
            start = starts.pop(same[-1] if same else -1)
            out.append(_interval(f[5:], start, op))
        elif f == "heal-all":
            for kind, starts in open_.items():
                out.extend(_interval(kind, s, op) for s in starts)
                starts.clear()
    for kind, starts in open_.items():
        out.extend(_interval(kind, s, None) for s in starts)
    return tuple(sorted(out, key=lambda i: (i.start_ns, i.start_index)))


def _interval(kind: str, start: Op, end: Op | None) -> FaultInterval:
    return FaultInterval(
        kind=kind,
        start_ns=start.time,
        end_ns=None if end is None else end.time,
        label=fault_label(kind, start.value),
        start_index=start.index,
        end_index=None if end is None else end.index,
        start_value=start.value,
        end_value=None if end is None else end.value,
    )


def fault_label(kind: str, value: Any) -> str:
    """A short human description of what a fault did, from the nemesis's record of it."""
    v = value if isinstance(value, dict) else {}
    if "error" in v:
        return f"{kind} (failed: {v['error']})"
    if kind == "partition" and isinstance(v.get("grudge"), dict):
        groups = _partition_groups(v["grudge"])
        plan = v.get("plan")
        shown = " | ".join(" ".join(g) for g in groups) if groups else None
        return " ".join(x for x in ("partition", plan, shown and f"[{shown}]") if x)
    if "node" in v:
        return f"{kind} {v['node']}"
    if kind == "latency" and "latency_ms" in v:
        return f"latency {v['latency_ms']} ms"
    return kind


def _partition_groups(grudge: Mapping[str, Sequence[str]]) -> list[list[str]] | None:
    """The sides of a clean partition, or ``None`` when the cut is not a set of cliques.

    A majorities ring is not a clean split (each node sees a different
    majority), so naming "sides" for it would mislead; the plan name says it.
    """
    nodes = sorted(set(grudge) | {n for v in grudge.values() for n in v})
    cut = {(a, b) for a, bs in grudge.items() for b in bs}
    if any((b, a) not in cut for a, b in cut):
        return None  # a one-way cut (a 3-node ring): "sides" would say it is two-way
    talks = {n: {m for m in nodes if m != n and (n, m) not in cut and (m, n) not in cut}
             for n in nodes}
    groups: list[list[str]] = []
    seen: set[str] = set()
    for n in nodes:
        if n in seen:
            continue
        g = sorted({n} | talks[n])
        if any(talks[m] | {m} != set(g) for m in g):
            return None
        seen.update(g)
        groups.append(g)
    return groups


def faults_between(intervals: Iterable[FaultInterval], lo_ns: int, hi_ns: int) -> list[str]:
    """Labels of the faults in force at some moment of ``[lo_ns, hi_ns]``."""
    return [i.label for i in intervals if i.overlaps(lo_ns, hi_ns)]


# --------------------------------------------------------------------------- counterexample


@dataclass(frozen=True, slots=True)
class CounterexampleBar:
    """One op of the failing partition, as Porcupine draws it: a bar from invoke to return.

    ``order`` is the op's 1-based place in the longest linearizable prefix
    (``None`` when it is not in it); ``unplaced`` marks the ops the search
    could not put next. ``state_after`` is the model's state once the prefix
    reached this op, when the model could be replayed. ``value`` is what the
    model saw (an ok op's output; for a partitioned model, without the key);
    ``record`` is the op's full invoke and completion, as JSON.
    """

    index: int
    process: int | str
    f: str
    value: str
    type: str
    start_ns: int
    end_ns: int | None
    order: int | None
    unplaced: bool
    state_after: str | None
    record: str


@dataclass(frozen=True, slots=True)
class CounterexampleLayout:
    """The picture of one failing partition: lanes per process, bars, and the stuck state.

    Only a window is drawn: the last ``context`` ops of the prefix, the ops
    that cannot be placed, every op of the partition concurrent with them,
    and the next few ops after them (where a stale read usually is).
    ``hidden_prefix`` says how many earlier prefix ops were left out of the
    window, so nothing is dropped silently.
    """

    key: str
    state: str
    lanes: tuple[int | str, ...]
    bars: tuple[CounterexampleBar, ...]
    lo_ns: int
    hi_ns: int
    prefix_length: int
    hidden_prefix: int
    unplaced: tuple[int, ...]
    partition_ops: int
    model: str


def counterexample_layout(
    history: History,
    result: Mapping[str, Any],
    *,
    model: Any = None,
    context: int = 8,
    after: int = 6,
) -> CounterexampleLayout | None:
    """Lay out the counterexample of a linearizability result (``None`` if it has none).

    ``result`` is the checker's ``Result.to_dict()``. ``model`` (the one the
    checker used) lets us find every op of the failing partition and replay
    the prefix for the state after each op; without it, only the prefix and
    the unplaced ops are drawn.
    """
    r = checker_result(result, "linearizable")
    if r is None:
        return None
    lin = LinearizableDetails.coerce(r.details)
    cx = lin.counterexample
    if not isinstance(cx, Mapping):
        return None
    prefix = [int(i) for i in cx.get("linearized_prefix") or []]
    unplaced = [int(i) for i in cx.get("could_not_place") or []]
    key = cx.get("key")
    entries = _partition_entries(history, model, key)
    calls = {c.invoke.index: c for c in history.calls(clients_only=False)}
    members = list(entries) if entries is not None else sorted(set(prefix) | set(unplaced))
    members = [i for i in members if i in calls]
    states = _replay(model, [entries[i] for i in prefix if i in entries]) if entries else {}

    order = {idx: n for n, idx in enumerate(prefix, start=1)}
    focus = prefix[-context:] + unplaced if context > 0 else list(unplaced)
    focus_calls = [calls[i] for i in focus if i in calls]
    if not focus_calls:
        return None
    lo = min(c.start for c in focus_calls)
    hi = max(_end_or_start(c) for c in focus_calls)
    # The ops right after the window are what the stuck search could not explain
    # (a stale read comes after the write it missed), so the next few are shown too.
    later = sorted((calls[i] for i in members if calls[i].start > hi),
                   key=lambda c: (c.start, c.invoke.index))[:after]
    def in_window(c: Call) -> bool:
        return c.start <= hi and (c.end is None or c.end >= lo)

    shown = [
        calls[i] for i in members
        if in_window(calls[i])
        or (i in order and order[i] > len(prefix) - context)
        or i in unplaced
    ]
    shown.extend(c for c in later if c not in shown)
    shown.sort(key=lambda c: (c.start, c.invoke.index))
    hidden = sum(1 for i in prefix if i not in {c.invoke.index for c in shown})
    bars = tuple(_cx_bar(c, order.get(c.invoke.index), c.invoke.index in unplaced,
                         states.get(c.invoke.index),
                         entries[c.invoke.index].op.value if entries else c.value)
                 for c in shown)
    lanes = tuple(sorted({b.process for b in bars}, key=_process_key))
    hi_all = max([hi, *(b.end_ns if b.end_ns is not None else b.start_ns for b in bars)])
    lo_all = min([lo, *(b.start_ns for b in bars)])
    return CounterexampleLayout(
        key=_key_text(key),
        state=str(cx.get("state", "")),
        lanes=lanes,
        bars=bars,
        lo_ns=lo_all,
        hi_ns=max(hi_all, lo_all + 1),
        prefix_length=len(prefix),
        hidden_prefix=hidden,
        unplaced=tuple(unplaced),
        partition_ops=len(members),
        model=str(lin.model),
    )


def _end_or_start(call: Call) -> int:
    return call.end if call.end is not None else call.start


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else compact(key)


def _process_key(p: int | str) -> tuple[int, int, str]:
    return (0, p, "") if isinstance(p, int) else (1, 0, str(p))


def _cx_bar(call: Call, order: int | None, unplaced: bool, state: str | None, value: Any
            ) -> CounterexampleBar:
    record = {"invoke": call.invoke.to_dict()}
    if call.complete is not None:
        record["complete"] = call.complete.to_dict()
    return CounterexampleBar(
        index=call.invoke.index,
        process=call.process,
        f=call.f,
        value=compact(value),
        type=call.type.value,
        start_ns=call.start,
        end_ns=call.end,
        order=order,
        unplaced=unplaced,
        state_after=state,
        record=json.dumps(record, sort_keys=True, default=_json_default),
    )


def _partition_entries(history: History, model: Any, key: Any) -> dict[int, Any] | None:
    """The checker's own entries of the failing partition, by invocation index.

    Uses the checker's :func:`prepare` so the picture holds exactly the ops
    the search saw (failed ops and indeterminate reads are dropped there).
    """
    if model is None:
        return None
    from harness.checker.linearizable import prepare
    from harness.checker.models import freeze

    try:
        parts, _, _ = prepare(history, model)
    except Exception:  # a report must still render when the model cannot read the history
        return None
    want = freeze(key)
    for k, entries in parts.items():
        if k == want or (k is None and key is None) or _key_text(k) == _key_text(key):
            return {e.op_id: e for e in entries}
    return None


def _replay(model: Any, entries: Sequence[Any]) -> dict[int, str]:
    """The model state after each prefix op, replayed; stops quietly where a step fails."""
    if model is None:
        return {}
    from harness.checker.models import INCONSISTENT

    inner = getattr(model, "inner", model) if getattr(model, "partition", None) else model
    out: dict[int, str] = {}
    try:
        state = inner.init()
        for e in entries:
            state = inner.step(state, e.op)
            if state is INCONSISTENT:
                break
            out[e.op_id] = str(inner.describe(state))
    except Exception:  # a nondeterministic model may not replay by ``step``; show no states
        return out
    return out


# --------------------------------------------------------------------------- item trails


@dataclass(frozen=True, slots=True)
class TrailStep:
    """One call of an item's trail: who did what to it, when, with which token.

    ``retry_of`` is the op index of the first attempt when this call is the
    runner's resend of an indeterminate one (its ``retry_of`` field), so a
    reader sees one operation tried twice rather than two operations.
    """

    index: int
    process: int | str
    f: str
    type: str
    token: Any
    start_ns: int
    end_ns: int | None
    node: str | None
    error: str | None
    value: str
    faults: tuple[str, ...]
    flagged: bool
    retry_of: int | None = None


@dataclass(frozen=True, slots=True)
class ItemTrail:
    """Every call that named one item, in invocation order, and the faults around them.

    ``lo_ns``/``hi_ns`` span the flagged calls (those that make the anomaly),
    or the whole trail when none is flagged; ``faults`` were in force then.
    """

    item: str
    note: str
    steps: tuple[TrailStep, ...]
    lo_ns: int
    hi_ns: int
    faults: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrailGroup:
    """One kind of anomaly (lost, duplicated, ...): the exact count and each item's trail.

    ``count`` is the checker's exact figure; ``ids`` what it listed (it lists
    at most 1000), and ``trails`` the first ``max_items`` of those. The
    template says when any of these is shorter than the next.
    """

    checker: str
    name: str
    anomaly: bool
    description: str
    count: int
    ids: tuple[str, ...]
    trails: tuple[ItemTrail, ...]


_QUEUE_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("lost", "lost", "acknowledged, never delivered nor finished, and absent: every final "
     "read that answered said \"not found\""),
    ("vanished", "vanished", "acknowledged and read present, then \"not found\" by a later read"),
    ("stuck", "stuck", "still processing under one token well past its lease (lease plus "
     "the system's takeover grace): nobody took it over"),
    ("dead_lettered", "dead-lettered", "given up by the system (a terminal state the "
     "workload does not accept)"),
    ("duplicated", "duplicated", "delivered more than once"),
    ("unexpected", "unexpected", "delivered but never enqueued"),
    ("failed_then_seen", "failed-then-seen", "enqueue reported as failed, yet delivered"),
    ("unresolved", "unresolved",
     "missing, but an indeterminate consume may have taken it"),
    ("unfinished", "unfinished", "present but not finished when the run ended (queued, "
     "or processing within its lease): a progress finding, not a loss"),
    ("recovered", "recovered", "indeterminate enqueues that were later seen (fine)"),
)

_FENCING_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("double_completion", "double-completion",
     "two different tokens both had a completion accepted"),
    ("token_reuse", "token-reuse", "two ok claims got the same token"),
    ("token_regression", "token-regression",
     "a later claim got a token no larger than an earlier one"),
    ("stale_accepted", "stale-accepted",
     "a completion or renewal accepted with a token already superseded"),
)


def item_trails(
    history: History,
    results: Mapping[str, Result | Mapping[str, Any]],
    intervals: Sequence[FaultInterval] = (),
    *,
    max_items: int = 100,
) -> list[TrailGroup]:
    """Trails of the items each queue and fencing anomaly names (empty groups left out).

    ``results`` maps checker names to :class:`Result` s or their ``results.json`` entries.
    """
    q_result = checker_result(results.get("queue"), "queue")
    fe_result = checker_result(results.get("fencing"), "fencing")
    le_result = checker_result(results.get("lease"), "lease")
    if q_result is None and fe_result is None and le_result is None:
        return []
    index = _items_index(history)
    groups: list[TrailGroup] = []
    if q_result is not None:
        q = QueueDetails.coerce(q_result.details)
        anomalies = set(q.anomalies or [])
        for field_, name, desc in _QUEUE_GROUPS:
            raw = getattr(q, field_)
            count = int((getattr(q, f"{field_}_count") if f"{field_}_count" in q
                         else len(raw) if raw else 0) or 0)
            if not count:
                continue
            notes: dict[str, str] = {}
            if isinstance(raw, Mapping):  # duplicated: {item: times delivered}
                ids = [str(k) for k in raw]  # keyed by item_key already (JSON keys)
                notes = {str(k): f"delivered {n} times" for k, n in raw.items()}
            else:
                ids = [item_key(i) for i in raw or []]
            if field_ == "lost" and q.lost_ids_certain is False:
                desc += "; ids are candidates: timed-out dequeues may hold some of them"
            if field_ == "unfinished" and isinstance(q.settle, Mapping):
                desc += "; " + settle_text(q.settle)
            if field_ == "stuck":
                held = q.stuck_for_ms or {}
                notes = {str(k): f"processing under one token for at least {v:.0f} ms"
                         for k, v in held.items()}
            flags = {i: _queue_flags(name, index.get(i, [])) for i in ids[:max_items]}
            groups.append(_group("queue", name, name in anomalies, desc, count, ids, notes,
                                 flags, index, intervals, max_items))
    if fe_result is not None:
        fe = FencingDetails.coerce(fe_result.details)
        anomalies = set(fe.anomalies or [])
        for field_, name, desc in _FENCING_GROUPS:
            found = [x for x in getattr(fe, field_) or [] if isinstance(x, Mapping)]
            if found:
                groups.append(_finding_group(
                    "fencing", name, name in anomalies, desc, len(found), found,
                    _fencing_note, _fencing_ops, index, intervals, max_items))
    if le_result is not None:
        le = LeaseDetails.coerce(le_result.details)
        for field_, name, desc in _LEASE_GROUPS:
            found = [x for x in getattr(le, field_) or [] if isinstance(x, Mapping)]
            if found:
                count = int(getattr(le, f"{field_}_count") or len(found))
                groups.append(_finding_group(
                    "lease", name, True, desc, count, found, _lease_note, _lease_ops,
                    index, intervals, max_items))
    return groups


def _finding_group(checker: str, name: str, anomaly: bool, desc: str, count: int,
                   found: Sequence[Mapping[str, Any]],
                   note: Callable[[str, Mapping[str, Any]], str],
                   ops: Callable[[Mapping[str, Any]], set[int]],
                   index: Mapping[str, list[Call]], intervals: Sequence[FaultInterval],
                   max_items: int) -> TrailGroup:
    """A group of findings that each name an ``item`` (fencing, lease): one trail per
    item, its note from its last finding, its flagged ops from all of them."""
    ids: list[str] = []
    notes: dict[str, str] = {}
    flags: dict[str, set[int]] = {}
    for x in found:
        iid = item_key(x.get("item"))
        if iid not in notes:
            ids.append(iid)
        notes[iid] = note(name, x)
        flags.setdefault(iid, set()).update(ops(x))
    return _group(checker, name, anomaly, desc, count, ids, notes, flags, index, intervals,
                  max_items)


def _lease_ops(x: Mapping[str, Any]) -> set[int]:
    return {i for k in ("first_claim_op", "second_claim_op", "claim_op", "op")
            if isinstance(i := x.get(k), int)}


_LEASE_GROUPS = (
    ("lease_overlap", "lease-overlap",
     "claimed again while the first holder's lease certainly still ran"),
    ("lease_cut_short", "lease-cut-short",
     "the holder's own op was refused as no longer holding the item inside its lease"),
)


def _lease_note(name: str, x: Mapping[str, Any]) -> str:
    if name == "lease-overlap":
        return (f"claim op {x.get('second_claim_op')} (token {x.get('second_token')}) returned "
                f"{x.get('second_returned_s_before_lease_end', 0):.3f} s before the lease of "
                f"claim op {x.get('first_claim_op')} (token {x.get('first_token')}) ended")
    return (f"{x.get('f')} op {x.get('op')} under token {x.get('token')} refused "
            f"({x.get('error')}) {x.get('refused_s_before_lease_end', 0):.3f} s before the "
            f"lease of claim op {x.get('claim_op')} ended")


def _queue_flags(name: str, calls: Sequence[Call]) -> set[int]:
    """The calls that make an item an anomaly: the enqueue of a lost item, the
    deliveries of a duplicated or unexpected one (they bound its log window)."""
    if name in ("stuck", "vanished", "dead-lettered", "unfinished"):
        # the final reads that show it: the item is there, in the wrong state
        return {c.invoke.index for c in calls if c.ok and c.f in DEFAULT_OBSERVE}
    if name in ("lost", "recovered", "unresolved"):
        return {c.invoke.index for c in calls if c.f in DEFAULT_ENQUEUE}
    flagged = {c.invoke.index for c in calls if c.ok and c.f in DEFAULT_CONSUME}
    if name == "failed-then-seen":
        flagged |= {c.invoke.index for c in calls if c.f in DEFAULT_ENQUEUE}
    return flagged


def settle_text(settle: Mapping[str, Any]) -> str:
    """One sentence saying how long the final phase waited for the backlog, and why it stopped."""
    why = {"drained": "the backlog was empty", "stalled": "nothing finished for a stall period",
           "limit": "the limit the measured completion rate gives had passed",
           "cap": "the run's cap on the final phase was reached"}
    limit = settle.get("limit_s")
    limit_text = f"limit {limit:.0f} s" if isinstance(limit, int | float) else "no limit yet"
    return (f"the final phase waited {settle.get('waited_s', 0):.1f} s for a backlog of "
            f"{settle.get('backlog_start', '?')} ({settle.get('completion_rate_hz', 0):.1f} "
            f"items/s, {limit_text}) and stopped because "
            f"{why.get(str(settle.get('stopped')), settle.get('stopped'))}, "
            f"{settle.get('backlog_end', '?')} left")


def _fencing_note(name: str, x: Mapping[str, Any]) -> str:
    if name == "double-completion":
        return f"tokens {x.get('tokens')} both accepted (ops {x.get('ops')})"
    if name == "token-reuse":
        return f"token {x.get('token')} given twice (ops {x.get('ops')})"
    if name == "token-regression":
        return (f"claim op {x.get('op')} got token {x.get('token')} after op "
                f"{x.get('earlier_op')} had returned token {x.get('earlier_token')}")
    return (f"{x.get('f', 'complete')} op {x.get('op')} accepted with token {x.get('token')} "
            f"after claim op {x.get('newer_claim_op')} had returned token {x.get('newer_token')}")


def _fencing_ops(x: Mapping[str, Any]) -> set[int]:
    out: set[int] = set()
    for k in ("op", "earlier_op", "newer_claim_op"):
        if isinstance(x.get(k), int):
            out.add(x[k])
    out.update(i for i in x.get("ops") or [] if isinstance(i, int))
    return out


def _group(checker: str, name: str, anomaly: bool, desc: str, count: int, ids: list[str],
           notes: Mapping[str, str], flags: Mapping[str, set[int]],
           index: Mapping[str, list[Call]], intervals: Sequence[FaultInterval],
           max_items: int) -> TrailGroup:
    trails = tuple(
        _trail(i, notes.get(i, ""), index.get(i, []), flags.get(i, set()), intervals)
        for i in ids[:max_items]
    )
    return TrailGroup(checker, name, anomaly, desc, count, tuple(ids), trails)


def _items_index(history: History) -> dict[str, list[Call]]:
    """Calls by item, keyed by :func:`item_key`, the one spelling results use too."""
    by_item: dict[Hashable, list[Call]] = {}
    for call in history.calls():
        iid = item_id(call.value)
        if iid is None:
            iid = item_id(call.invoke.value)
        try:
            by_item.setdefault(iid, []).append(call)
        except TypeError:  # a value that names no item (a register's [key, [old, new]])
            continue
    by_item.pop(None, None)
    return {item_key(iid): calls for iid, calls in by_item.items()}


def retry_of(call: Call) -> int | None:
    """The op index a call resends (its invocation's ``retry_of``), or None."""
    retry = dict(call.invoke.extra).get("retry_of")
    return retry if isinstance(retry, int) else None


def _trail(item: str, note: str, calls: Sequence[Call], flagged: set[int],
           intervals: Sequence[FaultInterval]) -> ItemTrail:
    steps = []
    for c in calls:
        end = c.end if c.end is not None else (c.complete.time if c.complete else None)
        hi = end if end is not None else c.start
        v = c.value
        token = v.get("token") if isinstance(v, dict) else None
        steps.append(TrailStep(
            index=c.invoke.index,
            process=c.process,
            f=c.f,
            type=c.type.value,
            token=token,
            start_ns=c.start,
            end_ns=end,
            node=c.complete.node if c.complete is not None else None,
            error=None if c.error is None else compact(c.error),
            value=compact(v),
            faults=tuple(faults_between(intervals, c.start, hi)),
            flagged=c.invoke.index in flagged
            or (c.complete is not None and c.complete.index in flagged),
            retry_of=retry_of(c),
        ))
    # The window (for faults and log excerpts) is around the calls that make the
    # anomaly, not the final reads that merely confirm it seconds later.
    focus = [s for s in steps if s.flagged] or steps
    lo = min((s.start_ns for s in focus), default=0)
    hi = max((s.end_ns if s.end_ns is not None else s.start_ns for s in focus), default=0)
    return ItemTrail(item, note, tuple(steps), lo, hi,
                     tuple(faults_between(intervals, lo, hi)) if steps else ())


# --------------------------------------------------------------------------- latency


@dataclass(frozen=True, slots=True)
class LatencySeries:
    """Each completed client call as (invoke time s, latency ms, outcome, f), columnwise."""

    t_s: tuple[float, ...]
    latency_ms: tuple[float, ...]
    outcome: tuple[str, ...]
    f: tuple[str, ...]


def latency_series(history: History) -> LatencySeries:
    """Latency of every client call that completed (``info`` ones at their timeout).

    Calls that never completed have no latency and are left out here; the
    timeline shows them as open bars.
    """
    t, lat, out, fs = [], [], [], []
    for c in history.calls():
        if c.complete is None:
            continue
        t.append(c.start / 1e9)
        lat.append((c.complete.time - c.start) / 1e6)
        out.append(c.type.value)
        fs.append(c.f)
    return LatencySeries(tuple(t), tuple(lat), tuple(out), tuple(fs))


def downsample(series: LatencySeries, *, max_points: int, bins: int = 400) -> LatencySeries:
    """At most about ``max_points`` points, keeping each time bin's extremes and median.

    Random thinning would hide exactly the outliers a reader looks for; per
    bin and outcome we keep the fastest, the median and the slowest call.
    """
    n = len(series.t_s)
    if n <= max_points:
        return series
    t_min = min(series.t_s)
    span = (max(series.t_s) - t_min) or 1.0  # bins over the calls' span, not from 0
    buckets: dict[tuple[int, str], list[int]] = {}
    for i, (t, o) in enumerate(zip(series.t_s, series.outcome, strict=True)):
        buckets.setdefault((min(bins - 1, int((t - t_min) / span * bins)), o), []).append(i)
    keep: set[int] = set()
    for idxs in buckets.values():
        idxs.sort(key=lambda i: series.latency_ms[i])
        keep.update((idxs[0], idxs[len(idxs) // 2], idxs[-1]))
    sel = sorted(keep)
    return LatencySeries(
        tuple(series.t_s[i] for i in sel),
        tuple(series.latency_ms[i] for i in sel),
        tuple(series.outcome[i] for i in sel),
        tuple(series.f[i] for i in sel),
    )


@dataclass(frozen=True, slots=True)
class ThroughputSeries:
    """Completions per second in fixed bins, per outcome."""

    bin_s: float
    t_s: tuple[float, ...]
    per_outcome: Mapping[str, tuple[float, ...]]


def throughput_series(history: History, *, bins_max: int = 300) -> ThroughputSeries:
    """Client completions per second, binned so a long run still has at most ``bins_max`` bins.

    The bins start at the first client operation (:func:`time_axis`): bins
    over the cluster's setup would all be zero, and would make each bin of
    the run itself coarser.
    """
    comps = [op for op in history.client_ops() if not op.is_invoke]
    axis = time_axis(history)
    lo_s = axis.lo_s
    span_s = axis.hi_s - lo_s
    bin_s = _nice_bin(span_s / bins_max) if span_s > 0 else 1.0
    n = max(1, math.ceil(span_s / bin_s))
    counts: dict[str, list[int]] = {k: [0] * n for k in ("ok", "fail", "info")}
    for op in comps:
        counts[op.type.value][max(0, min(n - 1, int((op.time / 1e9 - lo_s) / bin_s)))] += 1
    return ThroughputSeries(
        bin_s,
        tuple(lo_s + i * bin_s for i in range(n)),
        {k: tuple(x / bin_s for x in v) for k, v in counts.items()},
    )


def _nice_bin(raw_s: float) -> float:
    for b in (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if raw_s <= b:
            return float(b)
    return float(math.ceil(raw_s / 600) * 600)


QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)


@dataclass(frozen=True, slots=True)
class QuantileRow:
    """Latency quantiles (ms) of one operation type and outcome."""

    f: str
    outcome: str
    count: int
    quantiles: tuple[tuple[float, float], ...]


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted values: an observed value, never interpolated."""
    if not sorted_values:
        raise ValueError("no values")
    k = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(k, len(sorted_values)) - 1]


def latency_quantiles(series: LatencySeries, qs: Sequence[float] = QUANTILES
                      ) -> list[QuantileRow]:
    """Quantiles per (f, outcome), plus an ``all`` row per f; sorted by f then outcome."""
    groups: dict[tuple[str, str], list[float]] = {}
    for f, o, lat in zip(series.f, series.outcome, series.latency_ms, strict=True):
        groups.setdefault((f, o), []).append(lat)
        groups.setdefault((f, "all"), []).append(lat)
    rows = []
    rank = {"all": 0, "ok": 1, "fail": 2, "info": 3}
    for (f, o), vals in sorted(groups.items(), key=lambda kv: (kv[0][0], rank.get(kv[0][1], 9))):
        vals.sort()
        rows.append(QuantileRow(f, o, len(vals), tuple((q, nearest_rank(vals, q)) for q in qs)))
    return rows


def convergence_view(result: Any) -> dict[str, Any] | None:
    """The convergence checker's result as tables: each node, and where replicas differ.

    ``result`` is the checker's ``Result.to_dict()``; None when the run has
    none, or when it passed (the verdict table says enough then). Each
    difference is one row: node, what (a key, an item, a whole section), the
    reference nodes' value and this node's (for an item, only the fields that
    differ).
    """
    r = checker_result(result, "convergence")
    if r is None or r.valid is True:
        return None
    conv = ConvergenceDetails.coerce(r.details)
    raw_nodes = conv.nodes
    if not isinstance(raw_nodes, Mapping):
        return None
    nodes = [{"node": str(n), "status": str(d.get("status", "?")),
              "applied": compact(d.get("applied"), limit=40) if "applied" in d else "",
              "digest": str(d.get("digest") or "")[:12],
              "note": str(d.get("reason") or (f"compared with {d['compared_with']}"
                                              if d.get("compared_with") else ""))}
             for n, d in raw_nodes.items() if isinstance(d, Mapping)]
    rows = []
    for d in conv.differences or []:
        if not isinstance(d, Mapping):
            continue
        what = str(d.get("kind", "?")) + (f" {d['key']}" if "key" in d else "")
        if d.get("missing"):
            what += " (missing on this node)"
        elif d.get("extra"):
            what += " (only on this node)"
        ref: Any
        mine: Any
        if isinstance(d.get("fields"), Mapping):
            ref = {f: v[0] for f, v in d["fields"].items() if isinstance(v, list) and len(v) == 2}
            mine = {f: v[1] for f, v in d["fields"].items() if isinstance(v, list) and len(v) == 2}
        else:
            ref, mine = d.get("reference"), d.get("value")
        rows.append({"node": str(d.get("node", "?")), "what": what,
                     "reference": compact(ref), "value": compact(mine)})
    counts = conv.difference_count or {}
    return {
        "valid": r.valid,
        "position": compact(conv.position, limit=40),
        "reference": [str(n) for n in conv.reference or []],
        "nodes": nodes,
        "differences": rows,
        "difference_total": sum(int(v) for v in counts.values()) if isinstance(counts, Mapping)
        else len(rows),
        "reason": str(conv.reason or r.error or ""),
    }


def checker_result(raw: Any, name: str) -> Result | None:
    """One checker's result as the report reads it: typed, from a :class:`Result` or its
    ``results.json`` entry (format 1 or 2); None when there is none.

    An entry whose ``valid`` is missing or not a verdict (a hand-edited file, a
    partial entry) still shows its findings, as ``"unknown"``: the report never
    fails on it, and never calls it a pass.
    """
    if isinstance(raw, Result):
        return typed(raw, name)
    if not isinstance(raw, Mapping):
        return None
    v = raw.get("valid")
    if not (v is True or v is False or v == UNKNOWN):
        raw = {**raw, "valid": UNKNOWN}
    return result_from_dict(name, raw)
