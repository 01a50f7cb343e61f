"""Convergence: do the replicas hold the same applied state at the same position?

Client operations see a replicated system through its leader or a quorum, so
a replica whose applied state diverged goes unnoticed until it leads and a
client happens to read the divergent key. After the final phase the runner
reads every node's own applied state (:class:`harness.system.HasReplicaState`)
and records it as ops of the non-client process :data:`REPLICAS`, ``f``
:data:`REPLICA_STATE`: an invocation ``{"node": n}`` and an ``ok`` whose value
is ``{"node", "applied", "digest", "state", "items", ...}``, or a ``fail`` /
``info`` with the reason the node could not be read. Client checkers never
see these ops (they are not client calls).

The verdict:

* **invalid** (anomaly ``divergent-replicas``) when two nodes at the *same*
  applied position hold different states. The nodes agreeing with the most
  others are the reference; every other node is listed with the keys and
  items where it differs (a bounded list);
* **unknown** when a node could not be read, or is at another position than
  the most advanced nodes (it never caught up within the runner's bounded
  wait): states at different positions may legitimately differ, so they are
  never compared, and a node not compared must not pass as converged. A node
  that was still behind when the wait ran out, at the very position it held
  at the wait's last poll (it made no progress, so it was not merely chasing
  a moving leader), is named with the progress finding ``lagging-replica``:
  every node was up and connected, and the system's catch-up did not bring
  it level. It stays a progress finding (unknown), never invalid: a finite
  wait proves no liveness violation;
* **valid** when every node was read, all at one position, with one state.

Before the final phase sends its reads, the runner also waits (bounded) for
the replicas to agree in the quiet cluster right after the heal and records
what it saw (``f`` :data:`CATCH_UP`). A node that stayed below the others
there, without moving, for :data:`STALL_S` by the end of that wait is named
``lagging-replica`` too: its catch-up needed new writes (a catch-up reply
that leaves out its last entry, a commit position learned only from the next
append), which the final phase's own traffic would have supplied and hidden.

A system that can show a node's state at an earlier position
(:class:`harness.system.ReadsReplicaAt`) is read, when the wait ran out, at
the lowest position every node reached (the reads' invocations say ``at``;
each answer's ``now`` is the node's own current position): every node is
then compared up to where it got, so a divergence is found even with a node
left behind. A node whose ``now`` is below the others' and equal to its
position at the wait's last poll is still ``lagging-replica``.

Only equality is judged, never which state is right: the reference is a
majority of equal states (ties go to the node named first), not a truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from harness.checker.details import ConvergenceDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import History, OpType

__all__ = ["CATCH_UP", "MAX_DIFFERENCES", "REPLICAS", "REPLICA_STATE", "STALL_S", "convergence",
           "has_replica_states", "top_position"]

REPLICAS = "replicas"
"""The process name of the runner's replica reads (not a client, not the nemesis)."""

REPLICA_STATE = "replica-state"
"""The ``f`` of a replica read."""

CATCH_UP = "catch-up"
"""The ``f`` of the runner's record of the quiet wait after the heal (see
:func:`harness.replicas.record_quiet_catch_up`)."""

STALL_S = 5.0
"""How long a replica must have stayed below the others, without moving, at the end of
the quiet wait to be named lagging there: a correct catch-up moves within a heartbeat."""

MAX_DIFFERENCES = 50
"""At most this many differences are listed (all are counted): a node that
diverged early differs everywhere, and the first few say what went wrong."""

_META = frozenset({"node", "applied", "digest"})


def has_replica_states(history: History) -> bool:
    """Whether the history holds replica reads (so the convergence checker applies)."""
    return any(op.f == REPLICA_STATE and op.process == REPLICAS for op in history)


def _digest(state: Mapping[str, Any]) -> str:
    """The adapter's digest, or one over the dump when it gave none."""
    d = state.get("digest")
    if isinstance(d, str) and d:
        return d
    dump = {k: v for k, v in state.items() if k not in _META}
    text = json.dumps(dump, sort_keys=True, separators=(",", ":"), default=str)
    return "dump:" + hashlib.sha256(text.encode()).hexdigest()


