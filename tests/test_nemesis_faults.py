"""The nemesis's own bookkeeping, without a cluster: per-fault healing of toxics.

Faults may overlap, so ending one network fault must remove the toxics that
fault added and leave every other fault's toxics in force.
"""

from __future__ import annotations

from typing import Any

import pytest
from fault_fakes import NODES, FakeCluster

from harness.nemesis import grudge as grudges
from harness.nemesis.faults import Nemesis, NemesisError


class FakeToxiproxy:
    """Records the toxics in force, as (proxy, name) -> type."""

    def __init__(self) -> None:
        self.toxics: dict[tuple[str, str], str] = {}
        self.fail_remove: set[tuple[str, str]] = set()

    def add_toxic(self, proxy: str, *, type: str, name: str, stream: str,
                  attributes: dict[str, Any], toxicity: float = 1.0) -> None:
        assert (proxy, name) not in self.toxics, f"{proxy}/{name} added twice"
        self.toxics[(proxy, name)] = type

    def remove_toxic(self, proxy: str, name: str) -> None:
        if (proxy, name) in self.fail_remove:
            raise OSError("proxy gone")
        del self.toxics[(proxy, name)]

    def close(self) -> None:
        pass


def fake_nemesis(nodes: tuple[str, ...] = NODES) -> tuple[Nemesis, FakeToxiproxy, FakeCluster]:
    cluster = FakeCluster(nodes)
    nem = Nemesis(cluster)  # type: ignore[arg-type]
    tp = FakeToxiproxy()
    nem.tp = tp  # type: ignore[assignment]
    return nem, tp, cluster


def test_each_network_fault_names_the_toxics_it_added() -> None:
    nem, tp, _ = fake_nemesis()
    part = nem.partition(grudges.isolate("n1", NODES))
    slow = nem.latency(nem.links_of("n2"), latency_ms=100)
    assert set(part["added"]).isdisjoint(slow["added"])
    assert {f"{p}/{n}" for p, n in tp.toxics} == set(part["added"]) | set(slow["added"])


def test_healing_one_fault_leaves_an_overlapping_one_in_force() -> None:
    nem, tp, _ = fake_nemesis()
    part = nem.partition(grudges.isolate("n1", NODES))
    slow = nem.latency(nem.links_of("n2"), latency_ms=100)
    # some links carry both a cut and a latency toxic
    assert {p for p, _ in tp.toxics if "cut" in _} & {p for p, _ in tp.toxics if "latency" in _}
    healed = nem.heal_network(part["added"])
    assert sorted(healed["removed"]) == sorted(part["added"])
    assert {f"{p}/{n}" for p, n in tp.toxics} == set(slow["added"])
    # a partition can be cut again on the same links while the latency stays
    again = nem.partition(grudges.isolate("n1", NODES))
    assert sorted(again["added"]) == sorted(part["added"])
    nem.heal_network(slow["added"])
    assert {f"{p}/{n}" for p, n in tp.toxics} == set(again["added"])
    assert sorted(nem.heal_network()["removed"]) == sorted(again["added"])
    assert tp.toxics == {}


def test_healing_only_names_nothing_removes_nothing() -> None:
    nem, tp, _ = fake_nemesis()
    nem.stall(nem.links_of("n3"))
    before = dict(tp.toxics)
    assert nem.heal_network(())["removed"] == []
    assert nem.heal_network(["n1-to-n2-peer/not-ours"])["removed"] == []
    assert tp.toxics == before


def test_heal_all_after_a_partial_heal_removes_the_rest_and_restarts() -> None:
    nem, tp, cluster = fake_nemesis()
    part = nem.partition(grudges.isolate("n2", NODES))
    slow = nem.latency(nem.links_of(None), latency_ms=50)
    nem.kill("n3")
    nem.heal_network(part["added"])
    done = nem.heal_all()
    assert sorted(done["removed"]) == sorted(slow["added"]) and done["restarted"] == ["n3"]
    assert tp.toxics == {} and cluster.calls == [("kill", "n3"), ("restart", "n3")]


def test_a_toxic_that_cannot_be_removed_is_an_error() -> None:
    nem, tp, _ = fake_nemesis()
    part = nem.partition(grudges.isolate("n1", NODES))
    proxy, name = part["added"][0].split("/")
    tp.fail_remove.add((proxy, name))
    with pytest.raises(NemesisError, match="could not remove"):
        nem.heal_network(part["added"])
    assert list(tp.toxics) == [(proxy, name)]


def test_cut_grudge_cuts_exactly_the_named_pairs() -> None:
    g = grudges.cut([("n1", "n2")], NODES)
    assert grudges.cut_links(g) == {("n1", "n2"), ("n2", "n1")}
    g5 = grudges.cut([("n1", "n2"), ("n1", "n3")], ("n1", "n2", "n3", "n4", "n5"))
    assert grudges.cut_links(g5) == {("n1", "n2"), ("n2", "n1"), ("n1", "n3"), ("n3", "n1")}
    with pytest.raises(ValueError, match="itself"):
        grudges.cut([("n1", "n1")], NODES)
    with pytest.raises(ValueError, match="not one of"):
        grudges.cut([("n1", "n9")], NODES)
