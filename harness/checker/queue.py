"""Total-queue accounting: was anything lost, duplicated, or made up?

This is Jepsen's ``total-queue`` checker, made honest about indeterminate
operations and about work that was simply not finished yet. Every item is
identified by its id (``value["id"]`` when the value is a map, else the value
itself). Over the whole history:

* **attempted**: every enqueue invoked; **acked**: enqueues that returned ok;
  **failed**: enqueues that definitely did not happen.
* **delivered**: items handed out by an ok consuming op (``dequeue``, an ok
  ``complete`` of a work item, or each element of an ok ``drain``); an ok
  ``read-item`` observation in a final state also counts as done.

Safety and progress are kept apart, because a backlog the system had no time
to finish is not a loss, and calling it one is the worst false alarm a tester
can raise:

* **lost** (safety): acked, never delivered nor read in a final state, and
  *absent*. When the history has final reads (``read-item``), absent means
  every final read of the item that answered said "not found" (state
  ``None``); an item a read showed present is never lost. Histories without
  final reads (Jepsen's drain style) keep total-queue's rule: acked and never
  delivered is lost. An indeterminate consuming op could have taken an item
  without our knowing which: when it names its item (``complete`` does) that
  item is *unresolved*; when it does not (a timed-out ``dequeue``), it may
  explain one missing item, so missing items up to the number of such ops
  are *unresolved* too, and only the rest are surely lost.
* **unfinished** (progress): present but not in a final state when the run
  ended: ``queued``, or ``processing`` without proof that its lease is long
  gone. The system may simply have been slow; the verdict is ``unknown``,
  with the counts and the reason.
* **stuck** (the takeover promise broken): read ``processing`` with the same
  fencing token by two final reads more than ``stuck_after_ms`` apart (the
  lease plus a grace the system states) and never finished: its lease ran out
  long ago and nobody took it over. Judged only when ``stuck_after_ms`` is
  given and the item's token is known; otherwise such an item is unfinished.
* **vanished**: a final read showed the item present and a later one said
  "not found": an acknowledged item disappeared (safety), reported apart
  from lost so that no item a read showed is ever called lost.
* **dead-lettered**: read in a terminal state the workload does not accept
  (``dead`` when only ``completed`` counts): the system gave the item up.
* **unexpected**: delivered but never attempted.
* **duplicated**: delivered more than once. A work queue may redeliver by
  design (at-least-once), so ``allow_duplicates`` decides whether this is an
  anomaly; it is always reported.
* **recovered**: enqueues that were indeterminate but later seen (fine), and
  **failed-then-seen**: enqueues reported as failed yet delivered, an anomaly
  of its own (the system told the client something false).
* **unresolved**: items whose fate the history cannot prove (a failed or
  missing final read, an indeterminate consumer); they make the verdict
  ``unknown``, never a false "lost".

The verdict is invalid for lost, unexpected, failed-then-seen, duplicated
(unless allowed), vanished, stuck and dead-lettered; else unknown for unfinished or
unresolved items; else valid. ``anomalies`` lists the invalid kinds and
``progress`` the unknown ones. When the workload's final phase recorded how
it waited for the backlog (a ``settle`` op of the harness), that record is
included as ``settle``, so a report can say how long the system was given.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.checker.details import QueueDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import Call, History

__all__ = ["PENDING_STATES", "SAFETY_ANOMALIES", "item_id", "item_key", "queue"]

DEFAULT_ENQUEUE = ("enqueue",)
DEFAULT_CONSUME = ("dequeue", "complete")
DEFAULT_DRAIN = ("drain",)
DEFAULT_OBSERVE = ("read-item",)
FINAL_STATES = frozenset({"completed", "dead"})
#: states of an item that is present and not yet done: waiting, or held under a lease
PENDING_STATES = frozenset({"queued", "processing"})
#: anomalies that break a safety promise (something acknowledged was lost or
#: made up); the others (stuck, dead-lettered) break a progress promise
SAFETY_ANOMALIES = frozenset({"lost", "vanished", "unexpected", "failed-then-seen",
                              "duplicated"})
MAX_LISTED = 1000  # cap on ids listed per category; counts are always exact


def item_id(value: Any) -> Hashable:
    """The identity of a queue item in a history value."""
    v = value.get("id") if isinstance(value, dict) else value
    if isinstance(v, list):
        return tuple(v)
    return v


def item_key(iid: Any) -> str:
    """The one text spelling of an item id, in results and reports alike.

    A string id is itself; any other id (a number, a list from JSON, a tuple
    from :func:`item_id`) is its compact JSON, tuples written as lists. JSON
    object keys must be strings, so results that key by item (``duplicated``,
    ``stuck_for_ms``) use this, and the report indexes calls by it: one
    spelling, so a result read back from ``results.json`` finds its calls.
    (The string ``"1"`` and the number ``1`` share a spelling; no system we
    know mixes the two.)
    """
    if isinstance(iid, str):
        return iid
    try:
        return json.dumps(iid, separators=(",", ":"), sort_keys=True, default=_listed_default)
    except (TypeError, ValueError):
        return repr(iid)


def _listed_default(v: Any) -> Any:
    if isinstance(v, tuple | set | frozenset):
        return list(v)
    raise TypeError(f"{type(v).__name__} is not JSON")


def _token(value: Any) -> Any:
    return value.get("token") if isinstance(value, dict) else None


def _ids_of_drain(value: Any) -> Iterable[Hashable]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"a drain's value must be a list of items, got {value!r}")
    return (item_id(v) for v in value)


def _listed(ids: Iterable[Hashable]) -> list[Any]:
    out = sorted(ids, key=lambda x: (type(x).__name__, str(x)))
    return out[:MAX_LISTED]


@dataclass
class _Reads:
    """What the final reads of one item showed, in history order."""

    present: bool = False  # some read that answered saw the item
    absent: bool = False  # some read that answered said "not found"
    failed: bool = False  # some read did not answer
    last_state: Any = None  # the state the last answering read saw
    #: (token, first completion ns, last invocation ns) of each unbroken run of
    #: ``processing`` reads with one token, the current run last
    held: list[list[Any]] = field(default_factory=list)

    def saw(self, call: Call) -> None:
        v = call.value
        state = v.get("state") if isinstance(v, dict) else None
        if state is None:
            self.absent = True
            self.last_state = None
            return
        self.present = True
        self.last_state = state
        token = _token(v)
        if state == "processing" and token is not None:
            if self.held and self.held[-1][0] == token:
                self.held[-1][2] = call.invoke.time
                return
            completion = call.complete.time if call.complete is not None else call.invoke.time
            self.held.append([token, completion, call.invoke.time])
        elif self.held:
            self.held.append([None, 0, 0])  # a different state breaks the run

    def stuck_for_ns(self) -> int:
        """How long the item provably stayed ``processing`` under its current token."""
        if self.last_state != "processing" or not self.held or self.held[-1][0] is None:
            return 0
        _, first_done, last_invoked = self.held[-1]
        return max(0, int(last_invoked) - int(first_done))


def _settle_record(history: History) -> Any:
    """The last ``settle`` record a final phase left in the history, if any."""
    found = None
    for op in history.nemesis_ops():
        if op.f == "settle":
            found = op.value
    return found


def _delivery_promise(history: History) -> str | None:
    """The delivery the system promised, as the runner recorded it (``promises`` op)."""
    for op in history.nemesis_ops():
        if op.f == "promises" and isinstance(op.value, dict):
            d = op.value.get("delivery")
            return str(d) if isinstance(d, str) else None
    return None


def queue(
    history: History,
    *,
    allow_duplicates: bool = False,
    enqueue_fs: Collection[str] = DEFAULT_ENQUEUE,
    consume_fs: Collection[str] = DEFAULT_CONSUME,
    drain_fs: Collection[str] = DEFAULT_DRAIN,
    observe_fs: Collection[str] = DEFAULT_OBSERVE,
    final_states: Collection[str] = FINAL_STATES,
    stuck_after_ms: float | None = None,
) -> Result:
    """Check a queue history: lost, duplicated, unexpected (safety); unfinished, stuck.

    A history whose system promised at-least-once delivery (the runner's
    ``promises`` op, ``{"delivery": "at-least-once"}``, from the adapter's
    ``delivery``) allows duplicates: they are counted and listed, not anomalies.
    """
    settle = _settle_record(history)
    if not allow_duplicates and _delivery_promise(history) == "at-least-once":
        allow_duplicates = True
    if stuck_after_ms is None and isinstance(settle, dict):
        # the bound the run itself used, so re-checking a run folder judges alike
        recorded = settle.get("stuck_after_ms")
        if isinstance(recorded, int | float) and not isinstance(recorded, bool):
            stuck_after_ms = float(recorded)
    if stuck_after_ms is not None and not stuck_after_ms > 0:
        raise ValueError(f"stuck_after_ms must be positive, not {stuck_after_ms!r}")
    attempted: set[Hashable] = set()
    acked: set[Hashable] = set()
    failed: set[Hashable] = set()
    maybe: set[Hashable] = set()  # enqueues of the id that ended indeterminate
    delivered: Counter[Hashable] = Counter()
    observed: set[Hashable] = set()  # read in a final state
    reads: dict[Hashable, _Reads] = {}
    pending_named: set[Hashable] = set()  # items an indeterminate consume op names
    anonymous_pending = 0  # indeterminate dequeues that could have taken anything
    unbounded_pending = False  # an indeterminate drain: could have taken any number
    delivered_tokens: set[tuple[Hashable, Any]] = set()
    enqueue_calls = consume_calls = 0

    for call in history.calls():
        f = call.f
        if f in enqueue_fs:
            enqueue_calls += 1
            iid = item_id(call.value)
            attempted.add(iid)
            if call.ok:
                acked.add(iid)
            elif call.failed:
                failed.add(iid)
            else:
                maybe.add(iid)
        elif f in consume_fs:
            consume_calls += 1
            if call.ok:
                iid = item_id(call.value)
                if iid is not None:
                    token = _token(call.value)
                    # A retried completion with the same token is one delivery, not two.
                    if token is None or (iid, token) not in delivered_tokens:
                        delivered[iid] += 1
                        if token is not None:
                            delivered_tokens.add((iid, token))
            elif call.indeterminate:
                iid = item_id(call.invoke.value)
                if iid is not None:
                    pending_named.add(iid)
                else:
                    anonymous_pending += 1
        elif f in drain_fs:
            consume_calls += 1
            if call.ok:
                for iid in _ids_of_drain(call.value):
                    delivered[iid] += 1
            elif call.indeterminate:
                unbounded_pending = True
        elif f in observe_fs:
            iid = item_id(call.invoke.value)
            if iid is None:
                continue
            item_reads = reads.setdefault(iid, _Reads())
            if call.ok:
                item_reads.saw(call)
                v = call.value
                if isinstance(v, dict) and v.get("state") in final_states:
                    observed.add(iid)
            else:
                # a final read that did not answer proves nothing either way
                item_reads.failed = True

    # Several enqueues of one id (a resend by a system without request ids): the
    # item failed only if every attempt definitely failed; a resend refused
    # because the first attempt had already enqueued it says nothing of that one.
    failed -= acked | maybe
    seen = set(delivered) | observed
    not_done = acked - seen
    stuck: set[Hashable] = set()
    unfinished: set[Hashable] = set()
    dead: set[Hashable] = set()
    unresolved: set[Hashable] = set()
    missing: set[Hashable] = set()
    stuck_ns = None if stuck_after_ms is None else int(stuck_after_ms * 1e6)
    stuck_for_ms: dict[Hashable, float] = {}
    vanished: set[Hashable] = set()
    for iid in not_done:
        r: _Reads | None = reads.get(iid)
        if r is not None and r.present:
            if r.last_state in PENDING_STATES:
                held_ns = r.stuck_for_ns()
                if stuck_ns is not None and held_ns > stuck_ns:
                    stuck.add(iid)
                    stuck_for_ms[iid] = round(held_ns / 1e6, 1)
                else:
                    unfinished.add(iid)
            elif r.last_state is None:
                # seen present, then "not found" by a later read: not "lost" (a read
                # showed it), but an acknowledged item that disappeared
                vanished.add(iid)
            else:
                dead.add(iid)
        elif r is not None and r.absent:
            missing.add(iid)  # every read that answered said "not found"
        elif r is not None or reads:
            # read but never answered, or never read in a history that has final reads
            unresolved.add(iid)
        else:
            missing.add(iid)  # no final reads at all: total-queue's rule
    named = missing & pending_named
    unresolved |= named
    missing -= named
    if unbounded_pending:
        unresolved |= missing
        missing = set()
    elif anonymous_pending and missing and anonymous_pending >= len(missing):
        # Any `anonymous_pending` of the missing items may have gone to those ops;
        # which ones we cannot tell, so the count is certain and the ids are not.
        unresolved |= missing
        missing = set()
    lost_count = len(missing) - (min(anonymous_pending, len(missing)) if missing else 0)
    unexpected = set(delivered) - attempted
    unexpected.discard(None)
    duplicated = {i: n for i, n in delivered.items() if n > 1}
    recovered = seen & (attempted - acked - failed)
    failed_seen = seen & failed
    pending_states: Counter[str] = Counter(
        str(reads[i].last_state) for i in unfinished)

    details: dict[str, Any] = {
        "attempt_count": len(attempted),
        "acknowledged_count": len(acked),
        "failed_count": len(failed),
        "delivered_count": sum(delivered.values()),
        "distinct_delivered_count": len(delivered),
        "enqueue_calls": enqueue_calls,
        "consume_calls": consume_calls,
        "lost_count": lost_count,
        "lost": _listed(missing),
        "lost_ids_certain": anonymous_pending == 0,
        "unresolved_count": len(unresolved),
        "unresolved": _listed(unresolved),
        "indeterminate_consumes": anonymous_pending + len(pending_named),
        "unexpected_count": len(unexpected),
        "unexpected": _listed(unexpected),
        "duplicated_count": len(duplicated),
        "duplicated": {item_key(k): v for k, v in list(duplicated.items())[:MAX_LISTED]},
        "recovered_count": len(recovered),
        "recovered": _listed(recovered),
        "failed_then_seen_count": len(failed_seen),
        "failed_then_seen": _listed(failed_seen),
        "unfinished_count": len(unfinished),
        "unfinished": _listed(unfinished),
        "unfinished_states": dict(sorted(pending_states.items())),
        "stuck_count": len(stuck),
        "stuck": _listed(stuck),
        "stuck_for_ms": {item_key(k): stuck_for_ms[k] for k in _listed(stuck)},
        "stuck_after_ms": stuck_after_ms,
        "vanished_count": len(vanished),
        "vanished": _listed(vanished),
        "dead_lettered_count": len(dead),
        "dead_lettered": _listed(dead),
        "allow_duplicates": allow_duplicates,
    }
    delivery = _delivery_promise(history)
    if delivery is not None:
        details["delivery"] = delivery
    if settle is not None:
        details["settle"] = settle
    anomalies = []
    if lost_count:
        anomalies.append("lost")
    if unexpected:
        anomalies.append("unexpected")
    if failed_seen:
        anomalies.append("failed-then-seen")
    if duplicated and not allow_duplicates:
        anomalies.append("duplicated")
    if vanished:
        anomalies.append("vanished")
    if stuck:
        anomalies.append("stuck")
    if dead:
        anomalies.append("dead-lettered")
    details["anomalies"] = anomalies
    progress = []
    if unfinished:
        progress.append("unfinished")
    if unresolved:
        progress.append("unresolved")
    details["progress"] = progress
    if anomalies:
        return Result(False, checker="queue", details=QueueDetails.of(details))
    if unfinished or unresolved:
        reasons = []
        if unfinished:
            states = ", ".join(f"{n} {s}" for s, n in sorted(pending_states.items()))
            reasons.append(f"{len(unfinished)} acknowledged items not finished when the run "
                           f"ended ({states}): present, so not lost; the system may need "
                           f"longer")
        if unresolved:
            reasons.append(f"{len(unresolved)} items whose fate the history cannot prove")
        details["reason"] = "; ".join(reasons)
        return Result(UNKNOWN, checker="queue", details=QueueDetails.of(details))
    return Result(True, checker="queue", details=QueueDetails.of(details))


def calls_by_item(
    history: History, fs: Collection[str] | None = None
) -> dict[Hashable, list[Call]]:
    """Every call that names an item, grouped by item id (for trails in reports)."""
    out: dict[Hashable, list[Call]] = {}
    for call in history.calls():
        if fs is not None and call.f not in fs:
            continue
        iid = item_id(call.value)
        if iid is None:
            iid = item_id(call.invoke.value)
        if iid is not None:
            out.setdefault(iid, []).append(call)
    return out
