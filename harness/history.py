"""Operations and histories, with Jepsen's meanings.

A history is what a test observed: every client (and nemesis) operation as an
*invocation* followed, usually, by a *completion*. The completion's type says
what the client may conclude:

* ``ok``: the operation took effect, and its value is the result;
* ``fail``: the operation certainly did not take effect;
* ``info``: nobody knows. It may have taken effect at any point after its
  invocation, or never. A process that saw ``info`` never invokes again (the
  client continues under a new process id), so the op stays open forever.

An invocation that never completes (the run was killed) is treated like
``info``. Checkers work on :class:`Call` pairs rather than raw events, so they
never have to re-derive this pairing.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import HistoryError

__all__ = ["NEMESIS", "Call", "History", "Op", "OpType"]

NEMESIS = "nemesis"
"""The process name of fault injection, as in Jepsen: its ops are not client ops."""


class OpType(enum.StrEnum):
    """The four event types of a Jepsen history."""

    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Op:
    """One event of a history.

    ``time`` is a monotonic clock reading in nanoseconds (relative to the run's
    start); ``index`` is the event's position in its history. ``process`` is an
    int for clients and a string (``"nemesis"``) for fault injection.
    """

    index: int
    time: int
    type: OpType
    process: int | str
    f: str
    value: Any = None
    error: Any = None
    node: str | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def is_invoke(self) -> bool:
        return self.type is OpType.INVOKE

    @property
    def is_client(self) -> bool:
        return isinstance(self.process, int)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form of this op (keys with ``None`` values omitted)."""
        d: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "type": self.type.value,
            "process": self.process,
            "f": self.f,
            "value": self.value,
        }
        if self.error is not None:
            d["error"] = self.error
        if self.node is not None:
            d["node"] = self.node
        for k, v in self.extra:
            d.setdefault(k, v)
        return d


@dataclass(frozen=True, slots=True)
class Call:
    """An invocation paired with its completion (``None`` if it never completed).

    ``value`` is the best-known value of the operation: the completion's value
    for ``ok`` (e.g. what a read returned), otherwise the invocation's.
    """

    invoke: Op
    complete: Op | None

    @property
    def process(self) -> int | str:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def type(self) -> OpType:
        """The outcome: ok, fail or info (a missing completion counts as info)."""
        return self.complete.type if self.complete is not None else OpType.INFO

    @property
    def ok(self) -> bool:
        return self.complete is not None and self.complete.type is OpType.OK

    @property
    def failed(self) -> bool:
        return self.complete is not None and self.complete.type is OpType.FAIL

    @property
    def indeterminate(self) -> bool:
        return self.complete is None or self.complete.type is OpType.INFO

    @property
    def value(self) -> Any:
        if self.complete is not None and self.complete.type is OpType.OK:
            return self.complete.value
        if self.invoke.value is None and self.complete is not None:
            return self.complete.value
        return self.invoke.value

    @property
    def error(self) -> Any:
        return self.complete.error if self.complete is not None else None

    @property
    def start(self) -> int:
        return self.invoke.time

    @property
    def end(self) -> int | None:
        """Completion time, or ``None`` when the op may still take effect at any later time."""
        if self.complete is None or self.complete.type is OpType.INFO:
            return None
        return self.complete.time


def _new_call(invoke: Op, complete: Op | None) -> Call:
    """``Call(invoke, complete)`` without the frozen dataclass's per-field ``__init__``
    checks: a history builds one per invocation, a million of them for a long run."""
    c = object.__new__(Call)
    _set(c, "invoke", invoke)
    _set(c, "complete", complete)
    return c


_set = object.__setattr__


