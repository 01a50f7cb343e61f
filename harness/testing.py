"""Tiny builders for histories in tests: ``history(invoke(0, "read"), ok(0, "read", 1))``.

Tests (ours, and those users write for their own checkers and models) should
never hand-write op dicts: these builders give every op a position-based index
and time, so real-time order is simply the order of the arguments.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.history import History, Op, OpType

__all__ = ["FakeClock", "fail", "history", "info", "invoke", "ok"]


def _op(t: OpType, process: int | str, f: str, value: Any, error: Any) -> Op:
    return Op(index=-1, time=-1, type=t, process=process, f=f, value=value, error=error)


def invoke(process: int | str, f: str, value: Any = None) -> Op:
    return _op(OpType.INVOKE, process, f, value, None)


def ok(process: int | str, f: str, value: Any = None) -> Op:
    return _op(OpType.OK, process, f, value, None)


def fail(process: int | str, f: str, value: Any = None, error: Any = "failed") -> Op:
    return _op(OpType.FAIL, process, f, value, error)


def info(process: int | str, f: str, value: Any = None, error: Any = "timeout") -> Op:
    return _op(OpType.INFO, process, f, value, error)


def history(*ops: Op) -> History:
    """A history of these ops in this order; index and time are their positions."""
    return History(
        replace(op, index=i, time=i if op.time < 0 else op.time) for i, op in enumerate(ops)
    )


class FakeClock:
    """A monotonic clock that only ``sleep`` moves: pass the instance as ``clock`` and
    its ``sleep`` as ``sleep``, so a waiting loop runs at once and deterministically."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
