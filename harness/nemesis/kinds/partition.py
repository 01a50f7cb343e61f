"""``partition``: cut links so that nodes stop hearing each other (Jepsen's partitions).

A plan names the cut as data (a plan name and a seed, or the pairs to cut), and
the grudge is built when the fault starts, since ``isolate-leader`` can only
know then who leads. The fault driver keeps the grudge in force, so rules like
``follower`` and ``minority`` resolve against it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
from hypothesis import strategies as st

from harness.nemesis import grudge as grudges
from harness.nemesis.registry import BACKEND_PROXIES_LINKS, FaultContext, FaultKind

__all__ = ["KIND", "PLANS", "Partition"]

#: the plans a random draw picks from (``cut`` names its pairs, so only recipes use it)
PLANS = ("random-halves", "isolate-one", "isolate-leader", "majorities-ring", "bridge")


class Partition(FaultKind):
    name = "partition"
    order = 10
    exclusive = True
    needs = (BACKEND_PROXIES_LINKS,)
    label = "partition"
    ended = "healed"

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        return {"plan": rng.choice(PLANS), "seed": rng.randrange(2**31)}

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"plan": st.sampled_from(PLANS),
                                      "seed": st.integers(0, 2**31 - 1)})

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        nodes = list(ctx.cluster.nodes)
        rng = random.Random(params.get("seed", 0))
        plan = params.get("plan", "random-halves")
        if plan == "isolate-leader":
            g = grudges.isolate(ctx.node("leader"), nodes)
        elif plan == "isolate-one":
            g = grudges.isolate(rng.choice(nodes), nodes)
        elif plan == "majorities-ring":
            g = grudges.majorities_ring(nodes, rng)
        elif plan == "bridge" and len(nodes) >= 3:
            g = grudges.bridge(nodes, rng)
        elif plan == "cut":
            pairs = []
            for a, b in params.get("between", ()):
                na = ctx.node(a)
                pairs.append((na, ctx.node(b, exclude={na})))
            g = grudges.cut(pairs, nodes)
        else:
            g = grudges.random_halves(nodes, rng)
        out = {**ctx.nemesis.partition(g), "plan": plan}
        ctx.grudge = g
        return out

    def faulty_nodes(self, started: Mapping[str, Any],
                     nodes: Sequence[str]) -> list[str] | None:
        """The nodes outside a largest group whose members all hear each other both
        ways (any largest group: only its size decides whether a majority serves)."""
        raw = started.get("grudge")
        if not isinstance(raw, Mapping):
            return None
        grudge = {str(k): frozenset(map(str, v)) for k, v in raw.items()
                  if isinstance(v, list | tuple | set | frozenset)}
        heard = grudges.connectivity(list(nodes), grudge)
        both = nx.Graph((a, b) for a, b in heard.edges if heard.has_edge(b, a))
        both.add_nodes_from(nodes)
        group = max(nx.find_cliques(both), key=lambda c: (len(c), sorted(c)))
        return sorted(set(nodes) - set(group))

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        ctx.grudge = None
        return ctx.nemesis.heal_network(started.get("added", ()))


KIND = Partition()
