"""Who owns a run's processes and containers, and whether that owner still lives.

``harness gc`` removes what runs left behind, and must never remove a live
run's cluster. A pid alone cannot say that a run is live: after the harness
died, its pid may be given to any other process. So an owner is recorded as
(pid, host, process start time), and is alive only when a process with that
pid exists on this host, is not a zombie, and started at that very time.

A Docker run carries its owner as labels on every object; a local run writes
a record (``<state dir>/local/<run id>.json``) naming its owner and every
child process with its start time, so that gc can also tell a child from an
unrelated process that reuses its pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OWNER_HOST_LABEL", "OWNER_PID_LABEL", "OWNER_START_LABEL", "Owner",
           "pid_alive", "process_start", "state_dir"]

OWNER_PID_LABEL = "harness.owner.pid"
OWNER_HOST_LABEL = "harness.owner.host"
OWNER_START_LABEL = "harness.owner.start"


def state_dir() -> Path:
    """Where local runs record their processes: ``$HARNESS_STATE_DIR``, else ``runs/`` in
    the harness cache (``$HARNESS_CACHE`` or ``~/.cache/harness``, as for image locks).

    Read at each call, not at import, so a test (or a user) can point one run and
    its ``harness gc`` at a private folder."""
    explicit = os.environ.get("HARNESS_STATE_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("HARNESS_CACHE") or str(Path.home() / ".cache" / "harness")
    return Path(cache) / "runs"


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may itself contain ") "
    return raw[raw.rfind(")") + 2:].split()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (seconds since the epoch, 2 decimals), or None when
    it does not exist, is a zombie, or this system has no ``/proc`` to tell."""
    fields = _stat_fields(pid)
    boot = _boot_time()
    if fields is None or boot is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    ticks = int(fields[19])  # field 22 of stat(5): starttime, in clock ticks since boot
    return f"{boot + ticks / os.sysconf('SC_CLK_TCK'):.2f}"


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process, and the one that started at ``start``
    when that is given. Without ``/proc``, whether the pid exists is all we can know."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, someone else's
    if not Path("/proc/self/stat").exists():
        return True
    now = process_start(pid)
    if now is None:
        return False  # gone meanwhile, or a zombie
    return not start or now == start


@dataclass(frozen=True)
class Owner:
    """The process that runs (ran) a campaign: pid, host name, and start time."""

    pid: int
    host: str
    start: str  # as :func:`process_start` gives it; "" when unknown

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        return cls(os.getpid(), socket.gethostname(), process_start(os.getpid()) or "")

    def alive(self) -> bool | None:
        """True while the owner runs; False once it is gone (or its pid belongs to another
        process now); None when it lives on another host, which we cannot look into."""
        if self.host != socket.gethostname():
            return None
        return pid_alive(self.pid, self.start)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "start": self.start}

    @classmethod
    def from_dict(cls, d: Any) -> Owner | None:
        """The owner in a record, or None when the record names none (or a broken one)."""
        if not isinstance(d, dict):
            return None
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return cls(int(d["pid"]), str(d["host"]), str(d.get("start") or ""))
        return None

    def labels(self) -> dict[str, str]:
        """Docker labels naming this owner (every object of a run carries them)."""
        return {OWNER_PID_LABEL: str(self.pid), OWNER_HOST_LABEL: self.host,
                OWNER_START_LABEL: self.start}

    @classmethod
    def from_labels(cls, labels: Any) -> Owner | None:
        """The owner named by Docker labels; None for objects made before owners were
        recorded (gc treats those as left behind)."""
        if not isinstance(labels, dict) or OWNER_PID_LABEL not in labels:
            return None
        return cls.from_dict({"pid": labels.get(OWNER_PID_LABEL),
                              "host": labels.get(OWNER_HOST_LABEL, ""),
                              "start": labels.get(OWNER_START_LABEL, "")})
