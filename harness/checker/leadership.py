"""Leadership: was a healthy leader deposed when a node the faults had spared it from came back?

A system that states :class:`harness.system.PromisesStableLeader` promises
that a leader up and connected to a majority keeps its office: a node coming
back from a partition or a restart must not force an election (what pre-vote
and leader stickiness are for). The runner records every node's view of who
leads (:mod:`harness.leadership`) and the promise, as the ``promises`` nemesis
op's ``leadership`` entry (``{"nodes": [...]}``).

From the views the checker builds *tenures*: a node claiming to lead at a term
higher than any claimed before starts one; it ends when that node's own view
changes (it stepped down, or names a higher term) or another node claims a
higher term. A node the observer could not reach ends nothing: a slow answer is
not a lost office.

A tenure that ends within :data:`REJOIN_WINDOW_S` after a fault stopped (a
``stop-*`` op, or the final ``heal-all``), having begun before that stop, is a
**disruption** (progress finding ``leader-disrupted``) unless something excuses
it: a fault in force at any time from :data:`LOOKBACK_S` before the stop to the
tenure's end that named the leader among its faulty nodes, that named no faulty
nodes (latency, clocks: their effect is not ours to guess), or whose faulty
nodes were half the cluster or more (no majority to keep). The window after a
stop is where pre-vote earns its keep; a leader change elsewhere with no fault
on the leader is more likely a starved machine's late heartbeat than a bug, so
it is only counted.

The verdict is unknown with the finding named when there is a disruption (a
finite run proves no liveness violation, and the leader may have been starved),
valid otherwise, and unknown when the history has no observations.

The same views also prove two safety violations (the verdict is then
**invalid**), because the promise's terms are what a consensus protocol's
safety rests on (:class:`harness.system.PromisesStableLeader`: a number that
grows with every election and that at most one node ever leads at, a Raft
term, a Paxos ballot as one number):

* ``term-regression``: a node's term went down between two of its views while
  it kept running: no fault that may restart it (any kind but those in
  :data:`NO_RESTART_KINDS`) was in force between them, and the observer did not
  find it unreachable. An acceptor's promise or a Raft node's current term
  only grows; one that shrinks accepts what it promised to refuse (a ballot
  computed below those seen, a candidate that lowers its own promise, a term
  reset on a step-down).
* ``two-leaders-one-term``: two nodes each claimed to lead at one term (Raft's
  election safety; a ballot names its proposer).

Neither needs a fault or a client op to show: a regression is the node's own
word, read from it alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checker.availability import promise_of
from harness.checker.details import LeadershipDetails
from harness.checker.faults import FaultInterval, excused_by, fault_intervals
from harness.checker.result import UNKNOWN, Result
from harness.history import History
from harness.leadership import LEADERSHIP, OBSERVER

__all__ = ["LOOKBACK_S", "NO_RESTART_KINDS", "REJOIN_WINDOW_S", "Tenure",
           "has_leadership_promise", "leadership", "tenures", "term_violations"]

REJOIN_WINDOW_S = 3.0
"""How long after a fault stops a leader change counts as caused by the rejoin: a
restarted node's start, its election timeout and one round of messages."""

LOOKBACK_S = 2.0
"""A fault on the leader this long before the stop still excuses (an election it
set off may finish after it ended)."""

NO_RESTART_KINDS = frozenset({"partition", "pause", "latency", "flaky", "clock", "stall"})
"""Fault kinds that never restart a node: a node's term must not go down across one.
Any other kind, a user's own included, may restart it (and a system need not
promise that what a restart recovers is its last term)."""

LISTED = 20
_NS = 1_000_000_000


@dataclass
class Tenure:
    """One leader at one term, from the first claim seen to its end (ns; None: held on)."""

    leader: str
    term: int
    start: int
    end: int | None = None
    ended_by: str | None = None


def _promise(history: History) -> Mapping[str, Any] | None:
    return promise_of(history.nemesis_ops(), "leadership")


def has_leadership_promise(history: History) -> bool:
    """Whether the history states the promise (so the checker applies)."""
    return _promise(history) is not None


def _term(v: Mapping[str, Any]) -> int | None:
    raw = v.get("term")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _views(history: History) -> list[tuple[int, str, Mapping[str, Any]]]:
    return [(op.time, str(op.value.get("node")), op.value) for op in history.nemesis_ops()
            if op.process == OBSERVER and op.f == LEADERSHIP and isinstance(op.value, Mapping)]


def tenures(history: History) -> list[Tenure]:
    """The leaders' tenures, in order (see the module docstring)."""
    out: list[Tenure] = []
    current: Tenure | None = None
    top = -1  # the highest term claimed so far
    for at, node, v in _views(history):
        if v.get("unreachable"):
            continue
        leader, term = v.get("leader"), _term(v)
        claims = leader == node and term is not None
        if claims and term is not None and term > top:
            if current is not None and current.end is None:
                current.end, current.ended_by = at, f"{node} claimed term {term}"
            current = Tenure(node, term, at)
            out.append(current)
            top = term
        elif current is not None and current.end is None and node == current.leader \
                and not (claims and term == current.term):
            current.end = at
            current.ended_by = (f"{node} now names {leader!r} at term {term!r}" if leader
                                else f"{node} knows no leader (term {term!r})")
    return out


def _may_restart(node: str, since: int, until: int, faults: Sequence[FaultInterval]) -> bool:
    return any(f.kind not in NO_RESTART_KINDS and f.start <= until and f.stop >= since
               and (f.faulty is None or node in f.faulty) for f in faults)


