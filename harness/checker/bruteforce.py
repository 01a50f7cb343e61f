"""A tiny, obviously correct linearizability checker, to test the real one against.

It tries every order of the ops that respects real time (an op that completed
before another was invoked comes first) and, for indeterminate ops, every
choice of leaving them out. It shares nothing with the search engine but the
models and :func:`~harness.checker.linearizable.prepare`'s reading of a
history, and it uses neither partitioning nor any pruning, so it is only for
histories of about eight ops or fewer.
"""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Any

from harness.checker.models import INCONSISTENT
from harness.errors import HarnessError
from harness.history import History, OpType

__all__ = ["MAX_OPS", "bruteforce_linearizable"]

MAX_OPS = 8


def _kept_ops(history: History, model: Any) -> list[tuple[int, float, Any]]:
    """(call position, return position or inf, model op) for each op the check considers."""
    from harness.checker.models import Operation

    pos = {op.index: i for i, op in enumerate(history.ops)}
    observes = getattr(model, "observes_failure", lambda _op: False)
    out: list[tuple[int, float, Any]] = []
    for call in history.calls():
        inv, comp = call.invoke, call.complete
        if comp is None or comp.type is OpType.INFO:
            v = inv.value if inv.value is not None or comp is None else comp.value
            out.append((pos[inv.index], float("inf"),
                        Operation(inv.f, v, OpType.INFO, None if comp is None else comp.error)))
        elif comp.type is OpType.OK:
            v = inv.value if comp.value is None else comp.value
            op = Operation(inv.f, v, OpType.OK, comp.error)
            out.append((pos[inv.index], pos[comp.index], op))
        else:
            op = Operation(inv.f, inv.value, OpType.FAIL, comp.error)
            if observes(op):
                out.append((pos[inv.index], pos[comp.index], op))
    return out


def _successors(model: Any, state: Any, op: Any) -> tuple[Any, ...]:
    succ = getattr(model, "successors", None)
    if succ is not None:
        return tuple(succ(state, op))
    r = model.step(state, op)
    return () if r is INCONSISTENT else (r,)


def _legal(model: Any, ops: list[tuple[int, float, Any]], order: tuple[int, ...]) -> bool:
    # Real time: if a returned before b was invoked, a must come before b.
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if ops[b][1] < ops[a][0]:
                return False
    states = {model.init()}
    for k in order:
        states = {n for s in states for n in _successors(model, s, ops[k][2])}
        if not states:
            return False
    return True


def bruteforce_linearizable(history: History, *, model: Any) -> bool:
    """True iff some real-time-respecting order of the ops is legal for ``model``.

    Every ok (and observed-failure) op is in the order; each indeterminate op
    is either in it (anywhere after its invocation) or left out.
    """
    ops = _kept_ops(history, model)
    if len(ops) > MAX_OPS:
        raise HarnessError(f"brute force is for at most {MAX_OPS} ops, got {len(ops)}")
    required = [k for k, o in enumerate(ops) if o[1] != float("inf")]
    optional = [k for k, o in enumerate(ops) if o[1] == float("inf")]
    for r in range(len(optional) + 1):
        for chosen in combinations(optional, r):
            for order in permutations(required + list(chosen)):
                if _legal(model, ops, order):
                    return True
    return False
