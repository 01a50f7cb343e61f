"""Starting, driving and removing one layer mount from the harness.

:class:`LazyMount` runs ``python -m harness.lazyfs`` as its own process
(never in the harness: the layer's latency must not depend on the harness's
threads, and the layer must outlive the node's crash), waits until the mount
is there, sends crash and stats commands, and unmounts on :meth:`stop`, also
when the layer process died (a dead FUSE daemon leaves a mount that answers
"transport endpoint is not connected" until it is unmounted).

Mounting needs ``/dev/fuse``, libfuse2 and root (or ``fusermount``);
:func:`available` says whether this host has them, so a backend refuses with a
clear message instead of starting a node on a bare directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

_MAX_UNIX_PATH = 100
"""Bytes of a Unix socket's path that bind() takes on Linux is 107 (108 with the NUL);
a run folder deep in a user's TMPDIR or reports folder goes past it, so the control
socket then lives in a short private folder under /tmp instead."""

__all__ = ["LazyFSError", "LazyMount", "available", "unmount", "unmount_under"]


class LazyFSError(HarnessError):
    """The layer could not be mounted, driven or removed."""


def available() -> str | None:
    """None when this host can mount the layer, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    try:
        import fuse  # noqa: F401  (fusepy: loads libfuse2 at import)
    except (ImportError, OSError) as e:
        return f"fusepy or libfuse2 is missing ({e}; apt-get install libfuse2)"
    if os.geteuid() != 0 and shutil.which("fusermount") is None:
        return "not root and no fusermount"
    return None


def unmount(path: Path) -> None:
    """Lazily unmount ``path`` if something is mounted there (no error otherwise)."""
    if _mounted(path):
        subprocess.run(["umount", "-l", str(path)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def unmount_under(root: Path) -> list[str]:
    """Lazily unmount every mount at or below ``root``, deepest first (gc of a run
    whose harness was SIGKILLed: its layers' mounts outlive their dead processes, and
    a folder holding a mount cannot be removed). The mount points it unmounted."""
    base = str(Path(root).absolute())
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    mine = sorted({p for p in points if p == base or p.startswith(base + "/")},
                  key=len, reverse=True)
    for p in mine:
        subprocess.run(["umount", "-l", p], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return mine


def _mounted(path: Path) -> bool:
    target = str(Path(path).absolute())
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)
    return False


class LazyMount:
    """One layer: ``mountpoint`` shows ``backing``'s durable data plus unsynced writes."""

    def __init__(self, mountpoint: Path, backing: Path, *, log: Path) -> None:
        self.mountpoint = Path(mountpoint).absolute()
        self.backing = Path(backing).absolute()
        self.control = self.backing.parent / f".{self.backing.name}.sock"
        #: a private folder for the socket when its path beside the backing is too long
        #: (made by start, removed by stop)
        self._short_dir: Path | None = None
        self.log_path = Path(log)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, *, timeout_s: float = 10.0) -> None:
        why = available()
        if why is not None:
            raise LazyFSError(f"cannot mount the lose-unsynced layer: {why}")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.backing.mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(self.control)) > _MAX_UNIX_PATH and self._short_dir is None:
            self._short_dir = Path(tempfile.mkdtemp(prefix="lazyfs-", dir="/tmp"))
            self.control = self._short_dir / "control.sock"
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.lazyfs", str(self.mountpoint),
                 "--backing", str(self.backing), "--control", str(self.control)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not (_mounted(self.mountpoint) and self.control.exists()):
            if self.proc.poll() is not None:
                raise LazyFSError(f"the lose-unsynced layer exited (code {self.proc.returncode})"
                                  f"; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise LazyFSError(f"the lose-unsynced layer did not mount {self.mountpoint} "
                                  f"within {timeout_s} s; see {self.log_path}")
            time.sleep(0.02)

    def command(self, cmd: dict[str, Any], *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Send one control command; its answer (``ok`` false raises)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout_s)
                s.connect(str(self.control))
                s.sendall(json.dumps(cmd).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as e:
            raise LazyFSError(f"the lose-unsynced layer at {self.mountpoint} did not answer: "
                              f"{e}") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise LazyFSError(f"the lose-unsynced layer answered {data[:200]!r}") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            raise LazyFSError(f"the lose-unsynced layer refused {cmd}: {answer}")
        return answer

    def crash(self, *, mode: str = "drop", seed: int | None = None) -> dict[str, Any]:
        """Drop everything not fsynced (call only while the node is dead)."""
        answer = self.command({"op": "crash", "mode": mode, "seed": seed})
        answer.pop("ok", None)
        return answer

    def fail(self, mode: str) -> dict[str, Any]:
        """Fail fsyncs (``"fsync"``), fsyncs and writes (``"all"``), or nothing
        (``"none"``) from now on; answers what failed since the last call."""
        answer = self.command({"op": "fail", "mode": mode})
        answer.pop("ok", None)
        return answer

    def stats(self) -> dict[str, Any]:
        answer = self.command({"op": "stats"})
        answer.pop("ok", None)
        return answer

    def stop(self) -> None:
        """Unmount and end the layer process. Safe to call twice."""
        unmount(self.mountpoint)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)  # the unmount ends libfuse's loop
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        unmount(self.mountpoint)
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