def term_violations(history: History, faults: Sequence[FaultInterval]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """The terms that went down within a node's life and the terms two nodes led at
    (see the module docstring): ``(regressions, shared, regression count, shared count)``,
    each list at most :data:`LISTED` long."""
    last: dict[str, tuple[int, int]] = {}  # node -> (term, time) of its last view
    led: dict[int, tuple[str, int]] = {}  # term -> first node seen leading at it, and when
    shared_terms: set[int] = set()
    regressions: list[dict[str, Any]] = []
    shared: list[dict[str, Any]] = []
    n_reg = 0
    for t, node, v in _views(history):
        if v.get("unreachable"):
            last.pop(node, None)  # maybe restarted: its next term starts afresh
            continue
        term = _term(v)
        if term is None:
            continue
        prev = last.get(node)
        if prev is not None and term < prev[0] and not _may_restart(node, prev[1], t, faults):
            n_reg += 1
            if len(regressions) < LISTED:
                regressions.append({"node": node, "from": prev[0], "to": term,
                                    "seen_s": round(prev[1] / _NS, 3),
                                    "at_s": round(t / _NS, 3), "leader": v.get("leader")})
        last[node] = (term, t)
        if v.get("leader") == node:
            first = led.setdefault(term, (node, t))
            if first[0] != node and term not in shared_terms:
                shared_terms.add(term)
                if len(shared) < LISTED:
                    shared.append({"term": term, "leaders": [first[0], node],
                                   "first_s": round(first[1] / _NS, 3),
                                   "at_s": round(t / _NS, 3)})
    return regressions, shared, n_reg, len(shared_terms)


def _excuse(t: Tenure, since: int, until: int, faults: Sequence[FaultInterval], n: int
            ) -> str | None:
    why = excused_by(faults, t.leader, since, until)
    if why is not None:
        return why
    for f in faults:
        if f.start <= until and f.stop >= since and f.faulty is not None \
                and 2 * len(f.faulty) >= n:
            return f"{f.kind} left no majority"
    return None


def leadership(history: History) -> Result:
    """Judge the leaders' tenures against the faults (see the module docstring)."""
    promise = _promise(history)
    if promise is None:
        return Result(UNKNOWN, details=LeadershipDetails.of({
            "reason": "the history states no stable-leader promise: nothing to judge"}))
    nodes = promise.get("nodes")
    n = len(nodes) if isinstance(nodes, list | tuple) else 0
    ts = tenures(history)
    faults, stops = fault_intervals(history)
    regressions, shared, n_reg, n_shared = term_violations(history, faults)
    if not ts and not (n_reg or n_shared):
        return Result(UNKNOWN, details=LeadershipDetails.of({
            "reason": "no node was ever seen leading: nothing to judge"}))
    window = int(REJOIN_WINDOW_S * _NS)
    lookback = int(LOOKBACK_S * _NS)
    disrupted: list[dict[str, Any]] = []
    excused = 0
    elsewhere = 0
    for t in ts:
        if t.end is None:
            continue
        stop = max((s for s in stops if t.start < s[0] <= t.end <= s[0] + window),
                   default=None)
        if stop is None:
            if _excuse(t, t.end - lookback, t.end, faults, n) is not None:
                excused += 1
            else:
                elsewhere += 1
            continue
        why = _excuse(t, stop[0] - lookback, t.end, faults, n)
        if why is not None:
            excused += 1
            continue
        if len(disrupted) < LISTED:
            disrupted.append({
                "leader": t.leader, "term": t.term, "since_s": round(t.start / _NS, 3),
                "ended_s": round(t.end / _NS, 3), "ended_by": t.ended_by,
                "after": stop[1], "after_s": round(stop[0] / _NS, 3)})
    details: dict[str, Any] = {
        "tenures": len(ts), "changes": sum(1 for t in ts if t.end is not None),
        "excused": excused, "elsewhere": elsewhere, "disrupted_count": len(disrupted),
        "disrupted": disrupted,
        "leaders": [[t.leader, t.term, round(t.start / _NS, 3)] for t in ts[:100]],
        "regression_count": n_reg, "regressions": regressions,
        "shared_count": n_shared, "shared_terms": shared,
    }
    reasons: list[str] = []
    if regressions:
        r = regressions[0]
        reasons.append(
            f"{n_reg} term(s) went down on a running node, e.g. {r['node']}'s from "
            f"{r['from']} (seen at {r['seen_s']} s) to {r['to']} at {r['at_s']} s, with no "
            f"fault that may restart it in between")
    if shared:
        r = shared[0]
        reasons.append(
            f"{n_shared} term(s) led by two nodes, e.g. term {r['term']} by "
            f"{r['leaders'][0]} (at {r['first_s']} s) and {r['leaders'][1]} (at {r['at_s']} s)")
    if disrupted:
        first = disrupted[0]
        details["progress"] = ["leader-disrupted"]
        reasons.append(
            f"{len(disrupted)} healthy leader(s) deposed right after a fault ended, e.g. "
            f"{first['leader']} (term {first['term']}) lost office at {first['ended_s']} s, "
            f"{round(first['ended_s'] - first['after_s'], 2)} s after {first['after']} "
            f"({first['ended_by']}), though no fault in force had hit it")
    if reasons:
        details["reason"] = "; ".join(reasons)
    if regressions or shared:
        details["anomalies"] = (["term-regression"] if regressions else []) \
            + (["two-leaders-one-term"] if shared else [])
        return Result(False, details=LeadershipDetails.of(details))
    if disrupted:
        return Result(UNKNOWN, details=LeadershipDetails.of(details))
    return Result(True, details=LeadershipDetails.of(details))
