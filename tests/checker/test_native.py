"""The C search of register models (harness.checker.native) against the Python search.

Both searches are exact, so on every history they must give the same verdict;
the Python one is the specification (and is compared with brute force in
test_linearizable_properties.py). These tests draw histories larger than
brute force can check, with values of several types, keyed and not, and
check the C search's answers, its fall-backs to the Python path, and its
bounds.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checker import native
from harness.checker.linearizable import linearizable
from harness.checker.models import get_model
from harness.history import History, Op, OpType

pytestmark = pytest.mark.skipif(
    not native.AVAILABLE and os.environ.get("CI") != "true",
    reason="the C extension was not built (no C compiler at install)",
)


def test_the_extension_is_built() -> None:
    """In CI a missing build is a failure, not a fall-back nobody sees."""
    assert native.AVAILABLE
    assert native.enabled()


def _both(h: History, model: Any, **kw: Any) -> tuple[Any, Any]:
    got = linearizable(h, model=model, **kw)
    with native.engine("python"):
        ref = linearizable(h, model=model, **kw)
    return got, ref


VALUES = [0, 1, 2, "a", None, [1, 2], (1, 2)]


@st.composite
def register_histories(draw: st.DrawFn, keyed: bool, max_ops: int) -> History:
    """Random calls of read, write and cas over a few values of mixed types (lists and
    tuples of the same items are equal once frozen), with every outcome."""
    n = draw(st.integers(0, max_ops))
    events: list[tuple[float, int, Op]] = []
    values = st.sampled_from(VALUES)
    for p in range(n):
        f = draw(st.sampled_from(("read", "read", "write", "cas")))
        if f == "cas":
            inv: Any = [draw(values), draw(values)]
        elif f == "write":
            inv = draw(values)
        else:
            inv = None
        ok_value = draw(values) if f == "read" else inv
        if keyed:
            key = draw(st.sampled_from((0, "k", (1,))))
            inv, ok_value = [key, inv], [key, ok_value]
        outcome = draw(st.sampled_from(("ok", "ok", "ok", "info", "fail", "open")))
        a, b = draw(st.integers(0, 3 * n)), draw(st.integers(0, 3 * n))
        start, end = min(a, b) + p / (n + 1), max(a, b) + 1.0
        events.append((start, 0, Op(0, 0, OpType.INVOKE, p, f, inv)))
        if outcome == "ok":
            events.append((end, 1, Op(0, 0, OpType.OK, p, f, ok_value)))
        elif outcome == "info":
            events.append((end, 1, Op(0, 0, OpType.INFO, p, f, inv)))
        elif outcome == "fail":
            err = draw(st.sampled_from(("mismatch", "refused", None)))
            events.append((end, 1, Op(0, 0, OpType.FAIL, p, f, inv, err)))
    events.sort(key=lambda e: (e[0], e[1]))
    return History((op for _, _, op in events), reindex=True)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGISTERS = ("register", "cas-register", "etcd", "strict-cas-register")


@SETTINGS
@given(name=st.sampled_from(REGISTERS), h=register_histories(False, 24))
def test_same_verdict_as_the_python_search(name: str, h: History) -> None:
    model = get_model(name, initial=draw_initial(name))
    got, ref = _both(h, model)
    assert got.valid == ref.valid, (got, ref, list(h))
    assert got.error == ref.error
    assert got.details["dropped"] == ref.details["dropped"]
    assert got.details["op_count"] == ref.details["op_count"]
    if got.valid is False:
        ce = got.details["counterexample"]
        assert ce["could_not_place"]
        ids = {op.index for op in h}
        assert set(ce["linearized_prefix"]) <= ids and set(ce["could_not_place"]) <= ids


def draw_initial(name: str) -> Any:
    return None if name == "etcd" else 0


@SETTINGS
@given(h=register_histories(True, 30))
def test_same_verdict_per_key(h: History) -> None:
    model = get_model("cas-register-per-key")
    got, ref = _both(h, model)
    assert got.valid == ref.valid, (got, ref, list(h))
    assert got.details["partitions"] == ref.details["partitions"]
    assert [s["ops"] for s in got.details["partition_stats"]] == [
        s["ops"] for s in ref.details["partition_stats"]]


def _h(*events: tuple[str, int, str, Any]) -> History:
    return History([Op(i, i, OpType(t), p, f, v) for i, (t, p, f, v) in enumerate(events)])


def test_an_op_the_model_lacks_is_left_to_the_python_path() -> None:
    """The model raises on an unknown f: the Python path says so (unknown, ModelError)."""
    h = _h(("invoke", 0, "write", 1), ("ok", 0, "write", 1),
           ("invoke", 1, "frob", 1), ("ok", 1, "frob", 1))
    got, ref = _both(h, get_model("cas-register", initial=0))
    assert got.valid == ref.valid == "unknown"
    assert got.error == ref.error and "frob" in str(got.error)
    assert "engine" not in got.details


def test_a_cas_on_a_plain_register_is_left_to_the_python_path() -> None:
    h = _h(("invoke", 0, "cas", [0, 1]), ("ok", 0, "cas", [0, 1]))
    got, ref = _both(h, get_model("register", initial=0))
    assert got.valid == ref.valid == "unknown"
    assert got.error == ref.error


def test_an_invalid_history_names_where_it_got_stuck() -> None:
    h = _h(("invoke", 0, "write", 1), ("ok", 0, "write", 1),
           ("invoke", 1, "read", None), ("ok", 1, "read", 2))
    got = linearizable(h, model=get_model("cas-register", initial=0))
    assert got.valid is False
    assert got.details["engine"] == "native"
    ce = got.details["counterexample"]
    assert ce["linearized_prefix"] == [0]
    assert ce["could_not_place"] == [2]
    assert ce["state"] == "1"


def test_histories_indexed_apart_from_their_positions() -> None:
    """Op indices that are not positions (a filtered history) map to positions."""
    ops = [Op(10, 0, OpType.INVOKE, 0, "write", 1), Op(12, 1, OpType.OK, 0, "write", 1),
           Op(14, 2, OpType.INVOKE, 1, "read", None), Op(15, 3, OpType.OK, 1, "read", 0)]
    h = History(ops)
    got, ref = _both(h, get_model("cas-register", initial=0))
    assert got.valid is ref.valid is False
    assert got.details["counterexample"]["could_not_place"] == [14]


def test_the_memory_bound_gives_unknown_with_the_reason() -> None:
    """Many concurrent writes and reads: the memo grows past a tiny bound."""
    events: list[tuple[str, int, str, Any]] = []
    for p in range(24):
        events.append(("invoke", p, "write", p))
    for p in range(24):
        events.append(("ok", p, "write", p))
    for p in range(24, 30):
        events += [("invoke", p, "read", None), ("ok", p, "read", 99)]
    h = _h(*events)
    got = linearizable(h, model=get_model("cas-register", initial=0), max_memory=200_000)
    assert got.valid == "unknown"
    assert "memory bound reached" in got.details["reason"]


def test_large_partitions_go_to_the_python_search() -> None:
    n = native.NATIVE_MAX_OPS + 1
    events: list[tuple[str, int, str, Any]] = []
    for p in range(n):
        events += [("invoke", p, "write", p), ("ok", p, "write", p)]
    got = linearizable(_h(*events), model=get_model("cas-register", initial=0))
    assert got.valid is True
    assert "engine" not in got.details
    small = linearizable(_h(*events[:20]), model=get_model("cas-register", initial=0))
    assert small.details["engine"] == "native"


@st.composite
def mutex_histories(draw: st.DrawFn, max_ops: int) -> History:
    n = draw(st.integers(0, max_ops))
    events: list[tuple[float, int, Op]] = []
    for p in range(n):
        f = draw(st.sampled_from(("acquire", "release")))
        outcome = draw(st.sampled_from(("ok", "ok", "info", "fail", "open")))
        a, b = draw(st.integers(0, 3 * n)), draw(st.integers(0, 3 * n))
        start, end = min(a, b) + p / (n + 1), max(a, b) + 1.0
        events.append((start, 0, Op(0, 0, OpType.INVOKE, p, f, None)))
        if outcome != "open":
            events.append((end, 1, Op(0, 0, OpType(outcome), p, f, None)))
    events.sort(key=lambda e: (e[0], e[1]))
    return History((op for _, _, op in events), reindex=True)


@SETTINGS
@given(h=mutex_histories(20))
def test_same_verdict_for_a_mutex(h: History) -> None:
    got, ref = _both(h, get_model("mutex"))
    assert got.valid == ref.valid, (got, ref, list(h))
    assert got.details["dropped"] == ref.details["dropped"]
    if got.valid is False:
        assert got.details["counterexample"]["state"] in ("locked", "free")


class _Loose:
    """A value whose equality is not its hash's: the C search must leave it to Python."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return self.v


