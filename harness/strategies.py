"""Hypothesis strategies for fault schedules and workloads.

A pytest campaign is ``@given(schedule=fault_schedules(...))`` over real
cluster runs: when a run finds an anomaly, Hypothesis shrinks the schedule
towards fewer, shorter, earlier faults, and the smallest failing schedule is
what gets printed and stored for ``harness run --replay``.

Strategies draw faults as data (no hidden randomness left for later), so a
shrunk example replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from harness.generator import FAULT_KINDS, PARTITION_PLANS, Fault, FaultSchedule

__all__ = ["fault_schedules", "faults"]


@st.composite
def _params(draw: st.DrawFn, kind: str, nodes: Sequence[str]) -> dict[str, Any]:
    if kind == "partition":
        return {"plan": draw(st.sampled_from(PARTITION_PLANS)),
                "seed": draw(st.integers(0, 2**31 - 1))}
    if kind in ("kill", "pause"):
        return {"node": draw(st.sampled_from(["leader", *nodes]))}
    if kind == "latency":
        return {"latency_ms": draw(st.sampled_from([50, 100, 200])),
                "jitter_ms": draw(st.sampled_from([0, 20, 50])),
                "node": draw(st.sampled_from(["all", *nodes]))}
    return {"node": draw(st.sampled_from(list(nodes)))}


@st.composite
def faults(
    draw: st.DrawFn,
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    time_limit_s: float = 30.0,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
) -> Fault:
    """One fault somewhere in ``[0, time_limit_s)``; shrinks to early and short."""
    kind = draw(st.sampled_from(list(kinds)))
    # Times are whole tenths of a second, drawn as integers: Hypothesis shrinks
    # an integer in a few steps but a float in many, and with floats its shrink
    # budget could run out before it tried deleting a fault that does not matter.
    start_ds = draw(st.integers(0, max(0, int((time_limit_s - min_duration_s) * 10))))
    start = start_ds / 10
    min_ds = math.ceil(min_duration_s * 10)
    longest_ds = max(min_ds, int(min(max_duration_s, time_limit_s - start) * 10))
    dur = draw(st.integers(min_ds, longest_ds)) / 10
    return Fault(kind, start, dur, draw(_params(kind, nodes)))


@st.composite
def fault_schedules(
    draw: st.DrawFn,
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    time_limit_s: float = 30.0,
    max_faults: int = 4,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
) -> FaultSchedule:
    """A schedule of faults that never overlap (each anomaly has one cause)."""
    for k in kinds:
        if k not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {k!r}")
    drawn = draw(st.lists(
        faults(kinds=kinds, nodes=nodes, time_limit_s=time_limit_s,
               min_duration_s=min_duration_s, max_duration_s=max_duration_s),
        max_size=max_faults,
    ))
    kept: list[Fault] = []
    for f in sorted(drawn, key=lambda f: f.start_s):
        if not kept or f.start_s >= kept[-1].end_s:
            kept.append(f)
    seed = draw(st.integers(0, 2**31 - 1))
    return FaultSchedule(tuple(kept), seed)
