"""Availability: did a healthy cluster, or a healthy majority, serve the requests made?

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

A cluster that keeps a majority up and connected promises more: the product
brief's load balancer drops a dead or unresponsive node and the majority
elects a leader and serves. When the promise states ``failover_grace_ms`` and
the cluster's ``nodes``, the checker also judges *minority windows*
(:func:`minority_windows`): every fault in force names its ``faulty`` nodes
in its start record (the fault kind says which: a killed, paused or crashed
node, the nodes a partition leaves outside its largest fully connected
group), they are fewer than half, and the failover grace has passed since
the last such fault started. A fault that names no faulty nodes (latency,
flaky links, clocks: their effect on serving is the system's to promise, not
ours to guess) closes the window. The two kinds of window are tallied apart,
so a cluster that serves while quiet but not while one node is down is not
averaged away.

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

A cluster that never came back at all is judged too: the runner records
``not-recovered`` when, after the last fault was healed, the cluster was not
ready within its recovery timeout (a node that will not start, a load balancer
with no server up). With a stated promise that is the progress finding
``not-recovered``, with the runner's words; the verdict is unknown, as above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.checker.details import AvailabilityDetails
from harness.checker.faults import faulty_nodes
from harness.checker.result import UNKNOWN, Result
from harness.history import Call, History, OpType

__all__ = ["MAX_UNSERVED_FRACTION", "MIN_BAD_SECONDS", "MIN_CALLS", "PROMISES", "availability",
           "error_text",
           "has_availability_promise", "minority_windows", "promise_of", "quiet_windows"]

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


def promise_of(history: Iterable[Any], key: str = "availability") -> Mapping[str, Any] | None:
    """A promise recorded in the history's :data:`PROMISES` op (``key``: which one, e.g.
    ``availability`` or ``leadership``), if any."""
    for op in history:
        if op.f == PROMISES and not op.is_client and isinstance(op.value, Mapping):
            p = op.value.get(key)
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


def _ms(promise: Mapping[str, Any], key: str) -> float | None:
    try:
        v = promise.get(key)
        return None if v is None else max(0.0, float(v))
    except (TypeError, ValueError):
        return None


def minority_windows(history: History, grace_ns: int, recovery_ns: int,
                     nodes: Sequence[str]) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` in which faults were in force but every one of them
    left a majority of ``nodes`` up and connected (each start record's ``faulty``
    nodes, together fewer than half): they open ``grace_ns`` after such a fault
    starts (an election, the load balancer dropping the faulty node), or
    ``recovery_ns`` after a fault stops while another stays; any other fault,
    a fault whose record names no ``faulty`` nodes (latency, a clock), and a
    heal close them. See the module docstring."""
    n = len(nodes)
    windows: list[tuple[int, int]] = []
    active: list[tuple[str, frozenset[str] | None]] = []  # (kind, faulty nodes) in start order
    opens: int | None = None

    def close(at: int) -> None:
        nonlocal opens
        if opens is not None and at > opens:
            windows.append((opens, at))
        opens = None

    def tolerated() -> bool:
        if not active or any(f is None for _, f in active):
            return False
        down: set[str] = set()
        for _, f in active:
            down |= f or set()
        return 2 * len(down) < n

    for op in history.nemesis_ops():
        f = str(op.f)
        if f.startswith("start-"):
            close(op.time)
            active.append((f[6:], faulty_nodes(op.value)))
            if tolerated():
                opens = op.time + grace_ns
        elif f.startswith("stop-"):
            close(op.time)
            kind = f[5:]
            i = next((i for i, (k, _) in enumerate(active) if k == kind), None)
            if i is not None:
                active.pop(i)
            if tolerated():
                opens = op.time + recovery_ns
        elif f == "heal-all":
            close(op.time)
            active.clear()
    return [w for w in windows if w[1] > w[0]]


