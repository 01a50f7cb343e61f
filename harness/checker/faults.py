"""When each fault was in force, and which nodes it hit, as checkers read it from a history.

Every fault's ``start-<kind>`` record names its ``faulty`` nodes (a killed,
paused or crashed node; the nodes a partition leaves outside its largest
connected group); a fault whose record names none (latency, clocks) may have
hit anyone. The ``stop-<kind>`` record, or the final ``heal-all``, ends it.
Checkers that excuse what a fault explains (the leadership checker, the
robustness checker's hung-up connections) share this reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import NEMESIS, History

__all__ = ["FaultInterval", "excused_by", "fault_intervals", "faulty_nodes"]


@dataclass(frozen=True)
class FaultInterval:
    """One fault: its kind, start and stop (history ns), and the nodes it hit."""

    kind: str
    start: int
    stop: int
    faulty: frozenset[str] | None  # None: the record named no faulty nodes


def faulty_nodes(record: Any) -> frozenset[str] | None:
    """The nodes a ``start-<kind>`` record names as hit; None when it names none (or the
    fault failed to start), so it may have hit anyone."""
    v = record if isinstance(record, Mapping) else {}
    faulty = v.get("faulty")
    if not isinstance(faulty, list | tuple) or "error" in v:
        return None
    return frozenset(str(x) for x in faulty)


def fault_intervals(history: History) -> tuple[list[FaultInterval], list[tuple[int, str]]]:
    """Every fault's interval (one still in force at the end stops at the history's
    last op), and every stop as ``(time, "stop-<kind>" or "heal-all")``."""
    end = max((op.time for op in history), default=0)
    open_: list[tuple[str, int, frozenset[str] | None]] = []
    done: list[FaultInterval] = []
    stops: list[tuple[int, str]] = []
    for op in history.nemesis_ops():
        if op.process != NEMESIS:
            continue
        f = str(op.f)
        if f.startswith("start-"):
            open_.append((f[6:], op.time, faulty_nodes(op.value)))
        elif f.startswith("stop-"):
            kind = f[5:]
            i = next((i for i, (k, _, _) in enumerate(open_) if k == kind), None)
            if i is not None:
                k, t0, named = open_.pop(i)
                done.append(FaultInterval(k, t0, op.time, named))
            stops.append((op.time, f))
        elif f == "heal-all":
            done.extend(FaultInterval(k, t0, op.time, named) for k, t0, named in open_)
            open_.clear()
            stops.append((op.time, f))
    done.extend(FaultInterval(k, t0, end, named) for k, t0, named in open_)
    return done, stops


def excused_by(faults: Sequence[FaultInterval], node: str, since: int, until: int
               ) -> str | None:
    """Why a fault in force at some time in ``[since, until]`` may explain what
    happened to ``node`` (it hit the node, or named no faulty nodes), or None."""
    for f in faults:
        if f.start > until or f.stop < since:
            continue
        if f.faulty is None:
            return f"{f.kind} named no faulty nodes"
        if node in f.faulty:
            return f"{f.kind} hit {node}"
    return None
