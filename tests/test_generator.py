"""Generators and strategies: pure, seeded, replayable."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.generator import Fault, FaultSchedule, Mix, Phase, client_ops, random_schedule
from harness.strategies import fault_schedules

MIX = Mix({"read": 2, "write": 1}, {"write": lambda rng, n: n})


def test_client_ops_respect_rate_phases_and_concurrency() -> None:
    phases = [Phase(10.0, MIX, rate_hz=50), Phase(5.0, Mix({"drain": 1}), rate_hz=10)]
    ops = list(client_ops(phases, concurrency=4, rng=random.Random(1)))
    main = [o for o in ops if o.at_s < 10]
    tail = [o for o in ops if o.at_s >= 10]
    assert 350 < len(main) < 650  # ~500 by Poisson arrivals
    assert all(o.f == "drain" for o in tail) and 20 < len(tail) < 90
    assert [o.at_s for o in ops] == sorted(o.at_s for o in ops)
    assert {o.worker for o in ops} == {0, 1, 2, 3}
    writes = [o.value for o in ops if o.f == "write"]
    assert len(writes) == len(set(writes))  # unique values


def test_client_ops_are_reproducible() -> None:
    phases = [Phase(3.0, MIX, rate_hz=100)]
    a = list(client_ops(phases, concurrency=2, rng=random.Random(5)))
    b = list(client_ops(phases, concurrency=2, rng=random.Random(5)))
    assert a == b


def test_unlimited_rate_plans_one_op_per_worker() -> None:
    ops = list(client_ops([Phase(3.0, MIX, rate_hz=0)], concurrency=3, rng=random.Random(0)))
    assert [o.worker for o in ops] == [0, 1, 2] and all(o.at_s == 0 for o in ops)


@pytest.mark.parametrize("bad", [{}, {"read": -1}, {"read": 0}])
def test_mix_rejects_bad_weights(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Mix(bad)


def draws(s: FaultSchedule) -> list[list[Fault]]:
    """A schedule's faults grouped into draws: runs of faults that overlap in time."""
    groups: list[list[Fault]] = []
    for f in sorted(s.faults, key=lambda f: f.start_s):
        if groups and f.start_s < max(g.end_s for g in groups[-1]):
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


def assert_overlaps_only_inside_recipes(s: FaultSchedule) -> None:
    for group in draws(s):
        if len(group) > 1:
            names = {f.params.get("recipe") for f in group}
            assert len(names) == 1 and None not in names, group


