"""Models: sequential specifications that a linearizability check replays.

A model is a plain value (a frozen dataclass), in the style of Porcupine and
Knossos: ``init()`` gives the initial state, ``step(state, op)`` the state
after ``op`` or :data:`INCONSISTENT` when ``op`` could not have happened in
``state``. States are hashable, because the checker memoizes
``(linearized set, state)`` pairs. ``describe(state)`` renders a state for a
counterexample.

The built-in registers (:class:`CasRegister`, :class:`Independent` over one)
and :class:`Mutex` are also searched in C when the extension is built
(:mod:`harness.checker.native`); a user's model, or a subclass of these, is
searched in Python, with the same meanings.

``op`` is anything with ``f``, ``value``, ``type`` (an :class:`OpType`) and
``error`` attributes: a :class:`~harness.history.Call` works, and tests use
:class:`Operation`. Its ``value`` is the observed output for ``ok`` ops (what
a read returned) and the invocation's value otherwise. For an indeterminate
(``info``) op, ``step`` says what the op does *if it took effect*, with any
output; the checker itself covers the "never took effect" case.

Optional abilities, looked up with ``getattr`` so that a user's model needs
none of them:

* ``read_only(op) -> bool``: true only if *every* legal step of ``op`` leaves
  the state unchanged (a read, a compare failure). The checker linearizes
  such ops eagerly and drops indeterminate ones, so a wrong ``True`` would be
  a wrong verdict; the default is ``False``.
* ``observes_failure(op) -> bool``: a ``fail`` op is dropped (it did not
  happen) unless this says its failure is an observation of the state, such
  as etcd's compare-and-set answering "no".
* ``successors(state, op) -> tuple``: for nondeterministic steps (an
  indeterminate dequeue from an unordered queue may have taken any element).
* ``partition(op) -> (key, inner_op)`` with ``inner`` the per-key model:
  P-compositionality (Herlihy & Wing): a history is linearizable iff each
  key's sub-history is. A key of :data:`EVERY` marks an op that observes all
  keys at once (an empty claim); the checker then confirms a pass on the
  whole history, because per-key checks are only a necessary condition.
* ``results(op) -> tuple | None`` and ``requires(op)``: what lets the checker
  retire an indeterminate op once nobody left can observe it (see
  :mod:`harness.checker.wgl`). ``results``: every state the op can lead to,
  whatever the state before (a write's value; ``None``: it depends).
  ``requires``: the one state the op is legal in, :data:`FREE` if it is legal
  in every state and changes none, else :data:`ANY_STATE`. A wrong answer
  would be a wrong verdict, so when unsure say ``None`` / ``ANY_STATE``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from harness.errors import ModelError
from harness.history import OpType

__all__ = [
    "ANY_STATE",
    "EVERY",
    "FREE",
    "INCONSISTENT",
    "MODELS",
    "Inconsistent",
    "Model",
    "Operation",
    "cas_register",
    "etcd_register",
    "fifo_queue",
    "get_model",
    "independent",
    "kv",
    "multi_register",
    "mutex",
    "register",
    "unordered_queue",
    "work_item",
]


class Inconsistent:
    """The type of :data:`INCONSISTENT`; one instance only, compared with ``is``."""

    _instance: Inconsistent | None = None

    def __new__(cls) -> Inconsistent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INCONSISTENT"


INCONSISTENT = Inconsistent()
"""What ``step`` returns when an op cannot happen in the given state."""


class _Every:
    def __repr__(self) -> str:
        return "EVERY"


EVERY: Any = _Every()
"""Partition key of an op that belongs to every partition (it observes all keys)."""


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ANY_STATE: Any = _Marker("ANY_STATE")
"""``requires``: the op may be legal in more than one state (or nobody knows)."""

FREE: Any = _Marker("FREE")
"""``requires``: the op is legal in every state and leaves it unchanged."""


class Operation(NamedTuple):
    """The model's view of one op: what the checker (and tests) hand to ``step``."""

    f: str
    value: Any = None
    type: OpType = OpType.OK
    error: Any = None


@runtime_checkable
class Model(Protocol):
    """What the checker needs of a model; see the module docstring for the optional parts."""

    name: str

    def init(self) -> Hashable: ...

    def step(self, state: Any, op: Any) -> Any: ...

    def describe(self, state: Any) -> str: ...


