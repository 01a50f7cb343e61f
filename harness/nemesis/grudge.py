"""Partition plans as data: who drops traffic from whom.

A *grudge* maps each node to the set of nodes whose traffic it drops (Jepsen's
term). Builders here are pure functions of the node list (and one seeded
``random.Random`` where a choice is random), so a plan can be printed, stored
in the history, tested, and replayed exactly; applying it to a cluster is other
code's job (the nemesis sets toxics on exactly the proxies of the cut links).

Connectivity is modelled as a networkx graph of who can still hear whom, which
makes the properties easy to state and test: components cover every node, a
majority ring gives every node a majority view, a bridge node sees both sides.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import networkx as nx

__all__ = [
    "Grudge",
    "bisect",
    "bridge",
    "complete_grudge",
    "connectivity",
    "cut",
    "cut_links",
    "isolate",
    "majorities_ring",
    "random_halves",
    "random_node",
]

Grudge = Mapping[str, frozenset[str]]


def _check(nodes: Sequence[str]) -> list[str]:
    ns = list(nodes)
    if len(ns) != len(set(ns)):
        raise ValueError(f"duplicate node names in {ns}")
    return ns


def complete_grudge(components: Iterable[Iterable[str]]) -> dict[str, frozenset[str]]:
    """Every node drops traffic from every node outside its own component."""
    comps = [frozenset(c) for c in components]
    everyone = frozenset().union(*comps) if comps else frozenset()
    if sum(len(c) for c in comps) != len(everyone):
        raise ValueError("components overlap")
    return {n: everyone - c for c in comps for n in c}


def bisect(nodes: Sequence[str]) -> list[list[str]]:
    """Two halves, the first the smaller: ``[a b c d e] -> [[a b] [c d e]]``."""
    ns = _check(nodes)
    k = len(ns) // 2
    return [ns[:k], ns[k:]]


def random_halves(nodes: Sequence[str], rng: random.Random) -> dict[str, frozenset[str]]:
    """A random minority cut off from a majority."""
    ns = _check(nodes)
    rng.shuffle(ns)
    return complete_grudge(bisect(ns))


def random_node(nodes: Sequence[str], rng: random.Random) -> str:
    return rng.choice(_check(nodes))


def isolate(node: str, nodes: Sequence[str]) -> dict[str, frozenset[str]]:
    """One node (e.g. the current leader) cut off from all others."""
    ns = _check(nodes)
    if node not in ns:
        raise ValueError(f"{node!r} is not one of {ns}")
    return complete_grudge([[node], [n for n in ns if n != node]])


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> dict[str, frozenset[str]]:
    """Every node sees a majority (itself and its nearest ring neighbours), but no two
    nodes see the same majority: the partition that breaks protocols trusting any
    majority they can see. Views are not symmetric for 4 or more nodes."""
    ns = _check(nodes)
    rng.shuffle(ns)
    n = len(ns)
    m = n // 2 + 1
    left = (m - 1) // 2
    grudge: dict[str, frozenset[str]] = {}
    for i, node in enumerate(ns):
        view = {ns[(i + d) % n] for d in range(-left, m - left)}
        grudge[node] = frozenset(ns) - view
    return grudge


def bridge(nodes: Sequence[str], rng: random.Random) -> dict[str, frozenset[str]]:
    """Two halves joined by one node that both sides can hear (and that hears both)."""
    ns = _check(nodes)
    rng.shuffle(ns)
    if len(ns) < 3:
        raise ValueError("a bridge needs at least 3 nodes")
    mid = len(ns) // 2
    a, b, hub = ns[:mid], ns[mid + 1 :], ns[mid]
    grudge = complete_grudge([a, b, [hub]])
    grudge = {n: s - {hub} for n, s in grudge.items()}
    grudge[hub] = frozenset()
    return grudge


def connectivity(nodes: Sequence[str], grudge: Grudge) -> nx.DiGraph:
    """Directed graph with an edge ``a -> b`` when b still hears a."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for a in nodes:
        for b in nodes:
            if a != b and a not in grudge.get(b, frozenset()):
                g.add_edge(a, b)
    return g


def cut_links(grudge: Grudge) -> set[tuple[str, str]]:
    """The directed links ``(src, dst)`` to cut: dst drops what src sends."""
    return {(src, dst) for dst, srcs in grudge.items() for src in srcs}


def cut(pairs: Iterable[Sequence[str]], nodes: Sequence[str]) -> dict[str, frozenset[str]]:
    """Exactly the named links cut, both ways; everything else connected.

    ``cut([("a", "b")], nodes)`` keeps a and b apart while both still hear
    every other node (with three nodes: a bridge whose ends are chosen).
    """
    ns = _check(nodes)
    drops: dict[str, set[str]] = {n: set() for n in ns}
    for a, b in pairs:
        for n in (a, b):
            if n not in drops:
                raise ValueError(f"{n!r} is not one of {ns}")
        if a == b:
            raise ValueError(f"cannot cut {a!r} from itself")
        drops[a].add(b)
        drops[b].add(a)
    return {n: frozenset(s) for n, s in drops.items()}
