"""Hypothesis strategies for fault schedules and workloads.

A pytest campaign is ``@given(schedule=fault_schedules(...))`` over real
cluster runs: when a run finds an anomaly, Hypothesis shrinks the schedule
towards fewer, shorter, earlier faults, and the smallest failing schedule is
what gets printed and stored for ``harness run --replay``. Schedules mix in
the window-stretching recipes of :data:`harness.generator.RECIPES`, drawn so
that they shrink too: to the earliest start, to faults just past the election
window, to the kill right after the new election, and to a plain fault when
the anomaly does not need the recipe.

Strategies draw faults as data (no hidden randomness left for later), so a
shrunk example replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from harness.generator import (
    DEFAULT_ELECTION_TIMEOUT_S,
    RECOVERY_WINDOW_S,
    Fault,
    FaultSchedule,
    election_window_s,
    recipes_for,
)
from harness.nemesis import registry

__all__ = ["fault_schedules", "faults", "recipes"]


def _params(kind: str, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One fault's parameters, as its kind draws them (see :mod:`harness.nemesis.kinds`)."""
    return registry.get(kind).strategy(nodes)


def _all_kinds() -> tuple[str, ...]:
    return registry.names()


@st.composite
def faults(
    draw: st.DrawFn,
    *,
    kinds: Sequence[str] | None = None,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    time_limit_s: float = 30.0,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
) -> Fault:
    """One fault somewhere in ``[0, time_limit_s)``; shrinks to early and short.

    ``kinds``: the kinds to draw from (default: every registered kind)."""
    kind = draw(st.sampled_from(list(kinds if kinds is not None else _all_kinds())))
    # Times are whole tenths of a second, drawn as integers: Hypothesis shrinks
    # an integer in a few steps but a float in many, and with floats its shrink
    # budget could run out before it tried deleting a fault that does not matter.
    start_ds = draw(st.integers(0, max(0, int((time_limit_s - min_duration_s) * 10))))
    start = start_ds / 10
    min_ds = math.ceil(min_duration_s * 10)
    longest_ds = max(min_ds, int(min(max_duration_s, time_limit_s - start) * 10))
    dur = draw(st.integers(min_ds, longest_ds)) / 10
    return Fault(kind, start, dur, draw(_params(kind, nodes)))


@dataclass(frozen=True)
class _Tenths:
    """A recipe's bounds in whole tenths of a second (see ``faults`` on why integers)."""

    window: int  # the election window
    long: int  # shortest fault that must outlast an election
    longest: int  # longest such fault
    short: int  # shortest plain fault
    longest_short: int  # longest plain fault
    limit: int  # the time limit

    @staticmethod
    def of(election_timeout_s: float, min_duration_s: float, max_duration_s: float,
           time_limit_s: float) -> _Tenths:
        window = math.ceil(round(election_window_s(election_timeout_s) * 10, 6))
        short = math.ceil(round(min_duration_s * 10, 6))
        long = max(short, window)
        return _Tenths(window, long, max(long, int(max_duration_s * 10)), short,
                       max(short, int(max_duration_s * 10)), int(time_limit_s * 10))

    def span(self, name: str) -> int:
        """The shortest a recipe can be, start to last end."""
        if name == "kill-new-leader":
            return max(self.long, self.window + self.short)
        if name == "partition-recovering":
            return 2 * self.long
        return self.long


def _between(draw: st.DrawFn, lo: int, hi: int) -> int:
    """An integer in ``[lo, max(lo, hi)]``; shrinks to ``lo``."""
    return draw(st.integers(lo, max(lo, hi)))


