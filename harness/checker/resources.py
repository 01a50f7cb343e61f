"""Resources: did any node of the idle cluster burn more CPU than its system promises?

A system that states :class:`harness.system.PromisesCpuBound` promises each
node uses at most ``idle_cores`` of CPU when the cluster has nothing to do.
The runner records the bound (the ``promises`` op's ``cpu`` entry) and, at the
end of the run, reads every node's CPU counter before and after an idle
window (:mod:`harness.resources`). A node whose counter grew by more than
``idle_cores`` times the window is a **runaway** (``cpu-runaway``): it spins
with nothing to do.

The counters are the kernel's own accounting, so a runaway is measured, not
inferred: a machine that is busy elsewhere gives a node *less* CPU, never
more. A node read as None at either end, or restarted in between (another
incarnation), is not judged. The verdict is invalid when a node broke the
bound, valid when every node was judged and none did, and unknown when the
history holds no idle window or no node could be judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checker.availability import promise_of
from harness.checker.details import ResourcesDetails
from harness.checker.result import UNKNOWN, Result
from harness.history import History, OpType
from harness.resources import IDLE_CPU, RESOURCES

__all__ = ["has_cpu_promise", "idle_use", "idle_window", "resources"]


def has_cpu_promise(history: History) -> bool:
    """Whether the history states a CPU bound (so the checker applies)."""
    return promise_of(history.nemesis_ops(), "cpu") is not None


def idle_window(history: History) -> Mapping[str, Any] | None:
    """The runner's idle-window readings, if the history holds them."""
    for op in history.nemesis_ops():
        if op.process == RESOURCES and op.f == IDLE_CPU and op.type == OpType.INFO \
                and isinstance(op.value, Mapping):
            return op.value
    return None


def _reading(x: Any) -> tuple[str, float] | None:
    if isinstance(x, list | tuple) and len(x) == 2 and isinstance(x[1], int | float) \
            and not isinstance(x[1], bool):
        return str(x[0]), float(x[1])
    return None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def idle_use(window: Mapping[str, Any], window_s: float) -> dict[str, dict[str, Any]]:
    """Each node's CPU use over an idle window (``{"before", "after"}`` readings):
    ``{"cores", "cpu_s"}``, or ``cores`` None with why when it cannot be judged (down
    at either end, or restarted in between)."""
    raw_before, raw_after = window.get("before"), window.get("after")
    before: Mapping[str, Any] = raw_before if isinstance(raw_before, Mapping) else {}
    after: Mapping[str, Any] = raw_after if isinstance(raw_after, Mapping) else {}
    nodes: dict[str, dict[str, Any]] = {}
    for node in sorted({*map(str, before), *map(str, after)}):
        a, b = _reading(before.get(node)), _reading(after.get(node))
        if a is None or b is None or a[0] != b[0] or b[1] < a[1]:
            nodes[node] = {"cores": None, "why": "down or restarted during the window"}
        else:
            nodes[node] = {"cores": round((b[1] - a[1]) / window_s, 3),
                           "cpu_s": round(b[1] - a[1], 3)}
    return nodes


def resources(history: History) -> Result:
    """Judge the idle window against the promised bound (see the module docstring)."""
    promise = promise_of(history.nemesis_ops(), "cpu")
    bound = None if promise is None else _number(promise.get("idle_cores"))
    if promise is None or bound is None or bound <= 0:
        return Result(UNKNOWN, details=ResourcesDetails.of({
            "reason": "the history states no CPU bound ({idle_cores, window_s}): "
                      "nothing to judge against"}))
    window = idle_window(history)
    measured = None if window is None else _number(window.get("window_s"))
    if window is None or measured is None or measured <= 0:
        return Result(UNKNOWN, details=ResourcesDetails.of({
            "idle_cores": bound,
            "reason": "the history holds no idle window (the run ended before it)"}))
    nodes = idle_use(window, measured)
    runaways = [{"node": n, "cores": v["cores"], "cpu_s": v["cpu_s"]}
                for n, v in nodes.items() if v["cores"] is not None and v["cores"] > bound]
    details: dict[str, Any] = {"idle_cores": bound, "window_s": measured, "nodes": nodes,
                               "runaways": runaways}
    if runaways:
        details["anomalies"] = ["cpu-runaway"]
        details["reason"] = (
            f"{len(runaways)} node(s) above the promised {bound:g} core(s) in the idle "
            f"cluster over {measured:.2f} s: "
            + ", ".join(f"{r['node']} at {r['cores']:.2f}" for r in runaways))
        return Result(False, details=ResourcesDetails.of(details))
    if not any(n["cores"] is not None for n in nodes.values()):
        details["reason"] = "no node could be measured over the idle window: nothing to judge"
        return Result(UNKNOWN, details=ResourcesDetails.of(details))
    return Result(True, details=ResourcesDetails.of(details))
