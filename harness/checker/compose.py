"""Running several checkers over one history, safely.

A checker that raises must not take the whole analysis down, nor be mistaken
for a pass: its result becomes ``"unknown"`` carrying the error. The composed
verdict follows Jepsen: any invalid makes the whole invalid, then any unknown
makes it unknown.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping

from harness.checker.details import details_for
from harness.checker.result import UNKNOWN, Result, merge_validity
from harness.history import History

__all__ = ["Checker", "compose", "run_checker"]

Checker = Callable[[History], Result]


def run_checker(name: str, checker: Checker, history: History) -> Result:
    """Run one checker; an exception becomes an ``unknown`` result, never a crash."""
    t0 = time.perf_counter()
    try:
        result = checker(history)
    except Exception as e:
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        result = Result(UNKNOWN, checker=name, error=f"checker raised {tb}")
    if not isinstance(result, Result):
        result = Result(UNKNOWN, checker=name, error=f"checker returned {type(result).__name__}")
    details = details_for(name, result.details)  # typed, whatever the checker returned
    if "elapsed_s" not in details:
        details = details.with_(elapsed_s=round(time.perf_counter() - t0, 6))
    return Result(result.valid, checker=name, details=details, error=result.error)


def compose(checkers: Mapping[str, Checker]) -> Checker:
    """A checker that runs each named checker and merges their verdicts."""

    def composed(history: History) -> Result:
        results = {name: run_checker(name, c, history) for name, c in checkers.items()}
        valid = merge_validity([r.valid for r in results.values()])
        return Result(valid, checker="compose", details={"results": results})

    return composed
