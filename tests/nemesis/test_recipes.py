"""Window-stretching recipes in the random nemesis and the Hypothesis strategy.

Plain random faults are short and land anywhere, so a leader paused or cut
off is usually replaced before anything interesting happens. Recipes keep the
old leader alive past an election, kill the leader the others just elected,
and partition a node while it recovers. These tests check the schedules as
data (rate, sizes from the system's timeout, overlaps only inside a recipe,
the time limit, replay), that a failing recipe shrinks, that the fault driver
records each recipe, and one short real run with every recipe against the
correct reference system.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fault_fakes import FakeCluster
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from harness.generator import (
    DEFAULT_ELECTION_TIMEOUT_S,
    RECIPES,
    RECOVERY_WINDOW_S,
    Fault,
    FaultSchedule,
    election_window_s,
    random_schedule,
    recipe,
    recipes_for,
)
from harness.pytest_plugin import require
from harness.strategies import fault_schedules, recipes
from harness.system import election_timeout_s

NODES = ["n1", "n2", "n3"]
KINDS = ["partition", "kill", "pause"]


def _schedule(seed: int, *, timeout_s: float = 0.3, time_limit_s: float = 30.0,
              kinds: list[str] = KINDS) -> FaultSchedule:
    """As ``harness run --nemesis partition,kill,pause`` draws it for refsys (see runner.run)."""
    return random_schedule(random.Random(seed), kinds=kinds, nodes=NODES,
                           time_limit_s=time_limit_s,
                           mean_interval_s=max(2.0, time_limit_s / 6),
                           min_duration_s=min(2.0, time_limit_s / 4),
                           max_duration_s=max(2.0, min(10.0, time_limit_s / 3)),
                           election_timeout_s=timeout_s, seed=seed)


def _draws(s: FaultSchedule) -> list[list[Fault]]:
    """The schedule's draws: a recipe's faults together, a plain fault alone."""
    out: list[list[Fault]] = []
    for f in sorted(s.faults, key=lambda f: f.start_s):
        name = f.params.get("recipe")
        if out and name is not None and out[-1][0].params.get("recipe") == name \
                and len(out[-1]) < len(RECIPES[name]):
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _check_recipe(group: list[Fault], timeout_s: float, nodes: list[str] = NODES) -> None:
    """One recipe's faults have its shape, and every fault meant to outlast an
    election does (the bound the recipe exists for)."""
    name = group[0].params["recipe"]
    window = election_window_s(timeout_s)
    assert [f.kind for f in group] == list(RECIPES[name]), group
    assert all(f.params["recipe"] == name for f in group)
    eps = 1e-9
    if name == "pause-leader":
        (pause,) = group
        assert pause.params["node"] == "leader"
        assert pause.duration_s >= window - eps and pause.duration_s > timeout_s
    elif name == "isolate-leader":
        (cut,) = group
        assert cut.params["plan"] == "isolate-leader" and cut.duration_s >= window - eps
    elif name == "kill-new-leader":
        cut, kill = group
        assert cut.params["plan"] == "isolate-leader" and cut.duration_s >= window - eps
        assert kill.params["node"] == "leader"
        # after the new election, and no later than the heal: the two overlap or touch
        assert cut.start_s + window - 1e-6 <= kill.start_s <= cut.end_s + 1e-6
    else:
        kill, cut = group
        assert kill.params["node"] in [*nodes, "leader"]
        assert kill.duration_s >= window - eps and cut.duration_s >= window - eps
        assert kill.end_s - 1e-6 <= cut.start_s <= kill.end_s + RECOVERY_WINDOW_S + 1e-6
        if cut.params["plan"] == "cut":  # cut off from every other node
            victim = kill.params["node"]
            assert sorted(map(tuple, cut.params["between"])) == [
                (victim, o) for o in nodes if o != victim]
        else:
            assert cut.params["plan"] == "isolate-leader"


# ------------------------------------------------------------------ random schedules


def test_recipes_appear_at_a_sensible_rate_and_each_one_does() -> None:
    draws = [g for seed in range(400) for g in _draws(_schedule(seed))]
    names = Counter(g[0].params.get("recipe") for g in draws)
    recipe_share = 1 - names[None] / len(draws)
    assert 0.2 <= recipe_share <= 0.45, names  # RECIPE_RATE is a third
    assert set(names) == {None, *RECIPES}, names
    assert min(names[n] for n in RECIPES) >= 0.1 * sum(names[n] for n in RECIPES), names
    # most 30 s runs see at least one
    with_recipe = sum(any("recipe" in f.params for f in _schedule(seed).faults)
                      for seed in range(400))
    assert with_recipe >= 200


@pytest.mark.parametrize("system", ["refsys", "etcd", "redis", None])
def test_recipe_faults_outlast_the_systems_stated_election_timeout(system: str | None) -> None:
    from harness.systems import get_system

    timeout_s = election_timeout_s(get_system(system) if system else object())
    assert timeout_s == {"refsys": 0.3, "etcd": 0.5, "redis": 1.5,
                         None: DEFAULT_ELECTION_TIMEOUT_S}[system]
    seen: set[str] = set()
    for seed in range(150):
        for group in _draws(_schedule(seed, timeout_s=timeout_s)):
            if "recipe" in group[0].params:
                _check_recipe(group, timeout_s)
                seen.add(group[0].params["recipe"])
    assert seen == set(RECIPES)


def test_a_longer_stated_timeout_makes_longer_recipes() -> None:
    def shortest(timeout_s: float) -> float:
        return min(f.duration_s for seed in range(300)
                   for f in _schedule(seed, timeout_s=timeout_s).faults
                   if f.params.get("recipe") == "pause-leader")

    assert shortest(0.3) < 3.0  # as plain faults: the 1.6 s window is below their 2 s floor
    assert shortest(3.0) >= 7.0  # 2 x 3 s + 1 s


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), time_limit_s=st.floats(4.0, 120.0),
       timeout_s=st.sampled_from([0.1, 0.3, 0.5, 1.5, 3.0]))
def test_random_schedules_overlap_only_inside_recipes_and_fit(
        seed: int, time_limit_s: float, timeout_s: float) -> None:
    s = _schedule(seed, timeout_s=timeout_s, time_limit_s=time_limit_s)
    assert s.end_s <= time_limit_s
    draws = _draws(s)
    for a, b in itertools.pairwise(draws):
        assert max(f.end_s for f in a) <= min(f.start_s for f in b)  # draws never overlap
    for group in draws:
        if "recipe" in group[0].params:
            _check_recipe(group, timeout_s)
    # valid per FaultSchedule's rules, also as stored and read back
    assert FaultSchedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@given(st.integers(0, 10_000))
def test_random_schedules_with_recipes_replay_from_their_seed(seed: int) -> None:
    assert _schedule(seed) == _schedule(seed)
    assert _schedule(seed, timeout_s=1.5) == _schedule(seed, timeout_s=1.5)


@pytest.mark.parametrize("kinds", [["kill"], ["latency", "stall"], ["kill", "latency"]])
def test_kinds_that_allow_no_recipe_draw_as_before(kinds: list[str]) -> None:
    """No recipe needs only kills or slow links, and then no coin is tossed for
    one: such schedules are exactly those drawn before recipes existed."""
    assert recipes_for(kinds) == []
    for seed in range(30):
        assert _schedule(seed, kinds=kinds) == random_schedule(
            random.Random(seed), kinds=kinds, nodes=NODES, time_limit_s=30.0,
            mean_interval_s=5.0, min_duration_s=2.0, max_duration_s=10.0, recipe_rate=0,
            seed=seed)


def test_recipes_need_their_kinds() -> None:
    assert recipes_for(["partition"]) == ["isolate-leader"]
    assert recipes_for(["pause"]) == ["pause-leader"]
    assert recipes_for(KINDS) == list(RECIPES)
    s = _schedule(1, kinds=["pause"])
    assert all(f.kind == "pause" for f in s.faults)
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("meteor", random.Random(0), start_s=0, nodes=NODES)


# ------------------------------------------------------------------ Hypothesis


@settings(max_examples=150, deadline=None)
@given(fault_schedules(kinds=KINDS, nodes=tuple(NODES), time_limit_s=20,
                       election_timeout_s=0.5, max_faults=5))
def test_strategy_schedules_with_recipes_are_valid(s: FaultSchedule) -> None:
    assert s.end_s <= 20
    draws = _draws(s)
    for a, b in itertools.pairwise(draws):
        assert max(f.end_s for f in a) <= min(f.start_s for f in b)
    for group in draws:
        if "recipe" in group[0].params:
            _check_recipe(group, 0.5)
    assert FaultSchedule.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("name", list(RECIPES))
def test_strategy_draws_every_recipe(name: str) -> None:
    found = find(fault_schedules(kinds=KINDS, time_limit_s=20, election_timeout_s=0.5),
                 lambda s: any(f.params.get("recipe") == name for f in s.faults),
                 settings=settings(max_examples=500, database=None, deadline=None))
    assert any(f.params.get("recipe") == name for f in found.faults)


def test_strategy_draws_no_recipe_that_cannot_fit() -> None:
    # a 3 s default timeout needs 7 s faults: none fits in 6 s, so plain faults only
    @settings(max_examples=50, deadline=None)
    @given(fault_schedules(kinds=KINDS, time_limit_s=6))
    def check(s: FaultSchedule) -> None:
        assert not any("recipe" in f.params for f in s.faults)

    check()
    with pytest.raises(Unsatisfiable):
        find(recipes(kinds=KINDS, time_limit_s=6), lambda g: True,
             settings=settings(max_examples=10, database=None, deadline=None))


def _kills_the_new_leader(s: FaultSchedule) -> bool:
    """A toy bug: it shows when a leader is killed while (or just as) an isolated
    old leader's partition, in force for an election window, ends."""
    window = election_window_s(0.5)
    return any(c.kind == "partition" and c.params.get("plan") == "isolate-leader"
               and k.kind == "kill" and k.params.get("node") == "leader"
               and c.start_s + window <= k.start_s <= c.end_s
               for c in s.faults for k in s.faults)


