"""Reading every replica's applied state at the end of a run, for the convergence checker.

The runner calls :func:`record_replica_states` after the final phase when the
system has :class:`harness.system.HasReplicaState`. Replicas apply the log at
their own pace, so comparing them at once would compare a node with a lagging
one; instead each node is polled until all answer at one applied position
that holds still between two polls (bounded: a node that never catches up is
recorded as it is, and the checker says "unknown" for it, never "invalid").
Then each node is read once more, and that read is recorded as an invocation
and a completion of the non-client process ``"replicas"``. When the nodes never
agreed and the system can show a node's state at an earlier position
(:class:`harness.system.ReadsReplicaAt`, etcd's revisions), that last read is
made at the lowest position every node reached (the invocation says ``at``),
so even a node left behind is compared with the others up to where it got.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.checker.convergence import CATCH_UP, REPLICA_STATE, REPLICAS, top_position
from harness.history import Op, OpType
from harness.system import Address, HasReplicaState, ReadsReplicaAt

__all__ = ["common_position", "read_replica", "record_quiet_catch_up", "record_replica_states",
           "wait_caught_up"]

Record = Callable[[OpType, str, str, Any, Any], Op]
"""How an event is written to the history: (type, process, f, value, error)."""

FIRST_POLL_S = 0.05
"""The first pause between two polls of the replicas' positions (then doubled up to ``poll_s``)."""


def read_replica(system: HasReplicaState, node: str, addresses: Mapping[str, Address], *,
                 timeout_s: float, at: int | None = None
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """One node's state (at position ``at``, for a :class:`ReadsReplicaAt` system), or
    None and why not (an adapter error is a reason, not a crash)."""
    try:
        if at is None:
            state = system.replica_state(node, addresses, timeout_s=timeout_s)
        else:
            assert isinstance(system, ReadsReplicaAt)
            state = system.replica_state_at(node, addresses, at, timeout_s=timeout_s)
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    if not isinstance(state, Mapping) or "applied" not in state:
        return None, f"the adapter answered {type(state).__name__} without 'applied'"
    if at is not None and state["applied"] != at:
        return None, f"the adapter answered position {state['applied']!r}, not {at}"
    return dict(state), None


def common_position(wait: Mapping[str, Any], system: object) -> int | None:
    """The position to read every node at when they never agreed: the lowest one each
    reached, if the system can read there and every node answered an integer."""
    seen = wait.get("applied")
    if wait.get("caught_up") is not False or not isinstance(system, ReadsReplicaAt) \
            or not isinstance(seen, Mapping) or not seen:
        return None
    values = list(seen.values())
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return min(values)


def wait_caught_up(system: HasReplicaState, nodes: Mapping[str, Mapping[str, Address]], *,
                   timeout_s: float, wait_s: float, poll_s: float = 0.5) -> dict[str, Any]:
    """Poll until every node answers at one applied position, twice in a row.

    The polls start 50 ms apart and back off to ``poll_s``: a healthy cluster
    agrees within a heartbeat or two, and every run pays this wait twice (in
    the quiet cluster and before the final reads), so a fixed half-second
    between polls was most of its cost.

    Returns what was seen last: ``{"caught_up": bool, "waited_s", "applied":
    {node: position or None}, "behind_s": {node: seconds}}`` (recorded with the
    reads, so a report can say how long replicas took, or that they never
    agreed). ``behind_s`` is how long each node had been below the most
    advanced position of every poll without moving itself (0 for a node at
    the top, or one that moved since): a node chasing a moving leader keeps
    resetting it, a node whose catch-up stalled does not.
    """
    t0 = time.monotonic()
    deadline = t0 + wait_s
    last: dict[str, Any] | None = None
    previous: dict[str, Any] = {}
    behind_since: dict[str, float] = {}
    # A paused node would hold every poll for the whole timeout; a poll only
    # needs positions, so it waits less (the recorded read gets the full timeout).
    poll_timeout_s = min(timeout_s, 2.0)
    pause = min(poll_s, FIRST_POLL_S)
    while True:
        seen = {n: (read_replica(system, n, a, timeout_s=poll_timeout_s)[0] or {}).get("applied")
                for n, a in nodes.items()}
        now = time.monotonic()
        top = top_position(seen.values())
        for n, v in seen.items():
            if top is None or v is None or v == top or v != previous.get(n, v):
                behind_since.pop(n, None)
            if top is not None and v is not None and v != top:
                behind_since.setdefault(n, now)
        previous = seen
        behind = {n: round(now - behind_since[n], 3) if n in behind_since else 0.0
                  for n in seen}
        values = list(seen.values())
        agreed = None not in values and all(v == values[0] for v in values)
        if agreed and seen == last:
            return {"caught_up": True, "waited_s": round(now - t0, 3), "applied": seen,
                    "behind_s": behind}
        if now + pause >= deadline:
            return {"caught_up": False, "waited_s": round(now - t0, 3), "applied": seen,
                    "behind_s": behind}
        last = seen if agreed else None
        time.sleep(pause)
        pause = min(poll_s, pause * 2)


def record_quiet_catch_up(system: object, record: Record,
                          nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float,
                          wait_s: float = 10.0, poll_s: float = 0.5) -> None:
    """After the heal, before any new client op: wait (bounded) for every replica to
    reach one position in the quiet cluster, and record what was seen.

    A replica that catches up only when new writes arrive (a catch-up reply that
    leaves out its last entry, a follower that learns the commit position only
    from the next append) is masked by the final phase's own traffic; in the
    quiet cluster it stays behind. Recorded as one ``info`` op of the process
    :data:`REPLICAS`, ``f`` :data:`CATCH_UP`, for the convergence checker.
    """
    if not isinstance(system, HasReplicaState):
        return
    wait = wait_caught_up(system, nodes, timeout_s=timeout_s, wait_s=wait_s, poll_s=poll_s)
    record(OpType.INFO, REPLICAS, CATCH_UP, wait, None)


def record_replica_states(system: object, record: Record,
                          nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float,
                          wait_s: float = 10.0, poll_s: float = 0.5) -> None:
    """Wait (bounded) for the replicas to agree on a position, then record each one's state.

    Does nothing for a system without :class:`HasReplicaState` (the history
    then has no replica reads, and the convergence checker is not planned).
    """
    if not isinstance(system, HasReplicaState):
        return
    wait = wait_caught_up(system, nodes, timeout_s=timeout_s, wait_s=wait_s, poll_s=poll_s)
    at = common_position(wait, system)
    for node, addresses in nodes.items():
        asked = {"node": node, "wait": wait, **({} if at is None else {"at": at})}
        record(OpType.INVOKE, REPLICAS, REPLICA_STATE, asked, None)
        state, why = read_replica(system, node, addresses, timeout_s=timeout_s, at=at)
        if state is None:
            record(OpType.FAIL, REPLICAS, REPLICA_STATE, {"node": node}, why)
        else:
            record(OpType.OK, REPLICAS, REPLICA_STATE, {**state, "node": node}, None)