def _diff(node: str, mine: Mapping[str, Any], ref: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where ``mine`` differs from ``ref``: per key for mappings, whole otherwise."""
    out: list[dict[str, Any]] = []
    for section in sorted((set(mine) | set(ref)) - _META):
        a, b = mine.get(section), ref.get(section)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                va, vb = a.get(key), b.get(key)
                if key in a and key in b and va == vb:
                    continue
                d: dict[str, Any] = {"node": node, "kind": section, "key": key}
                if key not in a:
                    d["missing"] = True
                elif key not in b:
                    d["extra"] = True
                if isinstance(va, Mapping) and isinstance(vb, Mapping):
                    d["fields"] = {f: [vb.get(f), va.get(f)]
                                   for f in sorted(set(va) | set(vb), key=str)
                                   if va.get(f) != vb.get(f)}
                else:
                    d["reference"], d["value"] = vb, va
                out.append(d)
        else:
            out.append({"node": node, "kind": section, "reference": b, "value": a})
    if not out:
        # Equal dumps, different digests: the difference is in state the
        # system hashes but does not dump (e.g. a request-id table).
        out.append({"node": node, "kind": "digest", "reference": _digest(ref),
                    "value": _digest(mine)})
    return out


def _lagging(nodes: Mapping[str, Mapping[str, Any]], read: Mapping[str, Mapping[str, Any]],
             wait: Mapping[str, Any] | None) -> list[str]:
    """Nodes behind when the runner's wait ran out, at the position of its last poll."""
    if not wait or wait.get("caught_up") is not False:
        return []
    last = wait.get("applied")
    if not isinstance(last, Mapping):
        return []
    return [n for n, d in nodes.items()
            if d.get("status") == "behind" and n in last
            and last[n] is not None and last[n] == read[n].get("applied")]


def _lagging_now(read: Mapping[str, Mapping[str, Any]], wait: Mapping[str, Any] | None
                 ) -> list[str]:
    """With reads at a common position: nodes whose current position (``now``) is
    below the most advanced one's and has not moved since the wait's last poll."""
    if not wait or wait.get("caught_up") is not False:
        return []
    last = wait.get("applied")
    nows: dict[str, Any] = {n: r["now"] for n, r in read.items() if "now" in r}
    if not isinstance(last, Mapping) or not nows:
        return []
    try:
        top = max(nows.values())
        return [n for n, now in nows.items() if now != top and last.get(n) == now]
    except TypeError:  # positions of mixed types: nothing is "most advanced"
        return []


def top_position(values: Iterable[Any]) -> Any:
    """The most advanced of the known positions, or None (none known, or of types that
    do not compare: then nothing is "most advanced")."""
    known = [v for v in values if v is not None]
    try:
        return max(known) if known else None
    except TypeError:
        return None


def _quiet_lagging(history: History) -> dict[str, dict[str, Any]]:
    """Nodes the quiet wait after the heal left behind, stalled for :data:`STALL_S`."""
    for op in history.nemesis_ops():
        if op.process != REPLICAS or op.f != CATCH_UP or not isinstance(op.value, Mapping):
            continue
        wait = op.value
        behind, applied = wait.get("behind_s"), wait.get("applied")
        if wait.get("caught_up") is not False or not isinstance(behind, Mapping) \
                or not isinstance(applied, Mapping):
            return {}
        top = top_position(applied.values())
        if top is None and any(v is not None for v in applied.values()):
            return {}  # positions that do not compare: nothing is "most advanced"
        return {str(n): {"at": applied.get(n), "top": top, "behind_s": s}
                for n, s in behind.items()
                if isinstance(s, int | float) and not isinstance(s, bool) and s >= STALL_S}
    return {}


def convergence(history: History) -> Result:
    """Compare the recorded replica states (see the module docstring)."""
    read: dict[str, Mapping[str, Any]] = {}
    unreadable: dict[str, str] = {}
    order: list[str] = []
    wait: Mapping[str, Any] | None = None
    for call in history.calls(clients_only=False):
        if call.process != REPLICAS or call.f != REPLICA_STATE:
            continue
        v = call.invoke.value
        if isinstance(v, Mapping) and isinstance(v.get("wait"), Mapping):
            wait = v["wait"]
        node = str(v.get("node")) if isinstance(v, Mapping) else "?"
        if node not in order:
            order.append(node)
        comp = call.complete
        if comp is not None and comp.type is OpType.OK and isinstance(comp.value, Mapping) \
                and comp.value.get("applied") is not None:
            read[node] = comp.value
            unreadable.pop(node, None)
        elif node not in read:
            why = comp.error if comp is not None else None
            unreadable[node] = str(why or ("never answered" if comp is None
                                           else "answer had no applied position"))
    if not order:
        return Result(UNKNOWN, details=ConvergenceDetails.of(
            {"reason": "no replica states were recorded", "nodes": {}}))
    if not read:  # every node was asked, none answered (a cluster that did not come back)
        return Result(UNKNOWN, details=ConvergenceDetails.of({
            "reason": "no replica's state could be read: " + "; ".join(
                f"{n}: {unreadable.get(n, 'no answer')}" for n in order),
            "nodes": {n: {"status": "unreadable", "reason": unreadable.get(n, "no answer")}
                      for n in order}}))
    nodes: dict[str, dict[str, Any]] = {}
    for n in order:
        if n in unreadable:
            nodes[n] = {"status": "unreadable", "reason": unreadable[n]}
        else:
            st = read[n]
            nodes[n] = {"applied": st.get("applied"), "digest": _digest(st), "status": "same"}

    # Compare within each group of nodes at one position; positions that are
    # not comparable (different types) are grouped by their text.
    groups: dict[str, list[str]] = {}
    for n in order:
        if n in read:
            groups.setdefault(json.dumps(read[n].get("applied"), default=str), []).append(n)
    differences: list[dict[str, Any]] = []
    difference_count: dict[str, int] = {}
    reference: list[str] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        by_digest: dict[str, list[str]] = {}
        for n in members:
            by_digest.setdefault(nodes[n]["digest"], []).append(n)
        ref_nodes = max(by_digest.values(), key=len)  # first of the largest: ties by order
        reference.extend(ref_nodes)
        ref = read[ref_nodes[0]]
        for n in members:
            if n in ref_nodes:
                continue
            diff = _diff(n, read[n], ref)
            nodes[n]["status"] = "differs"
            nodes[n]["compared_with"] = ref_nodes[0]
            difference_count[n] = len(diff)
            differences.extend(diff[:max(0, MAX_DIFFERENCES - len(differences))])

    # Nodes not at the most advanced position never caught up (or the most
    # advanced one ran ahead alone): not compared, so not known to agree.
    positions: list[Any] = [read[n].get("applied") for n in read]
    try:
        top = max(positions)
    except TypeError:  # mixed types: nothing is "most advanced"
        top = None
    for n in read:
        a = read[n].get("applied")
        alone = len(groups[json.dumps(a, default=str)]) < 2
        if (a != top or alone) and nodes[n]["status"] == "same":
            nodes[n]["status"] = "behind" if a != top else "uncompared"
            nodes[n]["reason"] = (f"at position {a!r}, the most advanced node(s) at {top!r}"
                                  if a != top else
                                  f"the only node at position {a!r}: nothing to compare with")
    details: dict[str, Any] = {
        "position": top, "nodes": nodes, "reference": reference,
        "differences": differences, "difference_count": difference_count,
        "differences_listed": len(differences),
    }
    if difference_count:
        details["anomalies"] = ["divergent-replicas"]
        return Result(False, details=ConvergenceDetails.of(details))
    not_compared = {n: d["reason"] for n, d in nodes.items()
                    if d["status"] in ("unreadable", "behind", "uncompared")}
    lagging = _lagging(nodes, read, wait) + _lagging_now(read, wait)
    quiet = _quiet_lagging(history)
    if quiet:
        details["progress"] = ["lagging-replica"]
        details["quiet_lagging"] = quiet
        for n, q in quiet.items():
            why = (f"after the heal, with no client traffic, stayed at position {q['at']!r} "
                   f"for {q['behind_s']} s while the most advanced node was at {q['top']!r}: "
                   "its catch-up needed new writes")
            not_compared[n] = why
            if n in nodes:
                nodes[n]["reason"] = "; ".join(filter(None, [nodes[n].get("reason"), why]))
    if lagging:
        details["progress"] = ["lagging-replica"]
        details["lagging"] = lagging
        for n in lagging:
            nodes[n].setdefault("reason", f"at position {read[n].get('now')!r} now, the "
                                          "others ahead (compared at the common position)")
            nodes[n]["reason"] += (f"; no progress in the last {wait.get('waited_s')} s of "
                                   "waiting (lagging)" if wait else "")
            not_compared[n] = nodes[n]["reason"]
    if not_compared:
        details["reason"] = "; ".join(f"{n}: {why}" for n, why in not_compared.items())
        return Result(UNKNOWN, details=ConvergenceDetails.of(details))
    return Result(True, details=ConvergenceDetails.of(details))
