"""Measuring every node's CPU time in the idle cluster, for a system that promises a bound.

For a system that states :class:`harness.system.PromisesCpuBound`, on a
backend that can measure it (:class:`harness.cluster.backend.MeasuresCpu`),
the runner records the promise with the others and, at the very end of the
run (faults healed, final reads done, replicas read, the leadership observer
stopped), holds the cluster idle for the bound's window: no client, no fault,
no probe. :func:`measure_idle_cpu` reads each node's CPU counter before and
after and records one op of the non-client process :data:`RESOURCES`, ``f``
:data:`IDLE_CPU`, value ``{"window_s", "before": {node: [incarnation, seconds]
or None}, "after": {...}}``. The ``resources`` checker
(:mod:`harness.checker.resources`) judges the difference.

Why idle: what a node needs under load depends on the load (a run without a
rate limit takes all the CPU its leader can get), so no bound fits every
workload; with nothing to do, a healthy node only keeps time and exchanges
heartbeats, a few percent of a core, while a node that spins (a tick loop
that never sleeps, a timer whose deadline is always past, a resend of what
was acknowledged) takes whatever the machine gives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.cluster.backend import MeasuresCpu
from harness.history import Op, OpType
from harness.system import PromisesCpuBound

__all__ = ["IDLE_CPU", "RESOURCES", "cpu_promise", "measure_idle_cpu", "sample_cpu"]

RESOURCES = "resources"
"""The process of the CPU readings (not a client, not the nemesis)."""

IDLE_CPU = "idle-cpu"
"""The ``f`` of the idle window's readings."""

Record = Callable[..., Op]


def cpu_promise(system: object, cluster: object, nodes: Sequence[str] = ()
                ) -> dict[str, Any] | None:
    """The promise as the runner records it (``{"idle_cores", "window_s"}``), or None
    when the system states none or the backend cannot measure it: a backend without
    :class:`MeasuresCpu`, or one that reads none of ``nodes`` now (a Docker engine on
    another host, whose cgroups this host cannot see). Then the checker is not
    planned: the environment, not the system, lacks the evidence."""
    if not isinstance(system, PromisesCpuBound) or not isinstance(cluster, MeasuresCpu):
        return None
    if nodes and not any(v is not None for v in sample_cpu(cluster, nodes).values()):
        return None
    bound = system.cpu_bound()
    return {"idle_cores": float(bound.idle_cores), "window_s": float(bound.window_s)}


def sample_cpu(cluster: MeasuresCpu, nodes: Sequence[str]) -> dict[str, Any]:
    """One reading of every node (a backend error reads as None: no evidence)."""
    seen: dict[str, Any] = {}
    for node in nodes:
        try:
            usage = cluster.cpu_usage(node)
        except Exception:
            usage = None
        seen[node] = None if usage is None else [str(usage[0]), float(usage[1])]
    return seen


def measure_idle_cpu(cluster: MeasuresCpu, record: Record, nodes: Sequence[str], *,
                     window_s: float, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Read every node, wait ``window_s`` with the cluster idle, read again; record and
    return ``{"window_s": measured, "before", "after"}``."""
    t0 = clock()
    before = sample_cpu(cluster, nodes)
    sleep(window_s)
    after = sample_cpu(cluster, nodes)
    value = {"window_s": round(clock() - t0, 3), "before": before, "after": after}
    record(OpType.INFO, RESOURCES, IDLE_CPU, value)
    return value
