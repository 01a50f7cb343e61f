"""Total-queue accounting: was anything lost, duplicated, or made up?

This is Jepsen's ``total-queue`` checker, made honest about indeterminate
operations. Every item is identified by its id (``value["id"]`` when the value
is a map, else the value itself). Over the whole history:

* **attempted**: every enqueue invoked; **acked**: enqueues that returned ok;
  **failed**: enqueues that definitely did not happen.
* **delivered**: items handed out by an ok consuming op (``dequeue``, an ok
  ``complete`` of a work item, or each element of an ok ``drain``); an ok
  ``read-item`` observation in a final state also counts as seen.
* **lost**: acked but never delivered nor observed. An indeterminate consuming
  op could have taken an item without our knowing which: when it names its
  item (``complete`` does) that item is *unresolved*, not lost; when it does
  not (a timed-out ``dequeue``), it may explain one missing item, so missing
  items up to the number of such ops are *unresolved* too, and only the rest
  are surely lost. Unresolved items make the verdict ``unknown``, never a
  false "lost".
* **unexpected**: delivered but never attempted.
* **duplicated**: delivered more than once. A work queue may redeliver by
  design (at-least-once), so ``allow_duplicates`` decides whether this is an
  anomaly; it is always reported.
* **recovered**: enqueues that were indeterminate but later seen (fine), and
  **failed-then-seen**: enqueues reported as failed yet delivered, an anomaly
  of its own (the system told the client something false).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable
from typing import Any

from harness.checker.result import UNKNOWN, Result
from harness.history import Call, History

__all__ = ["item_id", "queue"]

DEFAULT_ENQUEUE = ("enqueue",)
DEFAULT_CONSUME = ("dequeue", "complete")
DEFAULT_DRAIN = ("drain",)
DEFAULT_OBSERVE = ("read-item",)
FINAL_STATES = frozenset({"completed", "dead"})
MAX_LISTED = 1000  # cap on ids listed per category; counts are always exact


def item_id(value: Any) -> Hashable:
    """The identity of a queue item in a history value."""
    v = value.get("id") if isinstance(value, dict) else value
    if isinstance(v, list):
        return tuple(v)
    return v


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


def queue(
    history: History,
    *,
    allow_duplicates: bool = False,
    enqueue_fs: Collection[str] = DEFAULT_ENQUEUE,
    consume_fs: Collection[str] = DEFAULT_CONSUME,
    drain_fs: Collection[str] = DEFAULT_DRAIN,
    observe_fs: Collection[str] = DEFAULT_OBSERVE,
    final_states: Collection[str] = FINAL_STATES,
) -> Result:
    """Check a queue history for lost, duplicated, unexpected and recovered items."""
    attempted: set[Hashable] = set()
    acked: set[Hashable] = set()
    failed: set[Hashable] = set()
    delivered: Counter[Hashable] = Counter()
    observed: set[Hashable] = set()
    pending_named: set[Hashable] = set()  # items an indeterminate consume op names
    anonymous_pending = 0  # indeterminate dequeues that could have taken anything
    unbounded_pending = False  # an indeterminate drain: could have taken any number
    delivered_tokens: set[tuple[Hashable, Any]] = set()
    unread: set[Hashable] = set()  # items whose final read failed
    read_ok: set[Hashable] = set()  # items some final read answered
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
            v = call.value
            if call.ok:
                read_ok.add(item_id(call.invoke.value))
                if isinstance(v, dict) and v.get("state") in final_states:
                    observed.add(item_id(v))
            else:
                # a final read that did not answer proves nothing either way
                iid = item_id(call.invoke.value)
                if iid is not None:
                    unread.add(iid)

    seen = set(delivered) | observed
    missing = acked - seen
    unresolved = missing & (pending_named | (unread - read_ok))
    missing -= unresolved
    if unbounded_pending:
        unresolved |= missing
        missing = set()
    elif anonymous_pending and missing:
        # Any `anonymous_pending` of the missing items may have gone to those ops;
        # which ones we cannot tell, so the count is certain and the ids are not.
        explained = min(anonymous_pending, len(missing))
        if explained == len(missing):
            unresolved |= missing
            missing = set()
    lost_count = len(missing) - (min(anonymous_pending, len(missing)) if missing else 0)
    unexpected = set(delivered) - attempted
    unexpected.discard(None)
    duplicated = {i: n for i, n in delivered.items() if n > 1}
    recovered = seen & (attempted - acked - failed)
    failed_seen = seen & failed

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
        "duplicated": {str(k): v for k, v in list(duplicated.items())[:MAX_LISTED]},
        "recovered_count": len(recovered),
        "recovered": _listed(recovered),
        "failed_then_seen_count": len(failed_seen),
        "failed_then_seen": _listed(failed_seen),
        "allow_duplicates": allow_duplicates,
    }
    anomalies = []
    if lost_count:
        anomalies.append("lost")
    if unexpected:
        anomalies.append("unexpected")
    if failed_seen:
        anomalies.append("failed-then-seen")
    if duplicated and not allow_duplicates:
        anomalies.append("duplicated")
    details["anomalies"] = anomalies
    if anomalies:
        return Result(False, checker="queue", details=details)
    if unresolved:
        return Result(UNKNOWN, checker="queue", details=details)
    return Result(True, checker="queue", details=details)


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
