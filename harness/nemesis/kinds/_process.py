"""What ``kill`` and ``pause`` share: one node, named or by rule, held while the fault lasts."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from harness.nemesis.registry import FaultContext, FaultKind

__all__ = ["ProcessFault"]


class ProcessFault(FaultKind):
    """A fault on one node's process; another process fault may not hold the same node."""

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        return {"node": rng.choice([*nodes, "leader"])}

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"node": st.sampled_from(["leader", *nodes])})

    def apply(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        raise NotImplementedError

    def undo(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        raise NotImplementedError

    def faulty_nodes(self, started: Mapping[str, Any],
                     nodes: Sequence[str]) -> list[str] | None:
        """The node it holds (every node, for a crash of ``all``)."""
        many = started.get("nodes")
        if isinstance(many, list | tuple):
            return [str(n) for n in many]
        node = started.get("node")
        return [str(node)] if isinstance(node, str) and node in nodes else None

    def hold_targets(self, ctx: FaultContext, want: Any, none_up: str) -> list[str]:
        """Resolve ``want`` (a node, a rule, or ``"all"``: every node up) and hold each
        node for this kind; ValueError(``none_up``) when ``all`` finds none up. A node
        already held by another fault releases the ones held so far."""
        if want == "all":
            nodes = [n for n in ctx.cluster.nodes if ctx.cluster.is_running(n)]
            if not nodes:
                raise ValueError(none_up)
        else:
            nodes = [ctx.node(want)]
        held: list[str] = []
        try:
            for n in nodes:
                ctx.hold(n, self.name)
                held.append(n)
        except BaseException:
            for n in held:
                ctx.release(n)
            raise
        return nodes

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        node = ctx.node(params.get("node", "leader"))
        ctx.hold(node, self.name)
        try:
            return self.apply(ctx, node)
        except BaseException:
            ctx.release(node)
            raise

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        node = started["node"]
        ctx.release(node)
        return self.undo(ctx, node)