def test_a_failing_recipe_shrinks_to_its_smallest_form() -> None:
    """The failure needs the overlapping recipe; Hypothesis drops every other
    draw and brings the recipe to the start, its faults to their floors."""
    smallest = find(fault_schedules(kinds=KINDS, time_limit_s=20, election_timeout_s=0.5),
                    _kills_the_new_leader,
                    settings=settings(max_examples=1000, database=None, deadline=None))
    assert [f.kind for f in smallest.faults] == ["partition", "kill"]
    cut, kill = smallest.faults
    assert cut.params["recipe"] == kill.params["recipe"] == "kill-new-leader"
    window = election_window_s(0.5)  # 2 s
    # (a loaded machine may stop Hypothesis a step short of the exact minimum)
    assert cut.start_s <= 0.5 and cut.duration_s <= window + 0.5
    assert kill.start_s - cut.start_s <= window + 0.5 and kill.duration_s <= 1.5


def test_a_failing_plain_fault_shrinks_out_of_a_recipe() -> None:
    """A failure any leader pause shows needs no recipe: the smallest example is a
    plain pause, not the long recipe it may first have been found with."""
    smallest = find(fault_schedules(kinds=["pause"], time_limit_s=20, election_timeout_s=0.5),
                    lambda s: any(f.params.get("node") == "leader" for f in s.faults),
                    settings=settings(max_examples=500, database=None, deadline=None))
    assert len(smallest.faults) == 1 and "recipe" not in smallest.faults[0].params
    assert smallest.faults[0].duration_s <= 1.5


