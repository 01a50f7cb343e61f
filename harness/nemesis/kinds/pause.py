"""``pause``: freeze a node (SIGSTOP, docker pause) and thaw it when the fault ends.

A paused node keeps its sockets and its state, so it comes back believing
what it believed: the old-leader bugs show here rather than under ``kill``.
"""

from __future__ import annotations

from typing import Any

from harness.nemesis.kinds._process import ProcessFault
from harness.nemesis.registry import BACKEND_PAUSES, FaultContext

__all__ = ["KIND", "Pause"]


class Pause(ProcessFault):
    name = "pause"
    order = 30
    needs = (BACKEND_PAUSES,)
    label = "pause"
    ended = "resumed"

    def apply(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        return ctx.nemesis.pause(node)

    def undo(self, ctx: FaultContext, node: str) -> dict[str, Any]:
        return ctx.nemesis.resume(node)


KIND = Pause()
