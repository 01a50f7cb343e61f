"""``kill``: SIGKILL a node (or stop its container) and restart it when the fault ends."""

from __future__ import annotations

from typing import Any

from harness.nemesis.kinds._process import ProcessFault
from harness.nemesis.registry import BACKEND_KILLS, FaultContext

__all__ = ["KIND", "Kill"]


class Kill(ProcessFault):
    name = "kill"
    order = 20
    needs = (BACKEND_KILLS,)
    label = "kill"
    ended = "restarted"

    def apply(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        return ctx.nemesis.kill(node)

    def undo(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        return ctx.nemesis.restart(node)


KIND = Kill()