# ------------------------------------------------------------------ the fault driver


class _Toxiproxy:
    def __init__(self) -> None:
        self.toxics: set[tuple[str, str]] = set()

    def add_toxic(self, proxy: str, *, type: str, name: str, stream: str,
                  attributes: dict[str, Any], toxicity: float = 1.0) -> None:
        self.toxics.add((proxy, name))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.toxics.remove((proxy, name))


class _Leader:
    """Names a fixed leader (or none), among the nodes it is asked about."""

    def __init__(self, lead: str | None) -> None:
        self.lead = lead

    def leader(self, client_addresses: dict[str, Any], *, timeout_s: float) -> str | None:
        return self.lead if self.lead in client_addresses else None


def _drive(schedule: FaultSchedule, leader: str | None) -> tuple[list[tuple[str, Any]],
                                                                   FakeCluster]:
    from harness.nemesis.driver import FaultDriver as _FaultDriver
    from harness.nemesis.faults import Nemesis

    cluster = FakeCluster()
    nem = Nemesis(cluster)  # type: ignore[arg-type]
    nem.tp = _Toxiproxy()  # type: ignore[assignment]
    ops: list[tuple[str, Any]] = []

    class Rec:
        def nemesis(self, f: str, value: Any) -> None:
            ops.append((f, value))

    driver = _FaultDriver(nem, cluster, _Leader(leader), Rec(),  # type: ignore[arg-type]
                          schedule, threading.Event())
    driver.run(time.monotonic())
    assert driver.errors == [] and driver.active == []
    return ops, cluster