class History(Sequence[Op]):
    """An immutable sequence of :class:`Op`, with each invocation paired to its completion.

    Pairing is per process: a completion belongs to the most recent open
    invocation of the same process. A completion with no open invocation, or a
    second invocation while one is open, is a malformed history and raises
    :class:`HistoryError` (it names the event's index), because a checker fed
    such a history would give a verdict about something nobody observed.
    """

    __slots__ = ("_by_index", "_calls", "_client_calls", "_ops", "_partner")

    def __init__(self, ops: Iterable[Op], *, reindex: bool = False) -> None:
        seq = list(ops)
        if reindex:
            seq = [op if op.index == i else replace(op, index=i) for i, op in enumerate(seq)]
        self._ops: tuple[Op, ...] = tuple(seq)
        n = len(self._ops)
        # Most histories are indexed 0..n-1 in order; then index == position and
        # no lookup table is needed (this matters for million-event histories).
        self._by_index: dict[int, int] | None = None
        if any(op.index != i for i, op in enumerate(self._ops)):
            self._by_index = {}
            for pos, op in enumerate(self._ops):
                if op.index in self._by_index:
                    raise HistoryError(f"duplicate index {op.index}", index=pos, position=pos,
                                       related=self._by_index[op.index])
                self._by_index[op.index] = pos
        # Position of the other half of each pair; 8 bytes an event, not an int object.
        self._partner = array("q", [-1]) * n
        partner = self._partner
        open_by_process: dict[int | str, int] = {}
        # One Call per invocation, made once its completion is known (or at the end):
        # a placeholder slot per call keeps them in invocation order.
        calls: list[Call | None] = []
        slot = array("q", [-1]) * n  # invocation position -> its call's place in `calls`
        invoke = OpType.INVOKE
        ops_ = self._ops
        new_call = _new_call
        pop_open = open_by_process.pop
        for pos, op in enumerate(ops_):
            if op.type is invoke:
                p = op.process
                if p in open_by_process:
                    prev = ops_[open_by_process[p]]
                    raise HistoryError(
                        f"process {p!r} invokes {op.f!r} while its "
                        f"invocation at index {prev.index} is still open",
                        index=op.index, position=pos, related=open_by_process[p],
                    )
                open_by_process[p] = pos
                slot[pos] = len(calls)
                calls.append(None)
            else:
                inv_pos = pop_open(op.process, None)
                if inv_pos is None:
                    if not isinstance(op.process, int):
                        # Jepsen's nemesis often logs bare :info events; keep them unpaired.
                        continue
                    raise HistoryError(
                        f"process {op.process!r} completes {op.f!r} with no open invocation",
                        index=op.index, position=pos,
                    )
                inv = ops_[inv_pos]
                if inv.f != op.f:
                    raise HistoryError(
                        f"completion f {op.f!r} does not match "
                        f"invocation f {inv.f!r} at index {inv.index}",
                        index=op.index, position=pos, related=inv_pos,
                    )
                partner[inv_pos] = pos
                partner[pos] = inv_pos
                calls[slot[inv_pos]] = new_call(inv, op)
        for inv_pos in open_by_process.values():  # never completed
            calls[slot[inv_pos]] = new_call(ops_[inv_pos], None)
        done: list[Call] = calls  # type: ignore[assignment]  # every slot is filled now
        self._calls: tuple[Call, ...] = tuple(done)
        client = tuple(c for c in done if isinstance(c.invoke.process, int))
        # Usually every call is a client's: then one tuple serves both.
        self._client_calls: tuple[Call, ...] = (
            self._calls if len(client) == len(done) else client)

    # Sequence protocol
    def __len__(self) -> int:
        return len(self._ops)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self._ops[i]

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def __repr__(self) -> str:
        return f"History({len(self._ops)} ops, {len(self._calls)} calls)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self._ops == other._ops

    def __hash__(self) -> int:
        return hash(self._ops)

    @property
    def ops(self) -> tuple[Op, ...]:
        return self._ops

    @property
    def indexed_by_position(self) -> bool:
        """Is every op's ``index`` its position (so :meth:`position` is the identity)?"""
        return self._by_index is None

    def position(self, index: int) -> int:
        """Where the op with this ``index`` stands in the history (real-time order)."""
        if self._by_index is None:
            if 0 <= index < len(self._ops):
                return index
            raise KeyError(index)
        return self._by_index[index]

    def by_index(self, index: int) -> Op:
        """The op whose ``index`` field is ``index``."""
        return self._ops[self.position(index)]

    def completion(self, op: Op) -> Op | None:
        """The completion of an invocation (``None`` if it never completed)."""
        pos = self._partner[self.position(op.index)]
        return None if pos < 0 or not op.is_invoke else self._ops[pos]

    def invocation(self, op: Op) -> Op | None:
        """The invocation a completion belongs to."""
        pos = self._partner[self.position(op.index)]
        return None if pos < 0 or op.is_invoke else self._ops[pos]

    def calls(self, *, clients_only: bool = True) -> tuple[Call, ...]:
        """Every invocation with its completion, in invocation order."""
        return self._client_calls if clients_only else self._calls

    def client_ops(self) -> Iterator[Op]:
        """Events of client processes (not the nemesis)."""
        return (op for op in self._ops if op.is_client)

    def nemesis_ops(self) -> Iterator[Op]:
        return (op for op in self._ops if not op.is_client)

    def indeterminate(self) -> tuple[Call, ...]:
        """Client calls whose outcome is unknown: ``info`` or never completed."""
        return tuple(c for c in self.calls() if c.indeterminate)

    def processes(self) -> set[int | str]:
        return {op.process for op in self._ops}

    def filter(self, keep: Any) -> History:
        """A new history of the events for which ``keep(op)`` is true (indices kept)."""
        return History(op for op in self._ops if keep(op))