def freeze(value: Any) -> Hashable:
    """A hashable equal-by-content copy of ``value`` (lists become tuples), so states hash."""
    t = type(value)
    if t is int or t is str or value is None:
        return value
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    return value


def _unknown_f(model: str, op: Any) -> ModelError:
    return ModelError(f"model {model!r} has no operation {op.f!r} (value {op.value!r})")


def _pair(model: str, op: Any) -> tuple[Any, Any]:
    v = op.value
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise ModelError(f"model {model!r}: {op.f} needs a [a, b] pair, got {v!r}")
    return v[0], v[1]


_INFO = OpType.INFO


def _indeterminate(op: Any) -> bool:
    return op.type is _INFO


# --------------------------------------------------------------------------- registers


@dataclass(frozen=True)
class CasRegister:
    """A register with read, write and (optionally) compare-and-set.

    ``nil_reads_any``: Knossos treats an ok read of ``None`` as "the value was
    not recorded", always legal. The etcd log flavour turns it off: there a
    read of nil means the key did not exist. ``mismatch_observed``: a ``fail``
    cas whose error is ``"mismatch"`` is a definite "compare failed" answer,
    legal iff the state differs from ``from``; without it, failed ops are
    dropped as never having happened.
    """

    name: str = "cas-register"
    initial: Any = None
    cas: bool = True
    nil_reads_any: bool = True
    mismatch_observed: bool = False

    def init(self) -> Hashable:
        return freeze(self.initial)

    def step(self, state: Any, op: Any) -> Any:
        f = op.f
        if f == "read":
            v = op.value
            if (v is None and self.nil_reads_any) or _indeterminate(op):
                return state
            return state if freeze(v) == state else INCONSISTENT
        if f == "write":
            return freeze(op.value)
        if f == "cas" and self.cas:
            frm, to = _pair(self.name, op)
            if op.type is OpType.FAIL:
                # Only reached for an observed mismatch: the compare said no.
                return state if freeze(frm) != state else INCONSISTENT
            return freeze(to) if freeze(frm) == state else INCONSISTENT
        raise _unknown_f(self.name, op)

    def read_only(self, op: Any) -> bool:
        if op.f == "read":
            return True
        if op.f == "cas" and self.cas:
            if op.type is OpType.FAIL:
                return True
            frm, to = _pair(self.name, op)
            return freeze(frm) == freeze(to)  # legal only when state == from, so unchanged
        return False

    def observes_failure(self, op: Any) -> bool:
        return self.mismatch_observed and op.f == "cas" and op.error == "mismatch"

    def requires(self, op: Any) -> Any:
        """The one state ``op`` is legal in (see the module docstring)."""
        try:
            f = op.f
            if f == "read":
                v = op.value
                if (v is None and self.nil_reads_any) or _indeterminate(op):
                    return FREE
                return freeze(v)
            if f == "cas" and self.cas and op.type is not OpType.FAIL:
                return freeze(_pair(self.name, op)[0])
        except ModelError:
            pass
        return ANY_STATE  # a write (blind anyway), an observed compare failure, a misfit

    def results(self, op: Any) -> tuple[Any, ...] | None:
        """The state a write or cas leads to, whatever the state before."""
        try:
            if op.f == "write":
                return (freeze(op.value),)
            if op.f == "cas" and self.cas and op.type is not OpType.FAIL:
                return (freeze(_pair(self.name, op)[1]),)
        except ModelError:
            pass
        return None

    def blind(self, op: Any) -> bool:
        """A write ignores the state: always legal, same result from any state."""
        return op.f == "write"

    def describe(self, state: Any) -> str:
        return repr(state)


def register(initial: Any = None) -> CasRegister:
    """A read/write register (Knossos ``register``): an ok read of ``None`` is always legal."""
    return CasRegister(name="register", initial=initial, cas=False)


def cas_register(initial: Any = None) -> CasRegister:
    """Knossos ``cas-register``: read, write, cas ``[from, to]``; reads of ``None`` always legal."""
    return CasRegister(name="cas-register", initial=initial)


def strict_cas_register(initial: Any = None) -> CasRegister:
    """A cas-register where an ok read of ``None`` means "no value yet", and is checked.

    Knossos's wildcard reading of nil suits histories whose clients record
    nil for "did not look"; our workload's clients record ``None`` only when
    the key holds nothing, and a system that loses every write of a key and
    then answers "not found" must not pass.
    """
    return CasRegister(name="strict-cas-register", initial=initial, nil_reads_any=False)


