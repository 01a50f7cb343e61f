"""The C search for register models, and when the checker uses it.

``harness.checker._wglnative`` (built from ``_wglnative.c`` at install) does
what :func:`harness.checker.linearizable.prepare` and
:class:`harness.checker.wgl.Search` do, for :class:`CasRegister` models,
:class:`Independent` over one, and :class:`Mutex` (a register of False/True):
the registers of Knossos, Porcupine's etcd logs and most Jepsen tests. On a
history of a few hundred ops the Python search's time is interpreter
overhead, not search; in C the same search is tens of times cheaper, which is
what brings small files to Porcupine's time.

It is used only where it is known to be exact and to pay:

* the model is one of those two, exactly (a subclass may change ``step``);
* every call encodes (reads, writes, and cas when the model has it, with
  hashable values); anything else falls back to the Python path, whose
  answer, often a ``ModelError`` read as "unknown", is the reference;
* every partition has at most :data:`NATIVE_MAX_OPS` ops: its memo keys hold
  the whole linearized set and it retires no indeterminate op, where the
  Python search keeps a window and retires what nobody can observe, which is
  what long partitions need.

The Python search stays the specification. ``HARNESS_CHECKER=python`` turns
this module off (the property tests and the benchmark compare both);
:data:`AVAILABLE` says whether the extension was built.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from harness.checker.models import CasRegister, Independent, Mutex, freeze
from harness.history import History, OpType

__all__ = ["AVAILABLE", "NATIVE_MAX_OPS", "enabled", "engine", "native_searches"]

try:
    from harness.checker import _wglnative  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the Python search answers alone
    _wglnative = None

AVAILABLE = _wglnative is not None
"""Was the C extension built (``pip install`` with a C compiler)?"""

NATIVE_MAX_OPS = 499
"""Partitions larger than this go to the Python search.

It is one below :data:`harness.checker.wgl._RETIRE_MIN_OPS`: up to here the
Python search retires nothing either, and both explore the same
configurations (measured: the same memo size on 500-op partitions with half
their writes indeterminate, the C one 25x faster). Past it the Python search
retires indeterminate writes nobody can observe any more and keeps its memo
key to the window of concurrent ops, which the C one does not: on 1,000-op
partitions with 30% of writes indeterminate it memoized 165,576
configurations where the Python one needed 19,064, and was 2.3x slower."""


def enabled() -> bool:
    """Is the C search built and not turned off by ``HARNESS_CHECKER=python``?"""
    return AVAILABLE and os.environ.get("HARNESS_CHECKER", "").lower() != "python"


_MUTEX_AS_REGISTER = CasRegister(name="mutex", initial=False, nil_reads_any=False)
"""The encoding's flags for a mutex (run as a register of False/True; no reads, no cas)."""


@contextmanager
def engine(choice: str) -> Iterator[None]:
    """Check with ``"python"`` (the Python search alone) or the ``"default"`` choice
    inside the block, by setting ``HARNESS_CHECKER`` for its duration; for comparing
    the two searches."""
    if choice not in ("python", "default"):
        raise ValueError(f"engine must be 'python' or 'default', not {choice!r}")
    saved = os.environ.get("HARNESS_CHECKER")
    if choice == "python":
        os.environ["HARNESS_CHECKER"] = "python"
    else:
        os.environ.pop("HARNESS_CHECKER", None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HARNESS_CHECKER", None)
        else:
            os.environ["HARNESS_CHECKER"] = saved


def _register_of(model: Any) -> tuple[CasRegister, bool, bool] | None:
    """(register flags, partitioned, mutex) for a model the C search takes, else None."""
    if type(model) is CasRegister:
        return model, False, False
    if type(model) is Independent and type(model.inner) is CasRegister:
        return model.inner, True, False
    if type(model) is Mutex:
        return _MUTEX_AS_REGISTER, False, True
    return None


def native_searches(
    history: History, model: Any
) -> tuple[list[tuple[Hashable, Any]], dict[str, int]] | None:
    """The C searches of ``history``'s partitions, with the dropped-op counts, or ``None``.

    ``None``: the Python path must check this history (see the module
    docstring for when). Otherwise ``(searches, dropped)`` as
    :func:`~harness.checker.linearizable.prepare` and ``Search`` would make
    them: one ``(key, search)`` per partition in first-seen order.
    """
    if not enabled():
        return None
    reg = _register_of(model)
    if reg is None:
        return None
    m, partitioned, is_mutex = reg
    pos = None if history.indexed_by_position else history.position
    got = _wglnative.encode(history.calls(), pos, partitioned, m.nil_reads_any, m.cas,
                            m.mismatch_observed, m.init(), freeze,
                            OpType.OK, OpType.INFO, OpType.FAIL, NATIVE_MAX_OPS, is_mutex)
    if got is None:
        return None
    blobs, keys, values, init_id, n_failed, n_ro = got
    search = _wglnative.Search
    searches = [(key, search(b, init_id, model if is_mutex else m, values))
                for key, b in zip(keys, blobs, strict=True)]
    return searches, {"failed": n_failed, "indeterminate_read_only": n_ro}
