"""When the leader may expire a work item's lease.

The rule (from the product brief): the leader proposes ``expire`` only after
the lease time has passed on *its own* monotonic clock since it saw the
current claim or renewal, *and* it has been leader for at least that long.

Why this is safe for at-least-once without trusting clocks across machines:
a worker starts its lease clock when it *sends* the claim or renewal, which is
before any replica can apply it, so the leader's observation is never earlier
than the worker's. A worker that stops working when its own lease runs out
has stopped before the leader expires the item (given clocks that run at
about the same rate). And the fencing token makes the outcome safe even when
that assumption fails: a late holder's completion is refused.

The tracker is pure: the node feeds it the machine's processing items and its
clock; it answers which (item, token, renewals) are due.
"""

from __future__ import annotations

import time

__all__ = ["LeaseTracker"]


class LeaseTracker:
    """First-seen times of each lease generation on this node's clock."""

    def __init__(self, *, lease_ms: float, bugs: frozenset[str] = frozenset()):
        self.lease_ms = lease_ms
        self.bugs = bugs
        self._seen_ms: dict[tuple[str, int, int], float] = {}

    def observe(self, processing: dict[str, tuple[int, int]], now_ms: float) -> None:
        """Record when each current (item, token, renewals) was first seen."""
        if "wall_clock_lease" in self.bugs:
            now_ms = time.time() * 1000.0  # bug: see due()
        current = {(i, tok, ren) for i, (tok, ren) in processing.items()}
        for key in current:
            self._seen_ms.setdefault(key, now_ms)
        for key in [k for k in self._seen_ms if k not in current]:
            del self._seen_ms[key]

    def due(self, now_ms: float, leader_since_ms: float) -> list[tuple[str, int, int]]:
        """Leases this leader may expire now (sorted, for determinism)."""
        if "wall_clock_lease" in self.bugs:
            # Bug "wall_clock_lease": lease ages are measured on the wall clock, which
            # a clock step moves: step the leader's clock forward by more than a lease
            # and it expires every lease at once (time in office stays right).
            wall_ms = time.time() * 1000.0
            leader_since_ms += wall_ms - now_ms
            now_ms = wall_ms
        if "expire_early" in self.bugs:
            # Bug "expire_early": a new leader expires every lease it inherited at
            # once, so an item is handed to a second worker while the first
            # still holds a valid lease (double execution; the first holder's
            # completion is refused as stale).
            inherited = [k for k, t in self._seen_ms.items() if t <= leader_since_ms]
            expired = [k for k, t in self._seen_ms.items() if now_ms - t >= self.lease_ms]
            return sorted(set(inherited) | set(expired))
        if now_ms - leader_since_ms < self.lease_ms:
            return []
        return sorted(k for k, t in self._seen_ms.items() if now_ms - t >= self.lease_ms)
