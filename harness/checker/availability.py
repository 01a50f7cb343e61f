"""Availability: did a healthy cluster serve the requests made while no fault was in force?

Safety checkers pass a system that refuses everything: a definite failure
changes nothing, so nothing is lost, duplicated or stale. A cluster that turns
requests away while every node is up and connected (a follower that rejects
what it should forward, a leader that keeps its office after losing its
quorum, a background task that died) breaks a promise all the same, one that
only the system can make: :class:`harness.system.PromisesAvailability`. The
runner records that promise at the start of a run as the nemesis op
:data:`PROMISES` (``{"availability": {"refusals": {f: [error, ...]},
"recovery_grace_ms": g}}``), so ``harness check`` of a saved history judges it
the same way.

What is judged: the client calls made inside a *quiet window* (invoked and
completed in it). The windows are read from the history's nemesis ops:

* the run's start is quiet (the runner starts only once the cluster is ready);
* a ``start-*`` op ends a window; the window after a fault opens only once
  every fault has stopped and the system's recovery grace has passed (an
  election, a restarted node's start and catch-up);
* ``recovered`` (the runner saw every node healthy and, behind a load
  balancer, every server up) opens one at once; ``not-recovered`` closes it.

A call is *served* when it is ``ok``, or a ``fail`` whose error is one of the
system's refusals on the merits for that ``f`` (a CAS on another value, a
stale token). Everything else (a definite "no leader", a timeout, a reset
connection) was not served.

A starved machine makes a correct cluster miss requests too: its nodes'
heartbeats run late, elections follow, and for a second or two nothing is
served. What tells a broken cluster from a starved one is persistence, so the
quiet time is cut into seconds: a second (with at least :data:`MIN_CALLS`
judged calls) is *bad* when at least :data:`MAX_UNSERVED_FRACTION` of its calls
were not served. The checker reports the progress finding ``unavailable``
when at least :data:`MIN_BAD_SECONDS` seconds, and at least half of the judged
seconds, were bad: the verdict is then **unknown** with that finding named,
never invalid, because a finite run proves no liveness violation. Otherwise it
is valid, with the counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from harness.checker.details import AvailabilityDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import History, OpType

__all__ = ["MAX_UNSERVED_FRACTION", "MIN_BAD_SECONDS", "MIN_CALLS", "PROMISES", "availability",
           "error_text",
           "has_availability_promise", "promise_of", "quiet_windows"]

PROMISES = "promises"
"""The ``f`` of the nemesis op in which the runner records what the system promises."""

MIN_CALLS = 2
"""A second of quiet time with fewer judged calls is not judged."""

MAX_UNSERVED_FRACTION = 0.2
"""A judged second is bad when at least this fraction of its calls were not
served. A correct cluster misses a request now and then (an fsync stall, a GC
pause past the client's timeout); one that turns away one in five is not."""

MIN_BAD_SECONDS = 3
"""At least this many bad seconds, and at least half of the judged ones, for a
finding: an election storm on a starved machine passes in a second or two."""

LISTED = 20
"""At most this many unserved calls are listed (all are counted)."""

_NS = 1_000_000_000


def promise_of(history: Iterable[Any]) -> Mapping[str, Any] | None:
    """The availability promise recorded in the history, if any."""
    for op in history:
        if op.f == PROMISES and not op.is_client and isinstance(op.value, Mapping):
            p = op.value.get("availability")
            if isinstance(p, Mapping):
                return p
    return None


def has_availability_promise(history: History) -> bool:
    """Whether the history states an availability promise (so the checker applies)."""
    return promise_of(history.nemesis_ops()) is not None


def quiet_windows(history: History, grace_ns: int) -> list[tuple[int, int]]:
    """The quiet windows ``(start, end)`` in history time (ns); the last may end at
    the largest int (the run ended quiet). See the module docstring."""
    first_client = next((op.time for op in history.client_ops()), None)
    if first_client is None:
        return []
    end_of_time = 2**63 - 1
    windows: list[tuple[int, int]] = []
    active = 0
    opens: int | None = first_client  # quiet from this time on (None: not quiet)

    def close(at: int) -> None:
        nonlocal opens
        if opens is not None and at > opens:
            windows.append((opens, at))
        opens = None

    for op in history.nemesis_ops():
        f = str(op.f)
        if f.startswith("start-"):
            close(op.time)
            active += 1
        elif f.startswith("stop-"):
            active = max(0, active - 1)
            if active == 0:
                opens = op.time + grace_ns
        elif f == "heal-all":
            if active or opens is None or opens > op.time:
                close(op.time)
                opens = op.time + grace_ns
            active = 0
        elif f == "recovered":
            if active == 0:
                opens = op.time if opens is None else min(opens, op.time)
        elif f == "not-recovered":
            close(op.time)
    if opens is not None:
        windows.append((opens, end_of_time))
    return [w for w in windows if w[1] > w[0]]


def error_text(error: Any) -> str:
    """An error as the text a system's stated refusals name."""
    if isinstance(error, Mapping):
        return str(error.get("error", error))
    return str(error)


def availability(history: History) -> Result:
    """Judge the calls made in quiet windows (see the module docstring)."""
    promise = promise_of(history.nemesis_ops())
    if promise is None:
        return Result(UNKNOWN, details=AvailabilityDetails.of({
            "reason": "the history states no availability promise (a nemesis op "
                      f"{PROMISES!r}): nothing to judge against"}))
    refusals = {str(f): {str(e) for e in errs}
                for f, errs in dict(promise.get("refusals") or {}).items()
                if isinstance(errs, list | tuple)}
    try:
        grace_ms = max(0.0, float(promise.get("recovery_grace_ms", 0.0)))
    except (TypeError, ValueError):
        grace_ms = 0.0
    windows = quiet_windows(history, int(grace_ms * 1_000_000))
    judged = 0
    unserved: list[dict[str, Any]] = []
    by_error: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    seconds: dict[int, list[int]] = {}  # second of the run -> [judged, unserved]
    calls = history.calls()
    wi = 0
    for call in calls:  # in invocation order, as are the windows
        comp = call.complete
        if comp is None:
            continue
        t0 = call.invoke.time
        while wi < len(windows) and windows[wi][1] <= t0:
            wi += 1
        if wi >= len(windows):
            break
        start, end = windows[wi]
        if t0 < start or comp.time > end:
            continue
        judged += 1
        sec = seconds.setdefault(t0 // _NS, [0, 0])
        sec[0] += 1
        if comp.type is OpType.OK:
            continue
        err = error_text(comp.error)
        if comp.type is OpType.FAIL and err in refusals.get(call.f, ()):
            continue
        sec[1] += 1
        by_error[f"{call.f}: {err}"] += 1
        if comp.node:
            by_node[str(comp.node)] += 1
        if len(unserved) < LISTED:
            unserved.append({"index": call.invoke.index, "process": call.process, "f": call.f,
                             "type": comp.type.value, "error": err, "node": comp.node,
                             "at_s": round(t0 / _NS, 3)})
    n = sum(by_error.values())
    details: dict[str, Any] = {
        "recovery_grace_ms": grace_ms,
        "windows": [[round(a / _NS, 3), None if b == 2**63 - 1 else round(b / _NS, 3)]
                    for a, b in windows],
        "judged": judged, "unserved_count": n, "unserved": unserved,
        "unserved_by_error": dict(by_error.most_common()),
    }
    if by_node:
        details["unserved_by_node"] = dict(by_node.most_common())
    judged_s = sorted(s for s, (k, _) in seconds.items() if k >= MIN_CALLS)
    bad_s = [s for s in judged_s if seconds[s][1] >= MAX_UNSERVED_FRACTION * seconds[s][0]]
    details["judged_seconds"] = len(judged_s)
    details["bad_seconds"] = bad_s
    if len(bad_s) >= MIN_BAD_SECONDS and 2 * len(bad_s) >= len(judged_s):
        details["progress"] = ["unavailable"]
        details["reason"] = (f"{n} of {judged} requests made while no fault was in force "
                             f"(after a recovery grace of {grace_ms / 1000:g} s) were not "
                             f"served, in {len(bad_s)} of {len(judged_s)} seconds: "
                             + ", ".join(f"{k} ({v})" for k, v in by_error.most_common(3)))
        return Result(UNKNOWN, details=AvailabilityDetails.of(details))
    if not judged:
        details["note"] = "no request was made while the cluster was quiet: nothing judged"
    return Result(True, details=AvailabilityDetails.of(details))