def test_random_schedule_faults_overlap_only_inside_recipes_and_fit() -> None:
    rng = random.Random(3)
    s = random_schedule(rng, kinds=["partition", "kill", "pause", "latency"],
                        nodes=["n1", "n2", "n3"], time_limit_s=120)
    assert s.faults
    assert any(len(g) > 1 for g in draws(s))  # this seed draws an overlapping recipe
    assert_overlaps_only_inside_recipes(s)
    assert s.end_s <= 120
    assert FaultSchedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_random_schedule_without_recipes_is_sequential() -> None:
    s = random_schedule(random.Random(3), kinds=["partition", "kill", "pause", "latency"],
                        nodes=["n1", "n2", "n3"], time_limit_s=120, recipe_rate=0)
    assert s.faults and not s.overlapping
    assert not any("recipe" in f.params for f in s.faults)


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("meteor", 0, 1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        random_schedule(random.Random(0), kinds=["meteor"], nodes=["n1"], time_limit_s=10)


@settings(max_examples=100, deadline=None)
@given(fault_schedules(time_limit_s=20, nodes=("a", "b", "c")))
def test_strategy_schedules_are_well_formed(s: FaultSchedule) -> None:
    assert_overlaps_only_inside_recipes(s)
    assert s.end_s <= 20
    for f in s.faults:
        assert f.start_s >= 0 and f.duration_s >= 1.0
        if f.kind in ("kill", "pause"):
            assert f.params["node"] in ("leader", "a", "b", "c")
    assert FaultSchedule.from_dict(s.to_dict()) == s


def test_strategy_shrinks_to_a_minimal_failing_schedule() -> None:
    """Hypothesis finds the smallest schedule that 'breaks' a toy system (any kill)."""
    from hypothesis import find

    smallest = find(fault_schedules(time_limit_s=20),
                    lambda s: any(f.kind == "kill" for f in s.faults),
                    settings=settings(max_examples=500, database=None))
    assert len(smallest.faults) == 1 and smallest.faults[0].kind == "kill"
    # Shrinking moves the fault to the start and makes it as short as allowed (a
    # loaded machine may stop Hypothesis a step short of the exact minimum).
    assert smallest.faults[0].start_s <= 1.0 and smallest.faults[0].duration_s <= 1.5


@given(st.integers(0, 1000))
def test_random_schedule_reproducible(seed: int) -> None:
    def make() -> FaultSchedule:
        return random_schedule(random.Random(seed), kinds=["partition", "pause"],
                               nodes=["n1", "n2", "n3"], time_limit_s=60.0)

    assert make() == make()


# ------------------------------------------------------------------ overlapping faults


def test_faults_of_different_kinds_may_overlap_and_round_trip() -> None:
    s = FaultSchedule((
        Fault("partition", 1.0, 5.0, {"plan": "cut", "between": [["leader", "follower"]]}),
        Fault("latency", 1.0, 5.0, {"node": "leader", "to": "follower", "latency_ms": 300}),
        Fault("kill", 2.0, 0.5, {"node": "cut-off"}),
        Fault("kill", 2.2, 0.0, {"node": "follower"}),
    ), seed=9)
    assert s.overlapping
    assert [f.kind for f in s.active_at(2.1)] == ["partition", "latency", "kill"]
    assert FaultSchedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize("kind", ["partition", "latency", "stall"])
def test_network_faults_of_one_kind_must_not_overlap(kind: str) -> None:
    with pytest.raises(ValueError, match=f"two {kind} faults overlap"):
        FaultSchedule((Fault(kind, 1.0, 3.0), Fault(kind, 3.5, 1.0), Fault(kind, 2.0, 1.0)))
    with pytest.raises(ValueError, match="overlap"):  # a stored schedule is checked too
        FaultSchedule.from_dict({"faults": [Fault(kind, 0.0, 2.0).to_dict(),
                                            Fault(kind, 1.9, 2.0).to_dict()]})
    # back to back is not overlapping, and neither is a 0 s fault at another's end
    s = FaultSchedule((Fault(kind, 1.0, 2.0), Fault(kind, 3.0, 1.0), Fault(kind, 4.0, 0.0)))
    assert not s.overlapping


def test_overlapping_is_about_time_not_the_order_faults_are_listed() -> None:
    assert not FaultSchedule((Fault("kill", 5.0, 1.0), Fault("pause", 0.0, 5.0))).overlapping
    assert FaultSchedule((Fault("kill", 5.0, 1.0), Fault("pause", 0.0, 5.5))).overlapping
    # a long fault covers a later one even when a short one ends in between
    assert FaultSchedule((Fault("kill", 0.0, 10.0), Fault("pause", 1.0, 1.0),
                          Fault("kill", 5.0, 1.0))).overlapping
    assert not FaultSchedule().overlapping


@settings(max_examples=50, deadline=None)
@given(fault_schedules(time_limit_s=20, nodes=("a", "b", "c"), with_recipes=False))
def test_generated_schedules_without_recipes_stay_sequential(s: FaultSchedule) -> None:
    assert not s.overlapping


def _drawn_without(step: str, seed: int, kw: dict[str, Any]) -> FaultSchedule:
    """The schedule ``seed`` draws with the generator's ``step`` (a pass over the
    drawn faults) left out: what the pass changed, against what was drawn."""
    import harness.generator as gen

    real = getattr(gen, step)
    try:
        setattr(gen, step, lambda faults, *_: faults)
        return gen.random_schedule(random.Random(seed), **kw)
    finally:
        setattr(gen, step, real)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_every_kind_asked_for_is_drawn_when_the_schedule_has_room(seed: int) -> None:
    """A kind the draws missed takes a duplicated kind's slot: same times, so the
    schedule's rhythm is the seed's; only when every slot's kind is unique can one miss."""
    import harness.generator as gen

    kinds = ["partition", "kill", "pause", "latency"]
    kw: dict[str, Any] = dict(kinds=kinds, nodes=["n1", "n2", "n3"], time_limit_s=30,
                              mean_interval_s=5, min_duration_s=2, max_duration_s=6,
                              election_timeout_s=0.3, recipe_rate=0.0, seed=seed)
    covered = gen.random_schedule(random.Random(seed), **kw)
    drawn = _drawn_without("_cover", seed, kw)
    assert [(f.start_s, f.duration_s) for f in covered.faults] == \
        [(f.start_s, f.duration_s) for f in drawn.faults]
    have = {f.kind for f in covered.faults}
    assert have == set(kinds) or len(have) == len(covered.faults)
    if {f.kind for f in drawn.faults} == set(kinds):
        assert covered == drawn


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_a_schedule_holding_a_kind_holds_its_decisive_variant(seed: int) -> None:
    """``missing_variants``: a power loss among the lose-unsynced crashes, the leader's
    clock stepped ahead among the clock faults; slots rewritten, never added."""
    import harness.generator as gen
    from harness.nemesis.kinds.clock import FORWARD_JUMP_S

    kw: dict[str, Any] = dict(kinds=["clock", "lose-unsynced", "flaky"], nodes=["n1", "n2", "n3"],
                              time_limit_s=30, seed=seed)
    covered = gen.random_schedule(random.Random(seed), **kw)
    drawn = _drawn_without("_cover_variants", seed, kw)
    assert [(f.kind, f.start_s, f.duration_s) for f in covered.faults] == \
        [(f.kind, f.start_s, f.duration_s) for f in drawn.faults]
    params = {k: [f.params for f in covered.faults if f.kind == k]
              for k in ("clock", "lose-unsynced")}
    if params["lose-unsynced"]:
        assert any(p["node"] == "all" for p in params["lose-unsynced"])
    if params["clock"]:
        assert any(p["mode"] in ("bump", "strobe") and p["node"] == "leader"
                   and p["delta_s"] >= FORWARD_JUMP_S for p in params["clock"])
    changed = [(a, b) for a, b in zip(drawn.faults, covered.faults, strict=True) if a != b]
    assert len(changed) <= 2 and all(a.kind == b.kind for a, b in changed)
