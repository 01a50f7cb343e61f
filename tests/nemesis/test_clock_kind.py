"""The ``clock`` fault kind on a cluster that records clock offsets: every drawn fault starts,
sets what its record says, and its end resets every node it touched."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

import pytest
from fault_fakes import NODES, FakeCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import clock
from harness.cluster.docker import DockerCluster
from harness.cluster.local import LocalCluster
from harness.nemesis import registry
from harness.nemesis.kinds.clock import KIND
from harness.systems.refsys import ReferenceSystem


class ClockCluster(FakeCluster):
    """A fake cluster whose nodes have clocks: the offsets set, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[str, float] = {}
        self.sets: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def set_clock_offset(self, node: str, seconds: float) -> None:
        assert node in self.nodes
        with self._lock:
            self.offsets[node] = seconds
            self.sets.append((node, seconds))

    def clock_offset(self, node: str) -> float:
        return self.offsets.get(node, 0.0)


class Ctx:
    """The part of the fault driver a clock fault uses; ``leader`` is n2."""

    def __init__(self, cluster: ClockCluster) -> None:
        self.cluster = cluster

    def node(self, want: str, exclude: Collection[str] = ()) -> str:
        return "n2" if want == "leader" else want


def _run(params: Mapping[str, Any], hold_s: float = 0.0) -> tuple[ClockCluster, dict[str, Any],
                                                                    dict[str, Any]]:
    cluster = ClockCluster()
    ctx: Any = Ctx(cluster)
    started = KIND.start(ctx, params)
    during = dict(cluster.offsets)
    time.sleep(hold_s)
    ended = KIND.end(ctx, params, started)
    assert set(started["offsets"]) == set(ended["offsets"])
    assert all(cluster.offsets[n] == 0.0 for n in started["offsets"])  # reset
    if params["mode"] != "strobe":
        assert during == started["offsets"]
    return cluster, started, ended


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_drawn_clock_fault_sets_its_record_and_resets(data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 2**32))
    params = KIND.draw(random.Random(seed), NODES) if data.draw(st.booleans()) else \
        data.draw(KIND.strategy(NODES))
    _, started, _ = _run(params)
    assert started["moved"] == ["realtime"]
    assert set(started["offsets"]) <= set(NODES)
    text = KIND.describe(started, params)
    assert text and "bounded-drift assumption holds" in text


def test_a_strobe_flips_until_its_end() -> None:
    cluster, started, ended = _run({"mode": "strobe", "node": "leader", "delta_s": 30.0,
                                    "period_ms": 20}, hold_s=0.3)
    assert started["node"] == "n2"
    values = [s for n, s in cluster.sets if n == "n2"]
    assert values[:4] == [30.0, 0.0, 30.0, 0.0] and ended["flips"] >= 4
    assert values[-1] == 0.0


def test_heal_stops_a_strobe_left_running_and_resets_every_clock() -> None:
    cluster = ClockCluster()
    ctx: Any = Ctx(cluster)
    KIND.start(ctx, {"mode": "strobe", "node": "n1", "delta_s": 5.0, "period_ms": 10})
    cluster.set_clock_offset("n3", 7.0)
    healed = KIND.heal(ctx)
    assert healed is not None and set(healed["reset"]) <= {"n1", "n3"}
    n = len(cluster.sets)
    time.sleep(0.05)
    assert len(cluster.sets) == n  # the strobe stopped
    assert all(v == 0.0 for v in cluster.offsets.values())


@pytest.mark.parametrize("params", [
    {"mode": "warp", "node": "n1", "delta_s": 1.0},
    {"mode": "bump", "node": "n1", "delta_s": float("nan")},
    {"mode": "skew", "offsets": {}},
    {"mode": "skew", "offsets": {"n1": float("inf")}},
    {"mode": "skew", "offsets": {"n1": 5.0, "n2": float("nan")}},
    {"mode": "skew", "offsets": {"n1": 5.0, "n9": 1.0}},
    {"mode": "strobe", "node": "n1", "delta_s": 1.0, "period_ms": 0},
])
def test_bad_params_are_refused_before_any_clock_moves(params: dict[str, Any]) -> None:
    cluster = ClockCluster()
    with pytest.raises(ValueError):
        KIND.start(Ctx(cluster), params)  # type: ignore[arg-type]
    assert not cluster.sets


def test_needs_a_backend_that_steps_clocks_and_a_system_under_libfaketime() -> None:
    system = ReferenceSystem()
    assert registry.missing_abilities(KIND, system, DockerCluster) == []
    assert (registry.missing_abilities(KIND, system, LocalCluster) == []) == clock.available()
    assert registry.missing_abilities(KIND, system, FakeCluster)  # no set_clock_offset
    system.clock_control = "none"  # e.g. a statically linked Go server
    assert registry.missing_abilities(KIND, system, DockerCluster)