def etcd_register(initial: Any = None) -> CasRegister:
    """The register of Jepsen's 2015 etcd test as Porcupine checks it.

    Initial value nil; a read of nil means "no value" (checked, not a
    wildcard); a ``fail`` cas with error ``"mismatch"`` is the compare saying
    no, so it is an observation (legal iff the value differed) rather than a
    non-event.
    """
    return CasRegister(
        name="etcd", initial=initial, nil_reads_any=False, mismatch_observed=True
    )


# --------------------------------------------------------------------------- keyed models


def _dict_state(state: frozenset[tuple[Any, Any]]) -> dict[Any, Any]:
    return dict(state)


@dataclass(frozen=True)
class Independent:
    """Jepsen's "independent" convention: ``value = [key, inner_value]``, one inner model per key.

    The whole state is a frozenset of ``(key, inner_state)`` pairs (keys never
    touched are at ``inner.init()``); the checker instead splits the history by
    key and checks each part against ``inner`` alone.
    """

    inner: Any
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.inner.name}-per-key")

    def init(self) -> Hashable:
        return frozenset()

    def partition(self, op: Any) -> tuple[Hashable, Any]:
        v = op.value
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ModelError(f"model {self.name!r}: value must be [key, value], got {v!r}")
        return freeze(v[0]), Operation(op.f, v[1], op.type, op.error)

    def split(self, f: str, value: Any, type_: OpType, error: Any) -> tuple[Hashable, Any]:
        """``partition(Operation(f, value, type_, error))`` without building that op: the
        checker splits every call of a history this way, a million for a long run."""
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ModelError(f"model {self.name!r}: value must be [key, value], got {value!r}")
        k = value[0]
        key = k if type(k) is int or type(k) is str else freeze(k)
        return key, tuple.__new__(Operation, (f, value[1], type_, error))

    def step(self, state: Any, op: Any) -> Any:
        key, inner_op = self.partition(op)
        d = _dict_state(state)
        cur = d.get(key, self.inner.init())
        nxt = self.inner.step(cur, inner_op)
        if nxt is INCONSISTENT:
            return INCONSISTENT
        if nxt == self.inner.init():
            d.pop(key, None)  # one spelling per state: untouched keys are absent
        else:
            d[key] = nxt
        return frozenset(d.items())

    def read_only(self, op: Any) -> bool:
        return bool(getattr(self.inner, "read_only", _no)(self.partition(op)[1]))

    def observes_failure(self, op: Any) -> bool:
        return bool(getattr(self.inner, "observes_failure", _no)(self.partition(op)[1]))

    def resets(self, op: Any) -> bool:
        inner_op = self.partition(op)[1]
        fn = getattr(self.inner, "resets", None)
        if fn is None:
            return not getattr(self.inner, "read_only", _no)(inner_op)
        return bool(fn(inner_op))

    def may_reach(self, state: Any, op: Any) -> bool:
        fn = getattr(self.inner, "may_reach", None)
        if fn is None:
            return self.step(state, op) is not INCONSISTENT
        key, inner_op = self.partition(op)
        return bool(fn(dict(state).get(key, self.inner.init()), inner_op))

    def describe(self, state: Any) -> str:
        items = sorted(state, key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {self.inner.describe(s)}" for k, s in items) + "}"


def _no(_op: Any) -> bool:
    return False


def independent(model: Any, *, name: str = "") -> Independent:
    """``model`` applied per key: ops carry ``[key, value]`` and are checked key by key."""
    return Independent(model, name)


