"""The ``disk-error`` kind on a fake cluster: drawn either way it turns the node's disk
errors on and, at its end, off again and restarts the node (killing it first only
when it kept running); a backend without the layer is refused before a run."""

from __future__ import annotations

import random
from typing import Any

from fault_fakes import (
    NODES,
    FakeCluster,
    LeaderN2,
    NemesisRecorder,
    StoppableCluster,
    drive_one,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.nemesis import registry
from harness.nemesis.kinds.disk_error import KIND


class FailingDiskCluster(StoppableCluster):
    """A fake cluster whose disks can fail; a node may stop itself when they do."""

    def __init__(self, *, stops_itself: bool) -> None:
        super().__init__()
        self.stops_itself = stops_itself
        self.down: set[str] = set()
        self.failing: dict[str, str] = {}

    def disk_errors(self, node: str, mode: str) -> dict[str, int]:
        was = self.failing.pop(node, "none")
        if mode != "none":
            self.failing[node] = mode
            if self.stops_itself:  # a fail-stop node exits at its first failed fsync
                self.down.add(node)
        self.calls.append(("disk", f"{node}/{mode}"))
        return {"failed_ops": 3, "lost_bytes": 40, "was_failing": int(was != "none")}


def _drive(params: dict[str, Any], *, stops_itself: bool
           ) -> tuple[FailingDiskCluster, NemesisRecorder, Any]:
    params = {**params, "restart_after_s": 0.0}  # the fakes need no time to acknowledge
    cluster = FailingDiskCluster(stops_itself=stops_itself)
    rec, driver = drive_one(cluster, "disk-error", params)
    return cluster, rec, driver


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_either_way_it_fails_the_disk_then_repairs_and_restarts(
        data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="from the generator"):
        params = KIND.draw(random.Random(data.draw(st.integers(0, 2**32))), NODES)
    else:
        params = data.draw(KIND.strategy(NODES), label="params")
    stops_itself = data.draw(st.booleans(), label="the node stops itself")
    cluster, rec, driver = _drive(params, stops_itself=stops_itself)
    assert driver.errors == [] and driver._held == {}
    (start, value), (stop, ended) = rec.ops
    assert (start, stop) == ("start-disk-error", "stop-disk-error")
    mode = params["mode"]
    assert cluster.failing == {} and cluster.down == set()
    if params["node"] == "all":  # every disk fails, then every disk is repaired first
        restart = ([("restart", n) for n in NODES] if stops_itself
                   else [c for n in NODES for c in (("kill", n), ("restart", n))])
        assert cluster.calls == [*(("disk", f"{n}/{mode}") for n in NODES),
                                 *(("disk", f"{n}/none") for n in NODES), *restart]
        assert value == {"fault": "disk-error", "node": "all", "nodes": list(NODES),
                         "mode": mode, "faulty": list(NODES)}
        assert ended["stopped_themselves"] == (list(NODES) if stops_itself else [])
        assert "every node's disk" in (KIND.describe(value, params) or "")
        return
    node = "n2" if params["node"] == "leader" else params["node"]
    restart = [("restart", node)] if stops_itself else [("kill", node), ("restart", node)]
    assert cluster.calls == [("disk", f"{node}/{mode}"), ("disk", f"{node}/none"), *restart]
    assert value == {"fault": "disk-error", "node": node, "mode": mode, "faulty": [node]}
    assert ended["stopped_itself"] is stops_itself and ended["failed_ops"] == 3
    assert KIND.faulty_nodes(value, NODES) == [node]
    assert "EIO" in (KIND.describe(value, params) or "")


def test_a_bad_mode_is_recorded_as_not_applied_and_the_node_is_not_held() -> None:
    cluster, rec, driver = _drive({"node": "n1", "mode": "half"}, stops_itself=False)
    assert cluster.calls == []
    assert "error" in rec.ops[0][1] and "mode" in rec.ops[0][1]["error"]
    assert driver._held == {}


def test_a_schedule_holding_the_kind_holds_every_disk_failing_at_once() -> None:
    rng = random.Random(3)
    assert KIND.missing_variants([{"node": "n1", "mode": "fsync"}], rng, NODES) == [
        {"node": "all", "mode": "fsync"}]
    assert KIND.missing_variants([{"node": "all", "mode": "all"}], rng, NODES) == []


def test_heal_turns_off_a_disk_left_failing() -> None:
    cluster = FailingDiskCluster(stops_itself=False)
    cluster.failing["n3"] = "fsync"

    class Ctx:
        pass

    ctx: Any = Ctx()
    ctx.cluster = cluster
    assert KIND.heal(ctx) == {"fault": "disk-repaired", "nodes": ["n3"]}
    assert cluster.failing == {}
    assert KIND.heal(ctx) is None


def test_a_backend_without_the_layer_is_refused() -> None:
    assert registry.get("disk-error") is KIND
    lacks = {a.name for a in registry.missing_abilities(KIND, LeaderN2(), FakeCluster)}
    assert {a.name for a in KIND.needs[1:]} <= lacks
    assert KIND.cluster_options == {"lose_unsynced": True}
