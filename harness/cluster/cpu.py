"""How much CPU a node has used: the counters the kernel keeps, read from the host.

A node that spins (a timer whose deadline is always past, a retransmission
on every tick) breaks no safety promise and may even serve its clients, yet
it burns a core for as long as the condition lasts: while it is cut off,
while an election runs. Only its CPU time shows it. Both backends read the
kernel's own accounting, which costs one file read per node and needs no help
from the node:

* a local node is a process group (the node was started as a session
  leader): the sum of ``utime + stime`` over ``/proc/<pid>/stat`` of every
  process in the group;
* a container is a cgroup: ``cpuacct.usage`` (cgroup v1) or ``cpu.stat``'s
  ``usage_usec`` (v2) under the host's ``/sys/fs/cgroup``.

Each reading comes with an incarnation (the group's pid and start time, the
cgroup directory's inode and change time): a restarted node's counter starts
again from zero, and a difference across two incarnations means nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cgroup_cpu", "group_cpu"]

_TICK_S = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces
    close = raw.rfind(")")
    return raw[close + 2:].split() if close >= 0 else None


def group_cpu(pgid: int, proc: Path = Path("/proc")) -> tuple[str, float] | None:
    """``(incarnation, CPU seconds)`` of every live process in process group ``pgid``,
    or None when its leader is gone. Fields after the name: state is [0], pgrp [2],
    utime [11], stime [12], starttime [19] (proc(5))."""
    lead = _stat_fields(str(pgid))
    if lead is None or len(lead) < 20:
        return None
    total = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is None or len(fields) < 13 or fields[2] != str(pgid):
            continue
        total += int(fields[11]) + int(fields[12])
    return f"{pgid}@{lead[19]}", round(total * _TICK_S, 3)


#: where a container's CPU counter lives, by cgroup version and driver
_CGROUP_PATHS = (
    ("cpuacct/docker/{id}/cpuacct.usage", 1e-9),
    ("cpu,cpuacct/docker/{id}/cpuacct.usage", 1e-9),
    ("cpuacct/system.slice/docker-{id}.scope/cpuacct.usage", 1e-9),
    ("docker/{id}/cpu.stat", 1e-6),
    ("system.slice/docker-{id}.scope/cpu.stat", 1e-6),
)


def cgroup_cpu(container_id: str, root: Path = Path("/sys/fs/cgroup")
               ) -> tuple[str, float] | None:
    """``(incarnation, CPU seconds)`` of a container's cgroup, or None when it has none
    (stopped, or a Docker engine on another host)."""
    for pattern, unit in _CGROUP_PATHS:
        path = root / pattern.format(id=container_id)
        try:
            text = path.read_text()
            st = path.parent.stat()
        except OSError:
            continue
        if path.name == "cpu.stat":
            usage = next((int(line.split()[1]) for line in text.splitlines()
                          if line.startswith("usage_usec ")), None)
        else:
            usage = int(text.strip() or 0)
        if usage is None:
            continue
        return f"{st.st_ino}@{st.st_ctime_ns}", round(usage * unit, 3)
    return None