def test_the_driver_records_each_faults_recipe() -> None:
    # kill-new-leader at a tenth of the scale (this fake system never elects anew)
    s = FaultSchedule((
        Fault("partition", 0.0, 0.2, {"plan": "isolate-leader", "recipe": "kill-new-leader"}),
        Fault("kill", 0.1, 0.2, {"node": "leader", "recipe": "kill-new-leader"}),
        Fault("pause", 0.35, 0.05, {"node": "n3"}),
    ))
    ops, cluster = _drive(s, "n2")
    assert [f for f, _ in ops] == ["start-partition", "start-kill", "stop-partition",
                                   "stop-kill", "start-pause", "stop-pause"]
    values = dict(ops)
    assert values["start-partition"]["recipe"] == values["start-kill"]["recipe"] \
        == "kill-new-leader"
    assert values["start-partition"]["grudge"]["n2"] == ["n1", "n3"]
    assert "recipe" not in values["start-pause"]  # a plain fault
    assert all("leader" not in v for _, v in ops)  # a leader was named each time
    assert cluster.calls == [("kill", "n2"), ("restart", "n2"), ("pause", "n3"),
                             ("resume", "n3")]


def test_the_driver_records_a_leader_rule_that_fell_back() -> None:
    s = FaultSchedule((Fault("pause", 0.0, 0.05, {"node": "leader", "recipe": "pause-leader"}),
                       Fault("kill", 0.1, 0.05, {"node": "n3"})))
    ops, _ = _drive(s, None)
    assert ops[0] == ("start-pause", {"fault": "pause", "node": "n1", "leader": None,
                                      "faulty": ["n1"], "recipe": "pause-leader"})
    # no leader was asked
    assert ops[2] == ("start-kill", {"fault": "kill", "node": "n3", "faulty": ["n3"]})


# ------------------------------------------------------------------ a real run


def _recipe_schedule(seed: int) -> FaultSchedule:
    """Every recipe once, one after another, sized from refsys's stated timeout."""
    from harness.systems.refsys import ReferenceSystem

    rng = random.Random(seed)
    timeout_s = election_timeout_s(ReferenceSystem())
    faults: list[Fault] = []
    t = 1.0
    for name in RECIPES:
        group = recipe(name, rng, start_s=t, nodes=NODES, election_timeout_s=timeout_s,
                       min_duration_s=1.0, max_duration_s=2.0)
        faults.extend(group)
        t = max(f.end_s for f in group) + 1.0
    return FaultSchedule(tuple(faults), seed)


