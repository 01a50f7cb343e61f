"""SIGINT, SIGTERM and SIGHUP stop a run the same way: clean teardown, results written.

Python turns only SIGINT into an exception; SIGTERM and SIGHUP kill the
process on the spot, so no ``finally``, no ``with`` exit and no ``atexit``
hook runs, and a local run's processes (each in its own session) and temp
data outlive it. While a run drives its cluster, :class:`StopSignals` turns
all three into :class:`Interrupted` (a ``KeyboardInterrupt``, so code and
tools that handle Ctrl-C handle it too). Once the cluster phase is over the
run only notes a signal (:meth:`StopSignals.defer`): the check and the
results are short, and cutting them off would lose the very files an
interrupted run is meant to leave. The command then exits with
``128 + signal``: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP, as a
shell reports a process killed by that signal.

A signal the process ignores (``nohup`` ignores SIGHUP) stays ignored. A
second signal during teardown is ignored (teardown is bounded, and cut
short it would leak); a third one forces the exception anyway, for a
teardown that hangs.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "Interrupted", "StopSignals"]

#: the signals that stop a run cleanly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: how many signals it takes to give up on a clean teardown
_FORCE_AFTER = 3


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; knows which one, and the run's folder once known."""

    def __init__(self, signum: int = signal.SIGINT, run_dir: Path | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.run_dir = run_dir

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal killed."""
        return 128 + self.signum


class StopSignals:
    """A context manager: within it, :data:`STOP_SIGNALS` raise :class:`Interrupted`
    until :meth:`defer` is called; afterwards they are only noted in :attr:`received`.

    Handlers can only be set from the main thread; elsewhere (a run inside a
    worker thread) this does nothing and the process keeps its own handlers.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._count = 0
        self._raising = True
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored on purpose (nohup, a background job): keep it so
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old.clear()

    def defer(self) -> None:
        """From now on only note signals: the run is past its cluster phase."""
        self._raising = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self.received is None:
            self.received = signum
            if self._raising:
                raise Interrupted(signum)
        elif self._count >= _FORCE_AFTER:
            raise Interrupted(self.received)
