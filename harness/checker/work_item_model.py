"""The work-item lifecycle model: what the replicated work queue promises, per item.

Split from :mod:`harness.checker.models` because it is the one model with
fencing tokens, unanswered claims and cross-item observations; it follows
the same conventions (a value with ``init``/``step``/``describe``, states
hashable, :data:`~harness.checker.models.INCONSISTENT` for an impossible
step). Get it with ``get_model("work-item")``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.checker.models import EVERY, INCONSISTENT, _indeterminate, _unknown_f, freeze
from harness.errors import ModelError

__all__ = ["ANY_TOKEN", "WorkItemLifecycle", "WorkItems"]


ANY_TOKEN = "?"
"""Token of a claim whose answer was lost (indeterminate): bound by the first op that names one."""


@dataclass(frozen=True)
class WorkItemLifecycle:
    """One work item's replicated state: absent -> queued -> processing(token) -> completed.

    State: ``None`` (never enqueued), ``("queued", last_token)``,
    ``("processing", token)`` or ``("completed", token)``. Fencing tokens are
    strictly increasing, so a claim needs a token above the item's last one;
    a claim may re-take a processing item (lease expired) with a larger
    token. ``complete`` needs the current token and may be repeated with it
    (idempotent); ``fail`` gives the item back to the queue; ``renew`` checks
    the token. ``enqueue`` of a present item is an idempotent retry. A claim
    of ``None`` (empty queue) observes "not queued". An indeterminate claim
    with no answer may have taken the item with a token nobody saw
    (``ANY_TOKEN``), which the next op naming a token binds.
    """

    name: str = "work-item"

    def init(self) -> Hashable:
        return None

    def successors(self, state: Any, op: Any) -> tuple[Any, ...]:
        if op.f == "claim" and _claim_id(op) is None and _indeterminate(op):
            taken = self._take(state, ANY_TOKEN)
            return (state,) if taken is INCONSISTENT else (state, taken)
        r = self.step(state, op)
        return () if r is INCONSISTENT else (r,)

    @staticmethod
    def _take(state: Any, token: Any) -> Any:
        if state is None or state[0] == "completed":
            return INCONSISTENT
        last = state[1]
        if state[0] == "processing" and (token == ANY_TOKEN or last == ANY_TOKEN):
            return ("processing", token)  # an expiry takeover, tokens unknown: cannot compare
        if last is None or token == ANY_TOKEN or last == ANY_TOKEN or token > last:
            return ("processing", token)
        return INCONSISTENT

    def step(self, state: Any, op: Any) -> Any:
        f = op.f
        if f == "enqueue":
            _item_id(self.name, op)
            return ("queued", None) if state is None else state
        if f == "claim":
            if _claim_id(op) is None:
                if _indeterminate(op):
                    raise ModelError("work-item: an unanswered claim has several successors")
                return state if state is None or state[0] != "queued" else INCONSISTENT
            return self._take(state, _token(self.name, op))
        if f in ("renew", "complete", "fail"):
            _item_id(self.name, op)
            token = _token(self.name, op)
            if state is None:
                return INCONSISTENT
            kind, cur = state
            if cur == ANY_TOKEN and kind == "processing":
                cur = token
            if f == "complete" and kind == "completed":
                return state if cur == token else INCONSISTENT
            if kind != "processing" or cur != token:
                return INCONSISTENT
            if f == "renew":
                return ("processing", token)
            return ("completed", token) if f == "complete" else ("queued", token)
        raise _unknown_f(self.name, op)

    def read_only(self, op: Any) -> bool:
        return op.f == "claim" and _claim_id(op) is None and not _indeterminate(op)

    def describe(self, state: Any) -> str:
        if state is None:
            return "absent"
        kind, token = state
        return kind if token is None else f"{kind}(token={token})"


def _claim_id(op: Any) -> Any:
    v = op.value
    if isinstance(v, Mapping):
        return v.get("id")
    return None


def _item_id(model: str, op: Any) -> Hashable:
    v = op.value
    if not isinstance(v, Mapping) or v.get("id") is None:
        raise ModelError(f"model {model!r}: {op.f} needs a value with an 'id', got {v!r}")
    return freeze(v["id"])


def _token(model: str, op: Any) -> Any:
    v = op.value
    if not isinstance(v, Mapping) or "token" not in v or v["token"] is None:
        raise ModelError(f"model {model!r}: {op.f} needs a value with a 'token', got {v!r}")
    return v["token"]


@dataclass(frozen=True)
class WorkItems:
    """All work items: per-item lifecycles, checked item by item.

    An empty claim (ok, value ``None``) or an unanswered claim concerns every
    item at once, so its partition key is :data:`EVERY`; the checker then
    confirms a per-item pass on the whole history.
    """

    inner: WorkItemLifecycle = field(default_factory=WorkItemLifecycle)
    name: str = "work-item"

    def init(self) -> Hashable:
        return frozenset()

    def partition(self, op: Any) -> tuple[Hashable, Any]:
        if op.f == "claim" and _claim_id(op) is None:
            return EVERY, op
        if op.f not in ("enqueue", "claim", "renew", "complete", "fail"):
            raise _unknown_f(self.name, op)
        return _item_id(self.name, op), op

    def successors(self, state: Any, op: Any) -> tuple[Any, ...]:
        key, _ = self.partition(op)
        d = dict(state)
        if key is EVERY:
            if not _indeterminate(op):
                r = self.step(state, op)
                return () if r is INCONSISTENT else (r,)
            out = [state]
            for k, s in d.items():
                t = self.inner._take(s, ANY_TOKEN)
                if t is not INCONSISTENT:
                    out.append(frozenset({**d, k: t}.items()))
            return tuple(out)
        nxt = self.inner.successors(d.get(key), op)
        return tuple(frozenset({**d, key: s}.items()) for s in nxt)

    def step(self, state: Any, op: Any) -> Any:
        key, _ = self.partition(op)
        d = dict(state)
        if key is EVERY:
            if _indeterminate(op):
                raise ModelError("work-item: an unanswered claim has several successors")
            return state if all(s[0] != "queued" for s in d.values()) else INCONSISTENT
        nxt = self.inner.step(d.get(key), op)
        if nxt is INCONSISTENT:
            return INCONSISTENT
        d[key] = nxt
        return frozenset(d.items())

    def read_only(self, op: Any) -> bool:
        return self.inner.read_only(op)

    def describe(self, state: Any) -> str:
        items = sorted(state, key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {self.inner.describe(s)}" for k, s in items) + "}"