@dataclass(frozen=True)
class KvKey:
    """One key of Porcupine's string KV store: get, put, append; initial ``""``."""

    name: str = "kv-key"
    initial: str = ""

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Any, op: Any) -> Any:
        f = op.f
        if f == "get":
            if _indeterminate(op):
                return state
            return state if op.value == state else INCONSISTENT
        if f == "put":
            return _kv_str(self.name, op)
        if f == "append":
            return state + _kv_str(self.name, op)
        raise _unknown_f(self.name, op)

    def read_only(self, op: Any) -> bool:
        return op.f == "get" or (op.f == "append" and op.value == "")

    def resets(self, op: Any) -> bool:
        """Only a put can take the value anywhere but longer: appends only extend it."""
        return op.f == "put"

    def blind(self, op: Any) -> bool:
        """A put ignores the state: always legal, same result from any state."""
        return op.f == "put"

    def requires(self, op: Any) -> Any:
        """A get is legal only in the state it read; an empty append anywhere."""
        if op.f == "get":
            return FREE if _indeterminate(op) else op.value
        if op.f == "append" and op.value == "":
            return FREE
        return ANY_STATE

    def results(self, op: Any) -> tuple[Any, ...] | None:
        """A put leads to its value; an append's result depends on the state."""
        if op.f == "put" and isinstance(op.value, str):
            return (op.value,)
        return None

    def may_reach(self, state: Any, op: Any) -> bool:
        """Could appends alone make ``op`` (a get) legal? Only if ``state`` is a prefix."""
        return op.f != "get" or not isinstance(op.value, str) or op.value.startswith(state)

    def describe(self, state: Any) -> str:
        return repr(state)


def _kv_str(model: str, op: Any) -> str:
    if not isinstance(op.value, str):
        raise ModelError(f"model {model!r}: {op.f} needs a string, got {op.value!r}")
    return op.value


def kv() -> Independent:
    """Porcupine's KV model: get/put/append on ``[key, value]``, ``""`` per key, checked per key."""
    return Independent(KvKey(), "kv")


# --------------------------------------------------------------------------- multi-register


def _key(k: Any) -> Hashable:
    """EDN keywords may arrive as ``":x"`` or ``"x"``: one spelling for both."""
    if isinstance(k, str) and k.startswith(":"):
        return k[1:]
    return freeze(str(k) if type(k).__name__ == "Keyword" else k)


@dataclass(frozen=True)
class MultiRegister:
    """Knossos' multi-register: ``txn`` ops whose value is ``[[f, k, v], ...]``.

    ``f`` is ``read`` or ``write``; a read of ``None`` is always legal (the
    value was not recorded). State: a sorted tuple of ``(key, value)``.
    """

    initial: tuple[tuple[Hashable, Any], ...] = (("x", 0), ("y", 0))
    name: str = "multi-register"

    def init(self) -> Hashable:
        return tuple(sorted(((_key(k), freeze(v)) for k, v in self.initial), key=repr))

    def _micro(self, op: Any) -> list[tuple[str, Hashable, Any]]:
        if op.f != "txn":
            raise _unknown_f(self.name, op)
        out = []
        for m in op.value or ():
            if not isinstance(m, list | tuple) or len(m) != 3:
                raise ModelError(f"model {self.name!r}: bad micro-op {m!r}")
            f = _key(m[0])
            if f in ("r", "w"):
                f = "read" if f == "r" else "write"
            if f not in ("read", "write"):
                raise ModelError(f"model {self.name!r}: unknown micro-op {m[0]!r}")
            out.append((str(f), _key(m[1]), freeze(m[2])))
        return out

    def step(self, state: Any, op: Any) -> Any:
        d = dict(state)
        unknown = _indeterminate(op)
        for f, k, v in self._micro(op):
            if f == "read":
                if not unknown and v is not None and d.get(k) != v:
                    return INCONSISTENT
            else:
                d[k] = v
        return tuple(sorted(d.items(), key=repr))

    def read_only(self, op: Any) -> bool:
        return all(f == "read" for f, _, _ in self._micro(op))

    def describe(self, state: Any) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in state) + "}"


def multi_register(initial: Mapping[Any, Any] | None = None) -> MultiRegister:
    """A multi-register; ``initial`` defaults to ``{x: 0, y: 0}`` as Knossos' test data needs."""
    init = {"x": 0, "y": 0} if initial is None else initial
    return MultiRegister(tuple((_key(k), v) for k, v in init.items()))


# --------------------------------------------------------------------------- mutex, queues


@dataclass(frozen=True)
class Mutex:
    """Knossos' mutex: acquire when held, or release when free, is inconsistent."""

    name: str = "mutex"

    def init(self) -> Hashable:
        return False

    def step(self, state: Any, op: Any) -> Any:
        if op.f == "acquire":
            return INCONSISTENT if state else True
        if op.f == "release":
            return False if state else INCONSISTENT
        raise _unknown_f(self.name, op)

    def describe(self, state: Any) -> str:
        return "locked" if state else "free"


def mutex() -> Mutex:
    """A single lock with ``acquire`` / ``release``."""
    return Mutex()


