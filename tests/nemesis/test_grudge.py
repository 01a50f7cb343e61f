"""Properties of the partition plans."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.nemesis.grudge import (
    bisect,
    bridge,
    complete_grudge,
    connectivity,
    cut_links,
    isolate,
    majorities_ring,
    random_halves,
)

node_lists = st.integers(3, 9).map(lambda n: [f"n{i}" for i in range(1, n + 1)])
seeds = st.integers(0, 2**32)


def majority(n: int) -> int:
    return n // 2 + 1


@settings(max_examples=100, deadline=None)
@given(node_lists, seeds)
def test_random_halves_components_cover_all_nodes(nodes: list[str], seed: int) -> None:
    g = random_halves(nodes, random.Random(seed))
    assert set(g) == set(nodes)
    comps = list(nx.strongly_connected_components(connectivity(nodes, g)))
    assert sorted(len(c) for c in comps) == sorted(len(x) for x in bisect(nodes))
    assert set().union(*comps) == set(nodes)
    # never two majorities; with an odd count, exactly one side keeps a majority
    sides_with_majority = sum(len(c) >= majority(len(nodes)) for c in comps)
    assert sides_with_majority == (1 if len(nodes) % 2 else 0)


@settings(max_examples=100, deadline=None)
@given(node_lists, seeds)
def test_isolate_cuts_exactly_one_node(nodes: list[str], seed: int) -> None:
    victim = random.Random(seed).choice(nodes)
    g = isolate(victim, nodes)
    conn = connectivity(nodes, g)
    assert conn.in_degree(victim) == 0 and conn.out_degree(victim) == 0
    rest = [n for n in nodes if n != victim]
    assert nx.is_strongly_connected(conn.subgraph(rest))
    assert cut_links(g) == {(victim, n) for n in rest} | {(n, victim) for n in rest}


@settings(max_examples=100, deadline=None)
@given(node_lists, seeds)
def test_majorities_ring_every_view_is_a_distinct_majority(nodes: list[str], seed: int) -> None:
    g = majorities_ring(nodes, random.Random(seed))
    n = len(nodes)
    views = {node: frozenset(nodes) - g[node] for node in nodes}
    for node, view in views.items():
        assert node in view and len(view) == majority(n)
    # any two majorities overlap, and no single majority is seen by everyone
    for a in views.values():
        for b in views.values():
            assert a & b
    assert len(set(views.values())) == n


@settings(max_examples=100, deadline=None)
@given(node_lists, seeds)
def test_bridge_node_sees_both_sides(nodes: list[str], seed: int) -> None:
    g = bridge(nodes, random.Random(seed))
    hubs = [n for n in nodes if not g[n] and all(n not in g[m] for m in nodes)]
    assert len(hubs) == 1
    hub = hubs[0]
    conn = connectivity(nodes, g)
    rest = conn.subgraph([n for n in nodes if n != hub])
    sides = list(nx.strongly_connected_components(rest))
    assert len(sides) == 2
    for side in sides:
        for n in side:
            assert conn.has_edge(n, hub) and conn.has_edge(hub, n)
    # the whole cluster stays connected, but only through the hub
    assert nx.is_strongly_connected(conn)


def test_complete_grudge_rejects_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        complete_grudge([["a", "b"], ["b", "c"]])


def test_isolate_unknown_node() -> None:
    with pytest.raises(ValueError, match="not one of"):
        isolate("zz", ["a", "b", "c"])


def test_plans_are_reproducible_from_a_seed() -> None:
    nodes = [f"n{i}" for i in range(5)]
    assert random_halves(nodes, random.Random(7)) == random_halves(nodes, random.Random(7))
    assert majorities_ring(nodes, random.Random(7)) == majorities_ring(nodes, random.Random(7))