@st.composite
def recipes(
    draw: st.DrawFn,
    *,
    kinds: Sequence[str] | None = None,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    time_limit_s: float = 30.0,
    election_timeout_s: float = DEFAULT_ELECTION_TIMEOUT_S,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
) -> tuple[Fault, ...]:
    """The faults of one recipe that ``kinds`` allow and that fits in the time limit.

    Shaped as :func:`harness.generator.recipe` draws them, in tenths of a
    second; each bound that matters (fault past the election window, kill after
    the new election and before the heal, partition within
    :data:`~harness.generator.RECOVERY_WINDOW_S` of the restart) is the low end
    of its range, so shrinking keeps the recipe's point while making it short.
    Fails (``nothing()``) when no recipe fits.
    """
    b = _Tenths.of(election_timeout_s, min_duration_s, max_duration_s, time_limit_s)
    kinds = kinds if kinds is not None else _all_kinds()
    fitting = [n for n in recipes_for(kinds) if b.span(n) <= b.limit]
    if not fitting:
        return draw(st.nothing())
    name = draw(st.sampled_from(fitting))
    tag = {"recipe": name}
    start = draw(st.integers(0, b.limit - b.span(name)))
    room = b.limit - start  # tenths left for the recipe

    def long(most: int) -> int:
        return _between(draw, b.long, min(b.longest, most))

    isolate = {"plan": "isolate-leader", **tag}
    if name == "pause-leader":
        return (Fault("pause", start / 10, long(room) / 10, {"node": "leader", **tag}),)
    if name == "isolate-leader":
        return (Fault("partition", start / 10, long(room) / 10, isolate),)
    if name == "kill-new-leader":
        cut = long(room)
        kill_at = _between(draw, b.window, min(cut, room - b.short))
        kill = _between(draw, b.short, min(b.longest_short, room - kill_at))
        return (Fault("partition", start / 10, cut / 10, isolate),
                Fault("kill", (start + kill_at) / 10, kill / 10, {"node": "leader", **tag}))
    # partition-recovering: the leader first, so a victim shrinks to the plain rule
    victim = draw(st.sampled_from(["leader", *nodes]))
    down = long(room - b.long)
    after = down + _between(draw, 0, min(int(RECOVERY_WINDOW_S * 10), room - down - b.long))
    plan: dict[str, Any] = isolate
    if victim != "leader" and draw(st.booleans()):
        plan = {"plan": "cut", "between": [[victim, o] for o in nodes if o != victim], **tag}
    return (Fault("kill", start / 10, down / 10, {"node": victim, **tag}),
            Fault("partition", (start + after) / 10, long(room - after) / 10, plan))


@st.composite
def fault_schedules(
    draw: st.DrawFn,
    *,
    kinds: Sequence[str] | None = None,
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    time_limit_s: float = 30.0,
    max_faults: int = 4,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
    election_timeout_s: float = DEFAULT_ELECTION_TIMEOUT_S,
    with_recipes: bool = True,
) -> FaultSchedule:
    """A schedule of up to ``max_faults`` draws, each a plain fault or a recipe.

    Draws never overlap one another (each anomaly has one cause); faults
    overlap only inside a recipe. A plain fault comes first in the choice, so
    a draw shrinks from a recipe to a plain fault when the anomaly allows.
    """
    kinds = kinds if kinds is not None else _all_kinds()
    for k in kinds:
        if k not in _all_kinds():
            raise ValueError(f"unknown fault kind {k!r}")
    unit: st.SearchStrategy[tuple[Fault, ...]] = faults(
        kinds=kinds, nodes=nodes, time_limit_s=time_limit_s,
        min_duration_s=min_duration_s, max_duration_s=max_duration_s).map(lambda f: (f,))
    b = _Tenths.of(election_timeout_s, min_duration_s, max_duration_s, time_limit_s)
    if with_recipes and any(b.span(n) <= b.limit for n in recipes_for(kinds)):
        unit = st.one_of(unit, recipes(
            kinds=kinds, nodes=nodes, time_limit_s=time_limit_s,
            election_timeout_s=election_timeout_s, min_duration_s=min_duration_s,
            max_duration_s=max_duration_s))
    drawn = draw(st.lists(unit, max_size=max_faults))
    kept: list[tuple[Fault, ...]] = []
    for group in sorted(drawn, key=lambda g: min(f.start_s for f in g)):
        if not kept or min(f.start_s for f in group) >= max(f.end_s for f in kept[-1]):
            kept.append(group)
    seed = draw(st.integers(0, 2**31 - 1))
    return FaultSchedule(tuple(f for g in kept for f in g), seed)
