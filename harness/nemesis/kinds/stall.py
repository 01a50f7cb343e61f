"""``stall``: a node's links carry nothing (bandwidth 0) but stay open, unlike a cut."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from harness.nemesis.registry import BACKEND_PROXIES_LINKS, FaultContext, FaultKind

__all__ = ["KIND", "Stall"]


class Stall(FaultKind):
    name = "stall"
    order = 50
    exclusive = True
    needs = (BACKEND_PROXIES_LINKS,)
    label = "stall"
    ended = "removed"

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        return {"node": rng.choice(nodes)}

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"node": st.sampled_from(list(nodes))})

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        return ctx.nemesis.stall(ctx.links(params))

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        return ctx.nemesis.heal_network(started.get("added", ()))


KIND = Stall()
