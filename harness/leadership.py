"""Watching who leads: every node's own view, polled while a run lasts.

For a system that states :class:`harness.system.PromisesStableLeader`, the
runner starts :func:`observe_leadership` once the cluster is ready and stops
it after the replicas were read at the end, so the final phase (where the last
heal's rejoining nodes come back) is watched too. Each node is asked in turn,
directly (never through the load balancer), every :data:`POLL_INTERVAL_S`; a
node's view is recorded only when it changes, as an op of the non-client
process :data:`OBSERVER` with ``f`` :data:`LEADERSHIP` and value ``{"node",
"leader", "term"}``. A node that does not answer is recorded once as
``{"node", "unreachable": true}``: its old view is not its view any more.

The ``leadership`` checker (:mod:`harness.checker.leadership`) reads these
ops with the faults' start and stop records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from harness.history import Op, OpType
from harness.system import Address, PromisesStableLeader

__all__ = ["LEADERSHIP", "OBSERVER", "POLL_INTERVAL_S", "leadership_promise",
           "observe_leadership"]

OBSERVER = "observer"
"""The process of the leadership observations (not a client, not the nemesis)."""

LEADERSHIP = "leadership"
"""The ``f`` of a leadership observation."""

POLL_INTERVAL_S = 0.2
"""How often every node is asked: well under an election's length, so a leader
deposed and replaced is seen, and cheap (one status read per node)."""

Record = Callable[..., Op]


def leadership_promise(system: object, nodes: list[str]) -> dict[str, Any] | None:
    """The promise as the runner records it in the history, or None."""
    if not isinstance(system, PromisesStableLeader):
        return None
    return {"nodes": nodes}


def observe_leadership(system: PromisesStableLeader, record: Record,
                       nodes: Mapping[str, Mapping[str, Address]], *, stop: threading.Event,
                       interval_s: float = POLL_INTERVAL_S, timeout_s: float = 0.5) -> int:
    """Poll every node's view until ``stop``; record each change. Returns the number
    of observations recorded."""
    last: dict[str, Any] = {}
    recorded = 0
    while not stop.wait(interval_s):
        for node, addresses in nodes.items():
            if stop.is_set():
                break
            try:
                leader, term = system.leadership(node, addresses, timeout_s=timeout_s)
                view: dict[str, Any] = {"node": node,
                                        "leader": None if leader is None else str(leader),
                                        "term": term if isinstance(term, int) else None}
            except Exception:
                view = {"node": node, "unreachable": True}
            if last.get(node) != view:
                last[node] = view
                record(OpType.INFO, OBSERVER, LEADERSHIP, view)
                recorded += 1
    return recorded
