"""Introspection: whether the harness could use what the adapter states it can ask.

The runner's probes (:mod:`harness.probes`) ask each stated ability on the
healthy cluster after the final heal: the leader lookup, each node's applied
state, each node's view of who leads. A probe that never succeeded within the
probes' wait is the finding ``introspection-failed``, and the
verdict is unknown, never invalid: the system may be correct, but the run
tested less than it says:

* no leader found: every fault aimed at "the leader" fell back to the first
  node, so a recipe named for isolating or pausing the leader may never have
  touched it;
* a node's state unreadable: the convergence checker cannot compare it;
* a node's view of the leader unreadable: the leadership checker cannot
  follow it.

A route that answers 404 or 500 while the node serves clients is a bug of the
system or of its adapter; either way a "valid" verdict would claim more than
the run saw. The checker is planned only when the history holds the probes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checker.details import IntrospectionDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import History, OpType
from harness.probes import INTROSPECTION, PROBES

__all__ = ["CONSEQUENCES", "has_probes", "introspection"]

CONSEQUENCES = {
    "leader": "faults aimed at the leader fell back to the first node",
    "replica-state": "the convergence checker cannot compare this node",
    "leadership": "the leadership checker cannot follow this node's view",
}


def _probes(history: History) -> Mapping[str, Any] | None:
    for op in history.nemesis_ops():
        if op.process == PROBES and op.f == INTROSPECTION and op.type == OpType.OK \
                and isinstance(op.value, Mapping):
            return op.value
    return None


def has_probes(history: History) -> bool:
    """Whether the history holds the runner's probes (so the checker applies)."""
    return _probes(history) is not None


def introspection(history: History) -> Result:
    """Judge the recorded probes (see the module docstring)."""
    seen = _probes(history)
    if seen is None:
        return Result(UNKNOWN, details=IntrospectionDetails.of({
            "reason": "the history holds no introspection probes: nothing to judge"}))
    failed: list[dict[str, Any]] = []
    for name, entry in sorted(seen.items()):
        e = entry if isinstance(entry, Mapping) else {}
        if e.get("ok") is True:
            continue
        ability = str(name).split(" ", 1)[0]
        failed.append({"probe": str(name), "attempts": e.get("attempts"),
                       "answer": e.get("answer"),
                       "consequence": CONSEQUENCES.get(ability, "")})
    details: dict[str, Any] = {"probes": len(seen), "failed": failed}
    if not failed:
        return Result(True, details=IntrospectionDetails.of(details))
    details["progress"] = ["introspection-failed"]
    details["reason"] = (
        f"{len(failed)} of {len(seen)} introspection probe(s) never answered on the "
        f"healthy cluster ({', '.join(f['probe'] for f in failed)}): the run tested "
        "less than it says")
    return Result(UNKNOWN, details=IntrospectionDetails.of(details))
