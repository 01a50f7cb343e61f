"""``latency``: delay both directions of a node's links (or every link), with jitter."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from harness.nemesis.registry import BACKEND_PROXIES_LINKS, FaultContext, FaultKind

__all__ = ["KIND", "Latency"]

LATENCIES_MS = (50, 100, 200)
JITTERS_MS = (0, 20, 50)


class Latency(FaultKind):
    name = "latency"
    order = 40
    exclusive = True
    needs = (BACKEND_PROXIES_LINKS,)
    label = "latency"
    ended = "removed"

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        return {"latency_ms": rng.choice(LATENCIES_MS), "jitter_ms": rng.choice(JITTERS_MS),
                "node": rng.choice([*nodes, "all"])}

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"latency_ms": st.sampled_from(LATENCIES_MS),
                                      "jitter_ms": st.sampled_from(JITTERS_MS),
                                      "node": st.sampled_from(["all", *nodes])})

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        return ctx.nemesis.latency(ctx.links(params),
                                   latency_ms=int(params.get("latency_ms", 100)),
                                   jitter_ms=int(params.get("jitter_ms", 0)))

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        return ctx.nemesis.heal_network(started.get("added", ()))


KIND = Latency()