def _judge(calls: Sequence[Call], windows: Sequence[tuple[int, int]],
           refusals: Mapping[str, set[str]]) -> dict[str, Any]:
    """The calls invoked and completed inside ``windows``: how many, which were not
    served, and the judged and bad seconds (see the module docstring)."""
    judged = 0
    unserved: list[dict[str, Any]] = []
    by_error: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    seconds: dict[int, list[int]] = {}  # second of the run -> [judged, unserved]
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
    out: dict[str, Any] = {
        "windows": [[round(a / _NS, 3), None if b == 2**63 - 1 else round(b / _NS, 3)]
                    for a, b in windows],
        "judged": judged, "unserved_count": sum(by_error.values()), "unserved": unserved,
        "unserved_by_error": dict(by_error.most_common()),
    }
    if by_node:
        out["unserved_by_node"] = dict(by_node.most_common())
    judged_s = sorted(s for s, (k, _) in seconds.items() if k >= MIN_CALLS)
    out["judged_seconds"] = len(judged_s)
    out["bad_seconds"] = [s for s in judged_s
                          if seconds[s][1] >= MAX_UNSERVED_FRACTION * seconds[s][0]]
    return out


def _persistent(part: Mapping[str, Any]) -> bool:
    bad = len(part["bad_seconds"])
    return bad >= MIN_BAD_SECONDS and 2 * bad >= part["judged_seconds"]


def _why(part: Mapping[str, Any], when: str) -> str:
    top = ", ".join(f"{k} ({v})" for k, v in list(part["unserved_by_error"].items())[:3])
    return (f"{part['unserved_count']} of {part['judged']} requests made {when} were not "
            f"served, in {len(part['bad_seconds'])} of {part['judged_seconds']} seconds: {top}")


def availability(history: History) -> Result:
    """Judge the calls made in quiet windows, and in windows where only a minority
    was faulty when the system states a failover grace (see the module docstring)."""
    promise = promise_of(history.nemesis_ops())
    if promise is None:
        return Result(UNKNOWN, details=AvailabilityDetails.of({
            "reason": "the history states no availability promise (a nemesis op "
                      f"{PROMISES!r}): nothing to judge against"}))
    refusals = {str(f): {str(e) for e in errs}
                for f, errs in dict(promise.get("refusals") or {}).items()
                if isinstance(errs, list | tuple)}
    grace_ms = _ms(promise, "recovery_grace_ms") or 0.0
    calls = history.calls()
    quiet = _judge(calls, quiet_windows(history, int(grace_ms * 1_000_000)), refusals)
    details: dict[str, Any] = {"recovery_grace_ms": grace_ms, **quiet}
    failover_ms = _ms(promise, "failover_grace_ms")
    nodes = promise.get("nodes")
    minority: dict[str, Any] | None = None
    if failover_ms is not None and isinstance(nodes, list | tuple) and len(nodes) >= 3:
        windows = minority_windows(history, int(failover_ms * 1_000_000),
                                   int(grace_ms * 1_000_000), [str(n) for n in nodes])
        minority = {"failover_grace_ms": failover_ms, **_judge(calls, windows, refusals)}
        details["minority"] = minority
    reasons = []
    progress = []
    stuck = next((op for op in history.nemesis_ops() if op.f == "not-recovered"), None)
    if stuck is not None:
        progress.append("not-recovered")
        said = error_text(stuck.value) if stuck.value else "no reason recorded"
        reasons.append(f"the cluster did not recover after every fault was healed: {said}")
        details["not_recovered"] = said
    unserved = []
    if _persistent(quiet):
        unserved.append(_why(quiet, f"while no fault was in force (after a recovery grace "
                                    f"of {grace_ms / 1000:g} s)"))
    if minority is not None and failover_ms is not None and _persistent(minority):
        unserved.append(_why(minority, "while only a minority of nodes was faulty (after a "
                                       f"failover grace of {failover_ms / 1000:g} s)"))
    if unserved:
        progress.append("unavailable")
        reasons.extend(unserved)
    if reasons:
        details["progress"] = progress
        details["reason"] = "; ".join(reasons)
        return Result(UNKNOWN, details=AvailabilityDetails.of(details))
    if not quiet["judged"] and not (minority or {}).get("judged"):
        details["note"] = "no request was made while the cluster was quiet: nothing judged"
    return Result(True, details=AvailabilityDetails.of(details))
