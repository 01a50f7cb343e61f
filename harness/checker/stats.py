"""Counts of outcomes per operation: the first thing to look at after a run.

Not a correctness check: a run where nothing succeeded is still "valid" for
the other checkers, so this one says ``unknown`` when some ``f`` never once
succeeded, as Jepsen's stats checker does, to keep a dead cluster from
passing silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from harness.checker.details import StatsDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import History

__all__ = ["stats"]


def stats(history: History, *, required: Collection[str] | None = None) -> Result:
    """Counts per ``f``; unknown when a required ``f`` (default: every ``f``) never succeeded.

    A workload names the operations without which its other checks would pass
    vacuously (a register with no successful write); an operation that may
    legitimately always fail in a campaign (renewing an already-expired lease)
    is then reported but does not make the run unknown.
    """
    by_f: dict[str, Counter[str]] = {}
    for call in history.calls():
        by_f.setdefault(call.f, Counter())[call.type.value] += 1
    details: dict[str, Any] = {
        "by_f": {f: {"ok": c["ok"], "fail": c["fail"], "info": c["info"]} for f, c in by_f.items()},
        "count": sum(sum(c.values()) for c in by_f.values()),
    }
    wanted = set(by_f) if required is None else set(required)
    never_ok = sorted(f for f in wanted if by_f.get(f, Counter())["ok"] == 0)
    if never_ok:
        details["never_ok"] = never_ok
        return Result(UNKNOWN, checker="stats", details=StatsDetails.of(details))
    return Result(True, checker="stats", details=StatsDetails.of(details))