def test_every_recipe_against_the_correct_reference_system(tmp_path: Path) -> None:
    """Each recipe's faults are really applied, as the recipe means them, and the
    correct system passes every check: no false alarm from the longer windows."""
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    from harness.runner import RunConfig, run

    sched = _recipe_schedule(7)
    assert sched.end_s <= 16.0 and sched.overlapping
    r = run(RunConfig(workload="queue", nemesis=tuple(KINDS), time_limit_s=16.0, seed=7,
                      schedule=sched, reports_dir=tmp_path, rate_hz=50.0, op_timeout_s=1.0,
                      workload_options={"lease_ms": 1000.0, "drain_quiet_s": 0.5},
                      system_options={"lease_ms": 1000.0}))
    assert r.error is None, r.error
    lines = (r.run_dir / "history.jsonl").read_text().splitlines()
    nem = [o for o in map(json.loads, filter(str.strip, lines)) if o["process"] == "nemesis"]
    starts = [o for o in nem if o["f"].startswith("start-")]
    for o in starts:
        assert "error" not in o["value"], o
        assert "leader" not in o["value"], f"no leader was named: {o}"
    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for o in starts:
        by_recipe.setdefault(o["value"]["recipe"], []).append(o)
    assert {n: [o["f"] for o in ops] for n, ops in by_recipe.items()} == {
        "pause-leader": ["start-pause"], "isolate-leader": ["start-partition"],
        "kill-new-leader": ["start-partition", "start-kill"],
        "partition-recovering": ["start-kill", "start-partition"]}

    def isolated(op: dict[str, Any]) -> str:
        grudge = op["value"]["grudge"]
        (node,) = [n for n, cut in grudge.items() if len(cut) == len(NODES) - 1]
        return str(node)

    def stop_of(start: dict[str, Any]) -> dict[str, Any]:
        kind = start["f"].removeprefix("start-")
        return next(o for o in nem if o["index"] > start["index"] and o["f"] == f"stop-{kind}"
                    and o["value"].get("node", start["value"].get("node"))
                    == start["value"].get("node"))

    window_ns = election_window_s(0.3) * 1e9
    (pause,) = by_recipe["pause-leader"]
    assert stop_of(pause)["time"] - pause["time"] >= window_ns * 0.95  # paused past it
    cut, kill = by_recipe["kill-new-leader"]
    old = isolated(cut)
    assert kill["value"]["node"] != old, "the kill hit the old leader, not the new one"
    assert kill["time"] - cut["time"] >= window_ns * 0.95
    down, cut = by_recipe["partition-recovering"]
    restarted = stop_of(down)
    assert restarted["value"] == {"fault": "restart", "node": down["value"]["node"]}
    assert 0 <= cut["time"] - restarted["time"] <= (RECOVERY_WINDOW_S + 1.0) * 1e9
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items() if v.valid is not True}
    assert r.results["queue"].details["acknowledged_count"] > 0


def test_a_run_sizes_its_random_schedule_from_the_systems_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``harness run`` without a schedule passes the system's stated timeout on (here
    refsys told 800 ms); the run itself stops at once, as no cluster is made."""
    import harness.runner as runner
    from harness.errors import HarnessError

    seen: list[float] = []
    drawn = runner.random_schedule

    def spy(rng: random.Random, **kw: Any) -> FaultSchedule:
        seen.append(kw["election_timeout_s"])
        return drawn(rng, **kw)

    def no_cluster(*_: Any) -> Any:
        raise HarnessError("no cluster in this test")

    monkeypatch.setattr(runner, "random_schedule", spy)
    monkeypatch.setattr(runner, "_make_cluster", no_cluster)
    r = runner.run(runner.RunConfig(workload="register", nemesis=tuple(KINDS),
                                    time_limit_s=30.0, seed=3, reports_dir=tmp_path,
                                    system_options={"election_timeout_ms": 800.0}))
    assert r.error == "no cluster in this test"
    assert seen == [0.8]
    stored = FaultSchedule.from_dict(json.loads((r.run_dir / "schedule.json").read_text()))
    assert stored.faults and stored.end_s <= 30.0
    for group in _draws(stored):
        if "recipe" in group[0].params:
            _check_recipe(group, 0.8)
