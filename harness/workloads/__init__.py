"""Workloads: what clients do during a run, what they do after it, and how it is checked.

A workload is system-independent: it plans abstract operations (``read``,
``enqueue``, ...) and names its checkers; a system adapter supplies the
client that turns them into requests (``System.client(workload, ...)``).
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.workloads.base import Workload
from harness.workloads.queue import QueueWorkload
from harness.workloads.register import RegisterWorkload
from harness.workloads.takeover import TakeoverWorkload

__all__ = [
    "WORKLOADS",
    "QueueWorkload",
    "RegisterWorkload",
    "TakeoverWorkload",
    "Workload",
    "get_workload",
]

WORKLOADS: dict[str, type[Workload]] = {
    "register": RegisterWorkload,
    "queue": QueueWorkload,
    "takeover": TakeoverWorkload,
}


def get_workload(name: str, **options: Any) -> Workload:
    """The workload called ``name``, built with ``options`` (its dataclass fields).

    An option the workload does not have is an error naming it, not a silently
    ignored setting: a campaign that believes it configured a lease must have.
    """
    if name not in WORKLOADS:
        raise HarnessError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    try:
        return WORKLOADS[name](**options)
    except TypeError as e:
        raise HarnessError(f"bad options for workload {name!r}: {e}") from None
