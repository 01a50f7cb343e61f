"""Retries of one logical operation, and the history checkers judge them in.

A real client resends an operation whose outcome it could not learn (a
timeout, a dropped connection), with the same request id or idempotency key,
so that the system applies it at most once. That path (request-id
deduplication) is where exactly-once bugs live, and a harness whose clients
never resend cannot see them.

In the history each attempt is its own call (Jepsen's rule: after an
indeterminate outcome the worker goes on as a new process). A retry's
invocation carries two extra fields:

* ``retry_of``: the index of the logical operation's *first* invocation;
* ``idempotency``: what the system promises for a resend, as its client
  states it (:class:`harness.client.Retryable`): ``"request-id"`` (a resend
  with the same key is applied at most once and answered as the first was)
  or ``"none"`` (each resend is an independent operation).

:func:`logical_history` turns the attempts of each logical operation of a
``request-id`` system into one call: the first attempt's invocation, the
last attempt's completion. That is exactly the promise: the operation took
effect at most once, somewhere between the first send and the last answer.
An ok answer to a resend speaks for the whole operation; a definite refusal
of a resend does not: a node may refuse it before consulting its request-id
table at all (refsys answers "no leader" that way), which says nothing of
the first attempt, so the folded call is then indeterminate. A write applied
twice, or an item enqueued twice, by a broken deduplication is then an
anomaly the ordinary checkers find. Retries of a system with no idempotency
stay separate operations: their double effects are the system's honest
behaviour, reported (as duplicates) rather than merged away.

A *resend* is a retry of an operation whose first attempt was acknowledged
(the driver sends one now and then, as a client whose answer was lost would:
the system cannot tell the two apart). For a ``request-id`` system it must
change nothing, so the logical call is the first attempt alone, and the
resend's events are dropped: a resend the system applied again shows as an
effect no logical operation explains (a write reappearing, a second item),
which the ordinary checkers catch, and :mod:`harness.checker.idempotency`
judges the resend's own answer.
"""

from __future__ import annotations

from typing import Any

from harness.history import Call, History, Op, OpType

__all__ = ["IDEMPOTENCY", "extra", "has_merged_retries", "logical_history", "resends"]

#: what a system promises for a resend with the same request id
IDEMPOTENCY = ("request-id", "none")


def extra(op: Op, key: str) -> Any:
    """The value of one extra field of an op (None when absent)."""
    for k, v in op.extra:
        if k == key:
            return v
    return None


def _merged_retries(history: History) -> dict[int, list[int]]:
    """First invocation's index -> the invocation indices of its mergeable retries."""
    out: dict[int, list[int]] = {}
    for call in history.calls():
        first = extra(call.invoke, "retry_of")
        if isinstance(first, int) and not isinstance(first, bool) \
                and extra(call.invoke, "idempotency") == "request-id":
            out.setdefault(first, []).append(call.invoke.index)
    return out


def resends(history: History) -> list[tuple[Call, list[Call]]]:
    """Each acknowledged call of a ``request-id`` system with its resends (same f and
    value, marked ``retry_of`` it), in invocation order."""
    calls_by_invoke = {c.invoke.index: c for c in history.calls()}
    out: list[tuple[Call, list[Call]]] = []
    for first, retries in sorted(_merged_retries(history).items()):
        head = calls_by_invoke.get(first)
        if head is None or head.complete is None or head.complete.type is not OpType.OK:
            continue
        again = [calls_by_invoke[i] for i in retries if i in calls_by_invoke
                 and calls_by_invoke[i].f == head.f
                 and calls_by_invoke[i].invoke.value == head.invoke.value]
        if again:
            out.append((head, again))
    return out


def has_merged_retries(history: History) -> bool:
    """Whether :func:`logical_history` would change anything."""
    return bool(_merged_retries(history))


def logical_history(history: History) -> History:
    """The history with each request-id system's retries folded into one call.

    The logical call keeps the first attempt's invocation (its process, time,
    value) and ends where the last attempt ended, with that attempt's type,
    value and error; the other attempts' events are dropped. A retry whose
    first attempt is not in the history (a cut history) is left as it is.
    """
    groups = _merged_retries(history)
    if not groups:
        return history
    calls_by_invoke = {c.invoke.index: c for c in history.calls()}
    drop: set[int] = set()
    replace: dict[int, Op] = {}  # index of the event to replace -> its new form
    for first, retries in groups.items():
        head = calls_by_invoke.get(first)
        if head is None:
            continue
        # a retry resends the same operation after an indeterminate attempt; an
        # extra field claiming otherwise (a damaged or foreign history) is ignored
        attempts = [head] + [calls_by_invoke[i] for i in retries
                             if i in calls_by_invoke and calls_by_invoke[i].f == head.f
                             and calls_by_invoke[i].invoke.value == head.invoke.value]
        if len(attempts) > 1 and head.complete is not None \
                and head.complete.type is OpType.OK:
            # resends of an acknowledged operation: the first attempt is the call
            for a in attempts[1:]:
                drop.add(a.invoke.index)
                if a.complete is not None:
                    drop.add(a.complete.index)
            continue
        if len(attempts) == 1 or any(not a.indeterminate for a in attempts[:-1]):
            continue
        last = attempts[-1]
        for a in attempts[:-1]:
            if a.complete is not None:
                drop.add(a.complete.index)
        for a in attempts[1:]:
            drop.add(a.invoke.index)
        if last.complete is None:
            continue  # the last attempt never ended: the logical call never did either
        end = last.complete
        end_type, error = end.type, end.error
        if end_type is OpType.FAIL:
            # the resend was refused; the first attempt's fate is still unknown
            end_type = OpType.INFO
            error = f"resend refused ({end.error}); an earlier attempt may have taken effect"
        replace[end.index] = Op(end.index, end.time, end_type, head.invoke.process, end.f,
                                end.value, error, end.node,
                                tuple((k, v) for k, v in end.extra
                                      if k not in ("retry_of", "idempotency")))
    return History(replace.get(op.index, op) for op in history.ops if op.index not in drop)
