"""Idempotency: was each resend of an acknowledged request answered as the first was?

A system that promises request-id idempotency keeps, per request id, the
result of the command it applied, and answers a resend from that table
instead of applying it again. The driver resends a small fraction of
acknowledged operations with their request id (see
:func:`harness.runner.drive_worker`), exactly what the system sees when an
answer is lost on its way. Such a resend must be answered as the first
attempt was. This checker reads the raw history (the logical one drops
resends, see :mod:`harness.logical`) and reports:

* ``resend-answered-differently``: the resend was acknowledged with another
  value than the first attempt (a claim answered with another item);
* ``resend-reapplied``: the resend was refused *on the merits*, with one of
  the refusals the system states (:class:`harness.system.PromisesAvailability`,
  recorded in the history's ``promises`` op): a CAS whose expected value is
  gone, an enqueue of an id that exists, a completion of an item no longer
  processing. Only a command judged anew draws such an answer: the table did
  not hold the first result. Both are safety anomalies (invalid).

A resend that timed out, or was turned away without being looked at (a
definite "no leader"), proves nothing either way and is only counted. An
effect applied twice whose answer looks the same (a write re-applied) is left
to the other checkers, which see it as an effect no logical operation explains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checker.availability import promise_of
from harness.checker.details import IdempotencyDetails
from harness.checker.result import Result
from harness.history import History, OpType
from harness.logical import resends

__all__ = ["LISTED", "has_resends", "idempotency"]

LISTED = 20
"""At most this many anomalous resends are listed (all are counted)."""


def has_resends(history: History) -> bool:
    """Whether the history has resends of acknowledged requests to judge."""
    return bool(resends(history))


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("error", error))
    return str(error)


def idempotency(history: History) -> Result:
    """Judge every resend of an acknowledged request (see the module docstring)."""
    promise = promise_of(history.nemesis_ops()) or {}
    raw = promise.get("refusals") if isinstance(promise, Mapping) else None
    refusals = {str(f): {str(e) for e in errs} for f, errs in dict(raw or {}).items()
                if isinstance(errs, list | tuple)} if isinstance(raw, Mapping) else {}
    found: list[dict[str, Any]] = []
    counts = {"resends": 0, "same_answer": 0, "no_evidence": 0}
    kinds: set[str] = set()
    for head, again in resends(history):
        assert head.complete is not None
        for r in again:
            counts["resends"] += 1
            comp = r.complete
            kind = None
            if comp is not None and comp.type is OpType.OK:
                if comp.value == head.complete.value:
                    counts["same_answer"] += 1
                    continue
                kind = "resend-answered-differently"
            elif comp is not None and comp.type is OpType.FAIL \
                    and _error_text(comp.error) in refusals.get(head.f, ()):
                kind = "resend-reapplied"
            if kind is None:
                counts["no_evidence"] += 1
                continue
            kinds.add(kind)
            if len(found) < LISTED:
                assert comp is not None
                found.append({"anomaly": kind, "f": head.f, "process": head.process,
                              "first": head.invoke.index, "resend": r.invoke.index,
                              "request": head.invoke.value, "first_answer": head.complete.value,
                              "resend_answer": comp.value if comp.type is OpType.OK
                              else _error_text(comp.error)})
    n = counts["resends"] - counts["same_answer"] - counts["no_evidence"]
    details: dict[str, Any] = {**counts, "anomalous_count": n, "anomalous": found}
    if not refusals:
        details["note"] = ("the history states no refusals on the merits: only resends "
                           "answered with another value are judged")
    if n:
        details["anomalies"] = sorted(kinds)
        return Result(False, details=IdempotencyDetails.of(details))
    return Result(True, details=IdempotencyDetails.of(details))
