"""The layer's process: mount a :class:`LazyFS` and answer the harness's control socket.

``python -m harness.lazyfs MOUNTPOINT --backing DIR --control SOCKET`` mounts
the layer at ``MOUNTPOINT`` (durable file data in ``DIR``) and serves one-line
JSON commands on the Unix socket ``SOCKET``:

* ``{"op": "crash", "mode": "drop"|"tear", "seed": N}``: drop everything not
  fsynced (see :meth:`LazyFS.crash`); answers what was dropped. The harness
  sends it while the node is dead, so no request of the node's is in flight;
* ``{"op": "fail", "mode": "fsync"|"all"|"none"}``: from now on fail every
  fsync (and with ``all`` every write) with EIO, losing what each failed fsync
  should have made durable, or stop doing so (see :meth:`LazyFS.fail`);
  answers what failed since the previous ``fail``;
* ``{"op": "stats"}``: what a crash now would lose.

The control channel is a socket beside the mount, not a file inside it, so
the node cannot see or touch it. The process runs until unmounted or sent
SIGTERM (it then unmounts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from harness.lazyfs.model import LazyFS

__all__ = ["main", "serve_control"]


def serve_control(path: Path, fs: LazyFS, lock: threading.Lock) -> socket.socket:
    """Listen on ``path`` and answer commands on a daemon thread."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(8)

    def answer(line: bytes) -> dict[str, Any]:
        try:
            cmd = json.loads(line)
            op = cmd.get("op") if isinstance(cmd, dict) else None
            if op == "crash":
                mode = cmd.get("mode", "drop")
                if mode not in ("drop", "tear"):
                    return {"ok": False, "error": f"unknown crash mode {mode!r}"}
                seed = cmd.get("seed")
                with lock:
                    report = fs.crash(mode, random.Random(seed))
                return {"ok": True, **report.to_dict()}
            if op == "fail":
                with lock:
                    return {"ok": True, **fs.fail(str(cmd.get("mode", "none")))}
            if op == "stats":
                with lock:
                    return {"ok": True, **fs.unsynced()}
            return {"ok": False, "error": f"unknown op {op!r}"}
        except (ValueError, TypeError) as e:
            return {"ok": False, "error": f"bad command: {e}"}
        except OSError as e:
            return {"ok": False, "error": f"backing store: {e}"}

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(30)
                f = conn.makefile("rwb")
                for line in f:
                    f.write(json.dumps(answer(line)).encode() + b"\n")
                    f.flush()

    threading.Thread(target=loop, name="lazyfs-control", daemon=True).start()
    return sock


def main(argv: list[str] | None = None) -> int:
    from fuse import FUSE

    from harness.lazyfs.ops import LazyOps

    p = argparse.ArgumentParser(prog="python -m harness.lazyfs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--backing", type=Path, required=True)
    p.add_argument("--control", type=Path, required=True)
    a = p.parse_args(argv)
    fs = LazyFS(a.backing)
    ops = LazyOps(fs)
    sock = serve_control(a.control, fs, ops.mutex)
    mountpoint = str(a.mountpoint.resolve())
    # No Python handler for SIGTERM: the main thread stays inside libfuse's loop, so
    # a Python handler would never run; libfuse's own (installed only over the
    # default action) ends the loop and unmounts.
    try:
        FUSE(ops, mountpoint, foreground=True, nothreads=False, allow_other=True,
             direct_io=True, attr_timeout=0, entry_timeout=0, negative_timeout=0,
             fsname="lazyfs", subtype="lazyfs")
    except RuntimeError as e:
        print(f"lazyfs: mount of {mountpoint} failed: {e}", file=sys.stderr)
        return 2
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            a.control.unlink()
    return 0
