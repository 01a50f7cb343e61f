"""The ``lose-unsynced`` kind on a fake cluster: drawn either way it kills the node, drops
its unsynced writes while it is down, and restarts it at the end; a backend without the
layer is refused before a run; the report says what was dropped."""

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
from harness.nemesis.kinds.lose_unsynced import KIND


class LayeredCluster(StoppableCluster):
    """A fake cluster with the layer: records the drop, refuses it for a running node."""

    def __init__(self) -> None:
        super().__init__()

    def lose_unsynced(self, node: str, *, mode: str = "drop", seed: int | None = None
                      ) -> dict[str, int]:
        assert node in self.down, "dropped while the node runs"
        self.calls.append(("lose-unsynced", f"{node}/{mode}/{seed}"))
        return {"dropped_bytes": 10, "torn_files": int(mode == "tear"), "lost_names": 1,
                "reverted_files": 1}


def _drive(params: dict[str, Any]) -> tuple[LayeredCluster, NemesisRecorder, Any]:
    cluster = LayeredCluster()
    rec, driver = drive_one(cluster, "lose-unsynced", params)
    return cluster, rec, driver


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_either_way_it_kills_drops_then_restarts(data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="from the generator"):
        params = KIND.draw(random.Random(data.draw(st.integers(0, 2**32))), NODES)
    else:
        params = data.draw(KIND.strategy(NODES), label="params")
    cluster, rec, driver = _drive(params)
    assert driver.errors == [] and driver._held == {}
    (start, value), (stop, _) = rec.ops
    assert (start, stop) == ("start-lose-unsynced", "stop-lose-unsynced")
    mode, seed = params["mode"], params["seed"]
    if params["node"] == "all":  # a power loss: every node down before any drop
        assert cluster.calls == [*(("kill", n) for n in NODES),
                                 *(("lose-unsynced", f"{n}/{mode}/{seed + i}")
                                   for i, n in enumerate(NODES)),
                                 *(("restart", n) for n in NODES)]
        assert value["nodes"] == list(NODES) and value["dropped_bytes"] == 10 * len(NODES)
        assert "every node" in (KIND.describe(value, params) or "")
        return
    node = "n2" if params["node"] == "leader" else params["node"]
    assert cluster.calls == [("kill", node), ("lose-unsynced", f"{node}/{mode}/{seed}"),
                             ("restart", node)]
    assert value["node"] == node and value["dropped_bytes"] == 10
    assert "lost 1 unsynced names" in (KIND.describe(value, params) or "")


def test_a_bad_mode_is_recorded_as_not_applied_and_the_node_is_not_held() -> None:
    cluster, rec, driver = _drive({"node": "n1", "mode": "half"})
    assert cluster.calls == []
    assert "error" in rec.ops[0][1] and "mode" in rec.ops[0][1]["error"]
    assert driver._held == {}


def test_a_backend_without_the_layer_is_refused() -> None:
    assert registry.get("lose-unsynced") is KIND
    lacks = registry.missing_abilities(KIND, LeaderN2(), FakeCluster)
    assert [a.name for a in lacks] == [KIND.needs[-1].name]
    assert KIND.cluster_options == {"lose_unsynced": True}