@dataclass(frozen=True)
class FifoQueue:
    """A FIFO queue: ``enqueue v``; ``dequeue`` returns the head, ``None`` when empty.

    An ok dequeue of ``None`` observes an empty queue. An indeterminate
    dequeue, if it took effect, removed the head (or found the queue empty).
    """

    name: str = "fifo-queue"

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, op: Any) -> Any:
        if op.f == "enqueue":
            return (*state, freeze(op.value))
        if op.f == "dequeue":
            if _indeterminate(op):
                return state[1:]
            if op.value is None:
                return state if not state else INCONSISTENT
            return state[1:] if state and state[0] == freeze(op.value) else INCONSISTENT
        raise _unknown_f(self.name, op)

    def read_only(self, op: Any) -> bool:
        return op.f == "dequeue" and op.value is None and not _indeterminate(op)

    def describe(self, state: Any) -> str:
        return repr(list(state))


def fifo_queue() -> FifoQueue:
    """A FIFO queue model (enqueue / dequeue)."""
    return FifoQueue()


@dataclass(frozen=True)
class UnorderedQueue:
    """A queue without order: a dequeue may return any element present.

    State: a sorted tuple of ``(value, count)``. An indeterminate dequeue
    whose value is unknown may have removed any element: that step is
    nondeterministic, so this model offers ``successors``.
    """

    name: str = "unordered-queue"

    def init(self) -> Hashable:
        return ()

    @staticmethod
    def _add(state: Any, v: Hashable, n: int) -> Any:
        d = dict(state)
        c = d.get(v, 0) + n
        if c < 0:
            return INCONSISTENT
        if c:
            d[v] = c
        else:
            d.pop(v, None)
        return tuple(sorted(d.items(), key=repr))

    def successors(self, state: Any, op: Any) -> tuple[Any, ...]:
        if op.f == "dequeue" and _indeterminate(op) and op.value is None:
            if not state:
                return (state,)
            return tuple(self._add(state, v, -1) for v, _ in state)
        r = self.step(state, op)
        return () if r is INCONSISTENT else (r,)

    def step(self, state: Any, op: Any) -> Any:
        if op.f == "enqueue":
            return self._add(state, freeze(op.value), 1)
        if op.f == "dequeue":
            if op.value is None:
                if _indeterminate(op):
                    raise ModelError(
                        "unordered-queue: an indeterminate dequeue has several successors; "
                        "use successors()"
                    )
                return state if not state else INCONSISTENT
            return self._add(state, freeze(op.value), -1)
        raise _unknown_f(self.name, op)

    def read_only(self, op: Any) -> bool:
        return op.f == "dequeue" and op.value is None and not _indeterminate(op)

    def describe(self, state: Any) -> str:
        return "{" + ", ".join(f"{v!r}x{c}" for v, c in state) + "}"


def unordered_queue() -> UnorderedQueue:
    """A multiset queue model (enqueue / dequeue in any order)."""
    return UnorderedQueue()


# --------------------------------------------------------------------------- work items


def work_item() -> Any:
    """The work-queue lifecycle model, partitioned by item id (see :mod:`.work_item_model`)."""
    from harness.checker.work_item_model import WorkItems

    return WorkItems()


# --------------------------------------------------------------------------- registry

MODELS: dict[str, Callable[..., Any]] = {
    "register": register,
    "cas-register": cas_register,
    "etcd": etcd_register,
    "kv": kv,
    "multi-register": multi_register,
    "mutex": mutex,
    "fifo-queue": fifo_queue,
    "unordered-queue": unordered_queue,
    "work-item": work_item,
    "register-per-key": lambda **kw: independent(register(**kw)),
    "cas-register-per-key": lambda **kw: independent(cas_register(**kw)),
    "strict-cas-register": strict_cas_register,
    "strict-cas-register-per-key": lambda **kw: independent(strict_cas_register(**kw)),
}
"""Model factories by the name the CLI takes (``--model cas-register``)."""


def get_model(name: str, **options: Any) -> Any:
    """The model called ``name``, built with ``options`` (e.g. ``initial=0``)."""
    try:
        factory = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelError(f"unknown model {name!r} (known: {known})") from None
    try:
        return factory(**options)
    except TypeError as e:
        raise ModelError(f"model {name!r}: bad options {options!r}: {e}") from None
