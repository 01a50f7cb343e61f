"""Robustness: how the system answered requests its own API calls malformed.

The runner sends them alongside the workload when the system states
:class:`harness.system.TakesHostileInput` (see :mod:`harness.hostile`); each
answer is one of ``refused``, ``accepted``, ``error`` or ``no-answer``, as the
adapter classified it. Two answers are proof of a bug, whatever the faults:

* ``accepted-bad-input``: the system took a request its API documents as
  malformed (a value nested past its limit, an id of the wrong type). Its
  validation has a hole, and what it accepted is now in its state, replicated:
  the cluster carries input it promised never to hold;
* ``error-on-bad-input``: the system itself answered that it failed (a 5xx in
  its own error format, not a proxy's page): a node raised on input it should
  have refused. Where it raised matters less than that it did: a node whose
  parser or validator throws can be made to throw by anyone.

* ``dropped-bad-input``: a node the request went to directly (not through the
  load balancer) took the whole request and closed the connection without an
  answer, while no fault was near it: no fault that hit that node, or that named
  no faulty nodes, was in force from :data:`DROP_GRACE_S` before the request to
  that long after its end (a node being killed resets its connections; a
  restarted one may still be starting). A node that hangs up on input has no way
  to say why, and a client cannot tell it from a crash.

``no-answer`` (a timeout, a refused connection, a proxy's own error page) proves
nothing by itself: it may be a fault in force. A node that a request took down shows in
what follows instead: the availability checker's unserved requests, a cluster
that does not recover, replicas that differ.

The verdict is invalid with those anomalies, valid when every answer was a
refusal or no answer, and unknown when the history holds no malformed request
(the checker is only planned when it does).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.checker.details import RobustnessDetails
from harness.checker.faults import excused_by, fault_intervals
from harness.checker.result import UNKNOWN, Result
from harness.history import History
from harness.hostile import (
    ACCEPTED,
    DROPPED,
    ERROR,
    HOSTILE,
    NO_ANSWER,
    REFUSED,
    answer_of,
    hostile_calls,
)

__all__ = ["ANOMALIES", "has_hostile_requests", "robustness"]

ANOMALIES = {ACCEPTED: "accepted-bad-input", ERROR: "error-on-bad-input",
             DROPPED: "dropped-bad-input"}
DROP_GRACE_S = 2.0
"""How near a fault on the node excuses a hung-up connection (see the module docstring)."""
LISTED = 20
"""At most this many requests are listed per anomaly (all are counted)."""

_NS = 1_000_000_000


def has_hostile_requests(history: History) -> bool:
    """Whether the history holds malformed requests (so the checker applies)."""
    return any(op.process == HOSTILE and op.f == HOSTILE for op in history.nemesis_ops())


def _entry(invoke: Any, completion: Any) -> dict[str, Any]:
    value = invoke.value if isinstance(invoke.value, dict) else {"request": invoke.value}
    err = completion.error if completion is not None else None
    return {"index": invoke.index, "at_s": round(invoke.time / _NS, 3),
            "target": value.get("target"), "why": value.get("why"),
            "request": {k: v for k, v in value.items() if k not in {"target", "why"}},
            "detail": err.get("detail") if isinstance(err, dict) else err}


def robustness(history: History) -> Result:
    """Judge every malformed request's answer (see the module docstring)."""
    calls = hostile_calls(history.nemesis_ops())
    if not calls:
        return Result(UNKNOWN, details=RobustnessDetails.of({
            "reason": "the history holds no malformed request: nothing to judge"}))
    answers: Counter[str] = Counter()
    judged: Counter[str] = Counter()  # after drops near faults count as no answer
    by_why: dict[str, Counter[str]] = {}
    listed: dict[str, list[dict[str, Any]]] = {a: [] for a in ANOMALIES.values()}
    faults, _ = fault_intervals(history)
    grace = int(DROP_GRACE_S * _NS)
    excused_drops = 0
    for invoke, completion in calls:
        answer = answer_of(completion)
        answers[answer] += 1
        if answer == DROPPED:
            target = invoke.value.get("target") if isinstance(invoke.value, dict) else None
            end = completion.time if completion is not None else invoke.time
            if target in (None, "lb") or excused_by(faults, str(target), invoke.time - grace,
                                                     end + grace) is not None:
                excused_drops += 1
                answer = NO_ANSWER  # judged as no answer: a fault may explain it
        judged[answer] += 1
        why = str(invoke.value.get("why", "?")) if isinstance(invoke.value, dict) else "?"
        by_why.setdefault(why, Counter())[answer] += 1
        anomaly = ANOMALIES.get(answer)
        if anomaly is not None and len(listed[anomaly]) < LISTED:
            listed[anomaly].append(_entry(invoke, completion))
    details: dict[str, Any] = {
        "requests": len(calls),
        "answers": {a: answers.get(a, 0) for a in (REFUSED, ACCEPTED, ERROR, DROPPED,
                                                    NO_ANSWER)},
        "drops_near_faults": excused_drops,
        "anomalous_count": sum(judged.get(a, 0) for a in ANOMALIES),
        "by_why": {w: dict(c) for w, c in sorted(by_why.items())},
    }
    anomalies = sorted(ANOMALIES[a] for a in ANOMALIES if judged.get(a))
    for a in ANOMALIES.values():
        if listed[a]:
            details[a.replace("-", "_")] = listed[a]
    if anomalies:
        details["anomalies"] = anomalies
        return Result(False, details=RobustnessDetails.of(details))
    return Result(True, details=RobustnessDetails.of(details))
