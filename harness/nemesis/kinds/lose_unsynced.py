"""``lose-unsynced``: crash a node and lose what it wrote but did not fsync (Jepsen's lazyfs).

A SIGKILL alone never loses a write: the kernel outlives the process and
writes its page cache back, so a node that acknowledges before fsyncing (the
seeded bug ``no_fsync``) or keeps a promise only in memory passes every kill.
This kind runs on a cluster built with the lose-unsynced layer
(:mod:`harness.lazyfs`) under every node's data directory: it kills the node,
tells the node's layer to drop every write and every name not made durable
by an fsync (``mode="drop"``), or to keep a random prefix of the unsynced
writes with the last one cut (``mode="tear"``, seeded by ``seed``), and
restarts the node when the fault ends. The record says what was dropped.
``"node": "all"`` crashes every node that is up at once, as a power loss of
the whole cluster does (Jepsen's ``:all`` target): the one crash a cluster
cannot heal from its replicas, so what it loses is what no node synced.

The cluster must be built with the layer from the start (a layer mounted
later would treat everything already written as durable): a kind's
``cluster_options`` are what the runner passes to the backend when a run
uses the kind.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st

from harness.nemesis.kinds._process import ProcessFault
from harness.nemesis.registry import BACKEND_KILLS, Ability, FaultContext

__all__ = ["KIND", "LAYER", "LoseUnsynced"]

MODES = ("drop", "tear")


def _has_layer(_system: Any, backend: Any) -> bool:
    from harness.lazyfs import available

    return callable(getattr(backend, "lose_unsynced", None)) and available() is None


#: the backend mounts the lose-unsynced layer under each node's data directory (and this
#: host can mount it: /dev/fuse, libfuse2, fusepy)
LAYER = Ability("backend mounts the lose-unsynced FUSE layer under each node's data "
                "directory (needs /dev/fuse, libfuse2 and fusepy on the host)", _has_layer)


class LoseUnsynced(ProcessFault):
    name = "lose-unsynced"
    order = 120
    needs = (BACKEND_KILLS, LAYER)
    label = "crash losing unsynced writes"
    ended = "restarted"
    cluster_options: ClassVar[Mapping[str, Any]] = {"lose_unsynced": True}

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        # Half the draws are a power loss: one node's crash is healed from its
        # replicas (for a node that fsyncs, it is a kill), so only losing every
        # node's cache at once shows what no node synced.
        node = "all" if rng.random() < 0.5 else rng.choice([*nodes, "leader"])
        return {"node": node, "mode": rng.choice(MODES), "seed": rng.randrange(2**31)}

    def missing_variants(self, drawn: Sequence[Mapping[str, Any]], rng: random.Random,
                         nodes: Sequence[str]) -> list[dict[str, Any]]:
        # A power loss: the one crash that shows what no node made durable.
        if any(p.get("node") == "all" for p in drawn):
            return []
        return [{"node": "all", "mode": rng.choice(MODES), "seed": rng.randrange(2**31)}]

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        # drop first: losing every unsynced write is the simplest crash to read
        return st.fixed_dictionaries({"node": st.sampled_from(["leader", *nodes, "all"]),
                                      "mode": st.sampled_from(MODES),
                                      "seed": st.integers(0, 2**31 - 1)})

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        mode = str(params.get("mode", "drop"))
        if mode not in MODES:
            raise ValueError(f"lose-unsynced mode must be one of {MODES}, not {mode!r}")
        raw_seed = params.get("seed")
        seed = None if raw_seed is None else int(raw_seed)
        want = params.get("node", "leader")
        nodes = self.hold_targets(ctx, want, "no node is up to crash")
        try:
            for n in nodes:  # every node down before any drop: one power loss
                ctx.nemesis.kill(n)
            dropped = {n: dict(ctx.cluster.lose_unsynced(  # type: ignore[attr-defined]
                n, mode=mode, seed=None if seed is None else seed + i))
                for i, n in enumerate(nodes)}
        except BaseException:
            for n in nodes:
                ctx.release(n)
            raise
        if want != "all":
            return {"fault": self.name, "node": nodes[0], "mode": mode, **dropped[nodes[0]]}
        total = {k: sum(d[k] for d in dropped.values()) for k in next(iter(dropped.values()))}
        return {"fault": self.name, "node": "all", "nodes": nodes, "mode": mode, **total,
                "per_node": dropped}

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        nodes = list(started.get("nodes") or [started["node"]])
        for n in nodes:
            ctx.release(n)
        restarted = [ctx.nemesis.restart(n) for n in nodes]
        return restarted[0] if len(restarted) == 1 else {"fault": "restart", "nodes": nodes}

    def describe(self, value: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
        node = value.get("node")
        if node is None:
            return None
        who = (f"every node ({', '.join(value.get('nodes') or [])}) crashed at once"
               if node == "all" else f"{node} crashed")
        how = "kept a torn prefix of" if value.get("mode") == "tear" else "dropped"
        return (f"{who}; the disk {how} {value.get('dropped_bytes', 0)} unsynced "
                f"bytes of writes and lost {value.get('lost_names', 0)} unsynced names")


KIND = LoseUnsynced()
