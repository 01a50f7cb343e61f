"""How long a final phase waits for the system to finish its backlog.

A fixed wait is wrong both ways: on a loaded machine a correct system's
backlog outlasts it (and unfinished items used to be reported as lost), and
on an idle one it wastes time when a bug has stopped all progress. So the
wait follows the work: it goes on while the backlog shrinks, and stops when

* the backlog is empty (``drained``),
* nothing finished for ``stall_s`` (``stalled``): chosen longer than a lease
  plus the system's takeover grace, so a takeover had every chance to happen,
* the time a backlog of this size needs at the completion rate measured in
  the first window (``window_s``), with a margin, has passed (``limit``):
  progress has slowed too much to wait for, and the checker will say which
  items were left unfinished. (The rate is taken from the first window on
  purpose: a limit recomputed from the running average can never be reached
  while anything at all still completes.)
* or the run's hard cap on the final phase is reached (``cap``).

The record (backlog at start and end, measured rate, the limit, time waited,
why it stopped) goes into the history as a ``settle`` op of the harness, so
the queue checker's result and the report state how long the system was
given before anything was called unfinished or stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SettleRecord", "settle"]


@dataclass(frozen=True)
class SettleRecord:
    """What a settle phase saw and decided (all times in seconds)."""

    backlog_start: int
    backlog_end: int
    completion_rate_hz: float
    limit_s: float | None  # None: nothing completed within the first window
    waited_s: float
    stopped: str  # drained, stalled, limit or cap

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settle(backlog: Callable[[], int], *, stall_s: float, poll_s: float = 0.5,
           margin: float = 2.0, window_s: float = 5.0,
           cap_passed: Callable[[], bool] = lambda: False,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> SettleRecord:
    """Poll ``backlog()`` until it is empty, stalls, or outlives its limit.

    The limit is ``stall_s + margin * backlog_start / rate``, with ``rate`` the
    completions per second over the first ``window_s`` (or, when nothing
    completed by then, up to the first completion); until it is known, only
    the stall and the cap bound the wait.
    """
    if not (stall_s > 0 and poll_s > 0 and window_s > 0 and margin >= 1):
        raise ValueError("stall_s, poll_s and window_s must be positive, margin at least 1")
    start = left = backlog()
    # the clock starts after the first count: counting a large backlog item by
    # item takes seconds, which must not read as seconds without progress
    t0 = clock()
    best, best_at = left, t0
    rate = 0.0
    limit_s = float("inf")
    stopped = "drained"
    while left > 0:
        now = clock()
        elapsed = now - t0
        if rate == 0.0 and elapsed >= window_s and start > left:
            rate = (start - left) / elapsed
            limit_s = stall_s + margin * start / rate
        if cap_passed():
            stopped = "cap"
            break
        if now - best_at >= stall_s:
            stopped = "stalled"
            break
        if elapsed >= limit_s:
            stopped = "limit"
            break
        sleep(poll_s)
        left = backlog()
        if left < best:
            best, best_at = left, clock()
    waited_s = clock() - t0
    if rate == 0.0 and start > left and waited_s > 0:
        rate = (start - left) / waited_s  # drained (or stopped) within the first window
    return SettleRecord(start, left, round(rate, 3),
                        round(limit_s, 3) if limit_s != float("inf") else None,
                        round(waited_s, 3), stopped)
