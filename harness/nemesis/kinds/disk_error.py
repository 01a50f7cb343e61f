"""``disk-error``: a node's disk fails fsyncs (or writes too) with EIO, then is repaired.

A kill or a power loss tests what a node does when it *stops*; a disk error
tests what it does when it keeps running and its disk says no. The classic
mistakes are quiet ones: an fsync error retried until it "succeeds" (after a
failed writeback Linux marks the dirty pages clean, so the retry succeeds
with the data gone: PostgreSQL's "fsyncgate"), an error logged and ignored
while the write is acknowledged, or a background writer that dies of the
error while the node goes on answering requests it can no longer make
durable. A correct node stops (fail-stop) or refuses; it never acknowledges.

This kind runs on the lose-unsynced layer (:mod:`harness.lazyfs`), which
fails every fsync of the node's data directory with EIO for the fault's
window (``mode="all"``: writes too) and loses what each failed fsync should
have made durable, as the strictest kernel would. When the fault ends the
disk works again; a node that stopped itself is started at once (as its
supervisor would), and a node that kept running is restarted
``restart_after_s`` (default 1 s) later: long enough for a node that was
retrying its fsync to see it "succeed" and acknowledge, as it would in
service, and the moment it finds out what its disk really holds. The end
therefore takes that long.
The node counts as faulty while the fault lasts (a fail-stop node is down),
so the rest of the cluster must keep serving.

``"node": "all"`` fails every node's disk at once, as a storage array's or a
hypervisor's hiccup does. It is the decisive shape, as a power loss is for
``lose-unsynced``: one node's lost writes are still held by its replicas,
so a replicated system hides a node that retries or ignores the error until
every copy of an acknowledged write sat on a failing disk.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st

from harness.nemesis.kinds._process import ProcessFault
from harness.nemesis.kinds.lose_unsynced import LAYER
from harness.nemesis.registry import BACKEND_KILLS, Ability, FaultContext

__all__ = ["DISK_ERRORS", "KIND", "DiskError"]

#: ``fsync``: fsyncs fail (the data sits in the cache, then is lost); ``all``: writes too
MODES = ("fsync", "all")

#: seconds after the repair that a node which kept running is restarted
RESTART_AFTER_S = 1.0

#: the backend can make a node's disk fail (``disk_errors``), on the layer
DISK_ERRORS = Ability("backend can make a node's disk fail with EIO (disk_errors, on the "
                      "lose-unsynced layer)",
                      lambda _system, backend: callable(getattr(backend, "disk_errors", None)))


class DiskError(ProcessFault):
    name = "disk-error"
    order = 140
    needs = (BACKEND_KILLS, LAYER, DISK_ERRORS)
    label = "disk error"
    ended = "repaired and restarted"
    cluster_options: ClassVar[Mapping[str, Any]] = {"lose_unsynced": True}

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        # The leader most often among single nodes: it is the node that acknowledges.
        r = rng.random()
        node = "all" if r < 0.3 else "leader" if r < 0.65 else rng.choice(list(nodes))
        return {"node": node, "mode": "fsync" if rng.random() < 0.75 else "all"}

    def missing_variants(self, drawn: Sequence[Mapping[str, Any]], rng: random.Random,
                         nodes: Sequence[str]) -> list[dict[str, Any]]:
        # Every disk at once: the one shape a replicated system cannot mask.
        if any(p.get("node") == "all" for p in drawn):
            return []
        return [{"node": "all", "mode": "fsync"}]

    def strategy(self, nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"node": st.sampled_from(["leader", *nodes, "all"]),
                                      "mode": st.sampled_from(MODES)})

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        mode = str(params.get("mode", "fsync"))
        if mode not in MODES:
            raise ValueError(f"disk-error mode must be one of {MODES}, not {mode!r}")
        want = params.get("node", "leader")
        nodes = self.hold_targets(ctx, want, "no node is up whose disk could fail")
        try:
            for n in nodes:
                ctx.cluster.disk_errors(n, mode)  # type: ignore[attr-defined]
        except BaseException:
            for n in nodes:
                with contextlib.suppress(Exception):
                    ctx.cluster.disk_errors(n, "none")  # type: ignore[attr-defined]
                ctx.release(n)
            raise
        if want == "all":
            return {"fault": self.name, "node": "all", "nodes": nodes, "mode": mode}
        return {"fault": self.name, "node": nodes[0], "mode": mode}

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        nodes = [str(n) for n in started.get("nodes") or [started["node"]]]
        repaired: dict[str, dict[str, Any]] = {}
        try:
            for n in nodes:  # every disk works again before any node restarts
                failed = dict(ctx.cluster.disk_errors(n, "none"))  # type: ignore[attr-defined]
                repaired[n] = {"stopped_itself": not ctx.cluster.is_running(n), **failed}
            running = [n for n in nodes if not repaired[n]["stopped_itself"]]
            for n in nodes:
                if n not in running:
                    ctx.nemesis.restart(n)
            if running:
                time.sleep(max(0.0, float(params.get("restart_after_s", RESTART_AFTER_S))))
                for n in running:
                    ctx.nemesis.kill(n)
                    ctx.nemesis.restart(n)
        finally:
            for n in nodes:
                ctx.release(n)
        if len(nodes) == 1:
            return {"fault": "disk-repaired", "node": nodes[0], **repaired[nodes[0]]}
        return {"fault": "disk-repaired", "node": "all", "nodes": nodes,
                "stopped_themselves": [n for n in nodes if repaired[n]["stopped_itself"]],
                "failed_ops": sum(r["failed_ops"] for r in repaired.values()),
                "lost_bytes": sum(r["lost_bytes"] for r in repaired.values())}

    def describe(self, value: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
        node = value.get("node")
        if node is None:
            return None
        what = "fsyncs and writes" if value.get("mode") == "all" else "fsyncs"
        if node == "all":
            return (f"every node's disk ({', '.join(value.get('nodes') or [])}) failed its "
                    f"{what} with EIO at once, losing what each failed fsync should have "
                    f"made durable")
        return (f"{node}'s disk failed its {what} with EIO, losing what each failed fsync "
                f"should have made durable")

    def heal(self, ctx: FaultContext) -> dict[str, Any] | None:
        healed = []
        for node in ctx.cluster.nodes:
            try:
                failed = ctx.cluster.disk_errors(node, "none")  # type: ignore[attr-defined]
            except Exception:  # no layer, or gone with the cluster
                continue
            if failed.get("was_failing"):
                healed.append(node)
        return {"fault": "disk-repaired", "nodes": healed} if healed else None


KIND = DiskError()
