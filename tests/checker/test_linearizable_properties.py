"""Property tests: the search against brute force, and against histories known to be good.

Two properties, over every model:

* a history made by running the model sequentially (each op's observed
  output is what the model says), then widening each op's interval around
  its linearization point and making some ops indeterminate, is always
  linearizable;
* on small random histories (valid or not), the checker's verdict equals the
  brute-force checker's, which tries every real-time-respecting order.

The second is what keeps the search's reductions (eager read-only steps,
dropped indeterminate reads, interchangeable indeterminate ops, memoization,
partitioning) honest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checker import native, wgl
from harness.checker.bruteforce import bruteforce_linearizable
from harness.checker.linearizable import linearizable
from harness.checker.models import INCONSISTENT, Operation, get_model
from harness.history import History, Op, OpType

# (f, invocation value, ok value): every op a small history may hold, per model.
Option = tuple[str, Any, Any]


def _register_options(cas: bool) -> list[Option]:
    opts: list[Option] = [("read", None, v) for v in (None, 0, 1, 2)]
    opts += [("write", v, v) for v in (0, 1, 2)]
    if cas:
        opts += [("cas", [a, b], [a, b]) for a in (0, 1, 2) for b in (0, 1, 2)]
    return opts


def _kv_options() -> list[Option]:
    opts: list[Option] = []
    for k in ("a", "b"):
        opts += [("get", [k, None], [k, v]) for v in ("", "x", "y", "xy", "yx")]
        opts += [(f, [k, v], [k, v]) for f in ("put", "append") for v in ("x", "y")]
    return opts


def _per_key_options() -> list[Option]:
    opts: list[Option] = []
    for k in (0, 1):
        opts += [("read", [k, None], [k, v]) for v in (None, 0, 1)]
        opts += [("write", [k, v], [k, v]) for v in (0, 1)]
        opts += [("cas", [k, [a, b]], [k, [a, b]]) for a in (0, 1) for b in (0, 1)]
    return opts


def _multi_options() -> list[Option]:
    opts: list[Option] = []
    for k in ("x", "y"):
        opts += [("txn", [["read", k, None]], [["read", k, v]]) for v in (0, 1)]
        opts += [("txn", [["write", k, v]], [["write", k, v]]) for v in (0, 1)]
    opts += [("txn", [["read", "x", None], ["read", "y", None]],
              [["read", "x", a], ["read", "y", b]]) for a in (0, 1) for b in (0, 1)]
    opts += [("txn", [["write", "x", 1], ["write", "y", 1]],
              [["write", "x", 1], ["write", "y", 1]])]
    return opts


def _queue_options() -> list[Option]:
    return [("enqueue", v, v) for v in (1, 2)] + [("dequeue", None, v) for v in (None, 1, 2)]


def _work_item_options() -> list[Option]:
    opts: list[Option] = []
    for i in (1, 2):
        opts.append(("enqueue", {"id": i, "payload": i}, {"id": i, "payload": i}))
        for t in (1, 2, 3):
            opts.append(("claim", None, {"id": i, "token": t}))
            for f in ("renew", "complete", "fail"):
                opts.append((f, {"id": i, "token": t}, {"id": i, "token": t}))
    opts.append(("claim", None, None))
    return opts


MODELS: dict[str, tuple[Callable[[], Any], list[Option]]] = {
    "register": (lambda: get_model("register", initial=0), _register_options(False)),
    "cas-register": (lambda: get_model("cas-register", initial=0), _register_options(True)),
    "etcd": (lambda: get_model("etcd"), _register_options(True)),
    "cas-register-per-key": (lambda: get_model("cas-register-per-key"), _per_key_options()),
    "kv": (lambda: get_model("kv"), _kv_options()),
    "multi-register": (lambda: get_model("multi-register"), _multi_options()),
    "mutex": (lambda: get_model("mutex"), [("acquire", None, None), ("release", None, None)]),
    "fifo-queue": (lambda: get_model("fifo-queue"), _queue_options()),
    "unordered-queue": (lambda: get_model("unordered-queue"), _queue_options()),
    "work-item": (lambda: get_model("work-item"), _work_item_options()),
}

# One planned op: option, outcome (ok / info / fail / never completed), interval ends.
Planned = tuple[Option, str, float, float]


def _fail_error(model_name: str, f: str) -> str:
    return "mismatch" if model_name == "etcd" and f == "cas" else "refused"


def build(model_name: str, planned: list[Planned]) -> History:
    """Events sorted by time; every op has its own process (as after crashes in Jepsen)."""
    events: list[tuple[float, int, Op]] = []
    for p, ((f, inv_v, ok_v), outcome, start, end) in enumerate(planned):
        events.append((start, 0, Op(0, 0, OpType.INVOKE, p, f, inv_v)))
        if outcome == "ok":
            events.append((end, 1, Op(0, 0, OpType.OK, p, f, ok_v)))
        elif outcome == "info":
            events.append((end, 1, Op(0, 0, OpType.INFO, p, f, inv_v, "timeout")))
        elif outcome == "fail":
            events.append((end, 1, Op(0, 0, OpType.FAIL, p, f, inv_v, _fail_error(model_name, f))))
    events.sort(key=lambda e: (e[0], e[1]))
    return History((op for _, _, op in events), reindex=True)


@st.composite
def random_histories(draw: st.DrawFn, model_name: str, max_ops: int) -> History:
    options = MODELS[model_name][1]
    n = draw(st.integers(1, max_ops))
    planned: list[Planned] = []
    for _ in range(n):
        opt = draw(st.sampled_from(options))
        outcome = draw(st.sampled_from(("ok", "ok", "ok", "info", "fail", "open")))
        a = draw(st.integers(0, 4 * n))
        b = draw(st.integers(0, 4 * n))
        planned.append((opt, outcome, min(a, b) + 0.1 * len(planned) / n, max(a, b) + 0.5))
    return build(model_name, planned)


def _legal(model: Any, state: Any, op: Operation) -> list[Any]:
    succ = getattr(model, "successors", None)
    if succ is not None:
        return list(succ(state, op))
    r = model.step(state, op)
    return [] if r is INCONSISTENT else [r]


@st.composite
def sequential_histories(draw: st.DrawFn, model_name: str, max_ops: int) -> History:
    """Run the model: each op is legal where it takes effect; widen intervals around that point."""
    make, options = MODELS[model_name]
    model = make()
    state = model.init()
    n = draw(st.integers(1, max_ops))
    planned: list[Planned] = []
    for i in range(n):
        point = 10.0 * i + 5
        lo = point - draw(st.integers(1, 25))
        hi = point + draw(st.integers(1, 25))
        kind = draw(st.sampled_from(("effect", "effect", "effect", "noop-info", "refused")))
        if kind == "effect":
            legal = [
                (o, nxt)
                for o in options
                for nxt in _legal(model, state, Operation(o[0], o[2], OpType.OK))[:1]
            ]
            if not legal:
                continue
            opt, nxt = draw(st.sampled_from(legal))
            state = nxt
            # An indeterminate op that took effect keeps only its invocation's value.
            outcome = draw(st.sampled_from(("ok", "ok", "ok", "info", "open")))
            planned.append((opt, outcome, lo, hi))
        elif kind == "noop-info":
            # Never took effect: any op, left indeterminate.
            planned.append((draw(st.sampled_from(options)), "info", lo, hi))
        else:
            opt = draw(st.sampled_from(options))
            observed = model.observes_failure(Operation(opt[0], opt[1], OpType.FAIL,
                                                        _fail_error(model_name, opt[0]))) \
                if hasattr(model, "observes_failure") else False
            if observed:
                fail_op = Operation(opt[0], opt[1], OpType.FAIL, "mismatch")
                if not _legal(model, state, fail_op):
                    continue
            planned.append((opt, "fail", lo, hi))
    return build(model_name, planned)


@pytest.fixture(autouse=True, scope="module")
def _retire_everywhere() -> Iterator[None]:
    """Small partitions skip retiring indeterminate ops (it does not pay there); these
    histories are small, so retirement is switched on for them to be compared too."""
    saved = wgl._RETIRE_MIN_OPS
    wgl._RETIRE_MIN_OPS = 0
    yield
    wgl._RETIRE_MIN_OPS = saved


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


NATIVE_MODELS = ("register", "cas-register", "etcd", "cas-register-per-key", "mutex")
"""Models the C search takes (harness.checker.native); the others have one engine."""


def _agree(model_name: str, h: History, engine: str = "default") -> None:
    model = MODELS[model_name][0]()
    expected = bruteforce_linearizable(h, model=model)
    with native.engine(engine):
        got = linearizable(h, model=model)
    assert got.error is None, got.error
    assert got.valid is expected, (got, list(h))
    if got.valid is False:
        ce = got.details["counterexample"]
        assert ce["could_not_place"], ce


def _always_valid(model_name: str, h: History, engine: str = "default") -> None:
    with native.engine(engine):
        got = linearizable(h, model=MODELS[model_name][0]())
    assert got.error is None, got.error
    assert got.valid is True, (got, list(h))


def _make_agree_test(name: str, engine: str = "default") -> Callable[..., None]:
    @FAST
    @given(h=random_histories(name, 7))
    def test(h: History) -> None:
        _agree(name, h, engine)

    suffix = "_python_search" if engine == "python" else ""
    test.__name__ = f"test_agrees_with_bruteforce_{name.replace('-', '_')}{suffix}"
    return test


def _make_valid_test(name: str, engine: str = "default") -> Callable[..., None]:
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(h=sequential_histories(name, 30))
    def test(h: History) -> None:
        _always_valid(name, h, engine)

    suffix = "_python_search" if engine == "python" else ""
    test.__name__ = f"test_sequential_widened_is_linearizable_{name.replace('-', '_')}{suffix}"
    return test


# Register models run with the default engine (the C search where it is built) and with
# the Python search, so both stay compared with brute force.
for _name in MODELS:
    for _engine_name in ("default", "python") if _name in NATIVE_MODELS else ("default",):
        _t = _make_agree_test(_name, _engine_name)
        globals()[_t.__name__] = _t
        _v = _make_valid_test(_name, _engine_name)
        globals()[_v.__name__] = _v
del _name, _t, _v, _engine_name