_NAN = float("nan")
ODD_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, -0.0, _NAN])
    | st.floats(allow_nan=True) | st.text(max_size=2) | st.builds(_Loose, st.integers(0, 2)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=1), inner,
                                                                max_size=2)
    | st.frozensets(st.integers(0, 2) | st.text(max_size=1), max_size=2),
    max_leaves=6,
)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 10))
def test_values_of_any_type_give_the_python_answer(data: st.DataObject, n: int) -> None:
    """Ints and floats that compare equal, NaN (the same object twice, too), bools, nested
    lists and dicts, sets, and a type whose hash disagrees with its equality: whatever
    the C search takes, it answers as the Python search does; the rest it hands over."""
    pool = data.draw(st.lists(ODD_VALUES, min_size=1, max_size=4))
    values = st.sampled_from(pool)
    events: list[tuple[str, int, str, Any]] = []
    for p in range(n):
        f = data.draw(st.sampled_from(("read", "write", "cas")))
        v = [data.draw(values), data.draw(values)] if f == "cas" else data.draw(values)
        done = data.draw(st.sampled_from(("ok", "info")))
        events += [("invoke", p, f, None if f == "read" else v), (done, p, f, v)]
    h = _h(*events)
    got, ref = _both(h, get_model("cas-register", initial=data.draw(values)))
    assert got.valid == ref.valid, (got, ref, events)
    assert got.error == ref.error
