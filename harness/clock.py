"""A node's wall clock, moved at run time with libfaketime: no privileges in the node.

Clock faults are the faults real systems fail under most quietly: a lease or
a cache entry judged by ``time.time()`` expires early after an NTP step, and
nothing crashes. Setting the host's clock needs ``CAP_SYS_TIME`` and moves
every node at once, so instead, in a run with clock faults (the backends'
``clock_faults=True``, which the ``clock`` kind asks for), each node process
(local backend) or container (Docker) runs with Debian's libfaketime preloaded
(``LD_PRELOAD``), reading its offset from a control file the harness
rewrites: ``FAKETIME_TIMESTAMP_FILE`` with ``FAKETIME_NO_CACHE=1``, so every
clock read sees the file as it is now (libfaketime 0.9.10 would otherwise
cache it for 10 s). Only the node's processes get the preload; the harness,
HAProxy and Toxiproxy keep the real clock.

Which clocks move (see :data:`MOVES`, and ``tests/test_clock.py``, which
checks it on a real process): ``CLOCK_REALTIME`` (``time.time()``,
``gettimeofday``, file timestamps are *not* faked: ``NO_FAKE_STAT``) moves
by the offset; ``CLOCK_MONOTONIC`` (``time.monotonic()``, asyncio's timers)
does not (``FAKETIME_DONT_FAKE_MONOTONIC=1``). That is what a real clock
fault does: NTP, an operator or a VM migration steps the wall clock, while
the monotonic clock is never stepped and NTP only slews its rate (at most
500 ppm). It is also what keeps a Python node alive: libfaketime's faked
monotonic clock reads as the wall clock and jumps backwards with it, which
asyncio does not survive.

Known limits of libfaketime 0.9.10 under ``DONT_FAKE_MONOTONIC`` (upstream
issue #426): ``time.sleep()`` fails with EINVAL (Python 3.11 sleeps with an
absolute monotonic deadline that libfaketime mistranslates), so a node must
not call it (the reference node, an asyncio program, does not); a thread's
timed wait that straddles a step may last up to the step longer; and its
"monotonic fix" must be off (``FAKETIME_FORCE_MONOTONIC_FIX=0``, see
:func:`preload_env`). Statically
linked programs (Go: etcd, NATS) ignore ``LD_PRELOAD``, so a system opts in
by declaring ``clock_control = "faketime"`` (:func:`supports`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "LIBFAKETIME",
    "MOVES",
    "ClockControl",
    "Strobe",
    "available",
    "offset_spec",
    "preload_env",
    "supports",
    "write_offset",
]

#: Debian's path (package ``libfaketime``, pulled in by ``faketime``); the single-threaded
#: variant, which Debian's ``faketime`` wrapper also uses by default
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

#: which of a node's clocks a clock fault moves
MOVES: Mapping[str, bool] = {"realtime": True, "monotonic": False}


def available(path: str = LIBFAKETIME) -> bool:
    """Whether libfaketime is installed where :func:`preload_env` points."""
    return os.path.isfile(path)


def supports(system: object) -> bool:
    """Whether ``system``'s nodes honour a preloaded libfaketime (dynamically linked,
    reading time through libc): the system says so with ``clock_control = "faketime"``."""
    return getattr(system, "clock_control", None) == "faketime"


def offset_spec(seconds: float) -> str:
    """libfaketime's relative-offset line for ``seconds`` (``+1.5``, ``-30``, ``+0``).

    Fractions use ``.``: the nodes run in the C locale, which libfaketime's
    parser follows. Microseconds are the finest step anything here needs.
    """
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"a clock offset must be a finite number of seconds, not {seconds!r}")
    text = f"{seconds:+.6f}".rstrip("0").rstrip(".")
    return "+0" if text in ("+", "-", "+0", "-0") else text


def write_offset(path: Path, seconds: float) -> None:
    """Set the offset in a control file, atomically: libfaketime re-reads the file on
    every clock read, and must never see it half written (an empty file reads as no
    offset, a momentary step back)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(offset_spec(seconds) + "\n")
    os.replace(tmp, path)


def preload_env(control_file: str, base: Mapping[str, str] | None = None,
                library: str = LIBFAKETIME) -> dict[str, str]:
    """The environment that puts one node under libfaketime, driven by ``control_file``.

    ``base`` is the node's own environment: an ``LD_PRELOAD`` it already has is kept.
    """
    preload = (base or {}).get("LD_PRELOAD", "")
    return {
        "LD_PRELOAD": f"{library} {preload}".strip(),
        "FAKETIME_TIMESTAMP_FILE": control_file,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # the "monotonic fix" (on by default with glibc) mistimes waits on monotonic
        # condition variables, Python's GIL among them: a thread waiting for the GIL
        # then takes 30-70 ms instead of 5 (p50, 2 cores), and the node's event loop
        # starved (3 of 275 enqueues acknowledged in a 15 s run)
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        "NO_FAKE_STAT": "1",
    }


@runtime_checkable
class ClockControl(Protocol):
    """A backend that can move a node's wall clock (both built-in backends can)."""

    def set_clock_offset(self, node: str, seconds: float) -> None:
        """Make ``node``'s wall clock read real time plus ``seconds`` from now on."""
        ...

    def clock_offset(self, node: str) -> float:
        """The offset last set for ``node`` (0.0 when never set)."""
        ...


class Strobe:
    """Flip nodes' clocks between two offsets every ``period_s`` until stopped.

    Jepsen's strobe: a clock that jumps back and forth many times a second,
    so every wall-clock interval a node measures may be off by the whole
    amplitude, in either direction. Runs in a daemon thread; :meth:`stop`
    leaves each node at ``low`` (callers reset to 0 afterwards).
    """

    def __init__(self, set_offset: Callable[[str, float], None], nodes: list[str],
                 low: float, high: float, period_s: float) -> None:
        if period_s <= 0:
            raise ValueError("a strobe's period must be positive")
        self._set = set_offset
        self.nodes = list(nodes)
        self.low, self.high, self.period_s = low, high, period_s
        self.flips = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-strobe", daemon=True)

    def start(self) -> Strobe:
        self._thread.start()
        return self

    def _run(self) -> None:
        high = True
        while not self._stop.is_set():
            for node in self.nodes:
                try:
                    self._set(node, self.high if high else self.low)
                except Exception as e:  # a killed node: keep strobing the others
                    if len(self.errors) < 10:
                        self.errors.append(f"{node}: {e}")
            self.flips += 1
            high = not high
            self._stop.wait(self.period_s)

    def stop(self) -> dict[str, Any]:
        """Stop flipping; what it did (flips, errors) for the history."""
        self._stop.set()
        self._thread.join(timeout=10)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self._set(node, self.low)
        return {"flips": self.flips, **({"errors": self.errors} if self.errors else {})}
