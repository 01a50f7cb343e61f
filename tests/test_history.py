from __future__ import annotations

import pytest

from harness.errors import HistoryError
from harness.history import History, Op, OpType
from harness.testing import fail, history, info, invoke, ok


def test_pairs_each_invocation_with_its_completion() -> None:
    h = history(
        invoke(0, "write", 1),
        invoke(1, "read"),
        ok(1, "read", 1),
        ok(0, "write", 1),
    )
    calls = h.calls()
    assert [c.f for c in calls] == ["write", "read"]
    assert calls[0].complete is h[3]
    assert h.completion(h[1]) is h[2]
    assert h.invocation(h[2]) is h[1]
    assert calls[1].value == 1  # a read's value comes from its completion


def test_indeterminate_ops_are_info_or_never_completed() -> None:
    h = history(
        invoke(0, "write", 1),
        info(0, "write", 1),
        invoke(1, "write", 2),
        invoke(2, "write", 3),
        fail(2, "write", 3),
    )
    ind = h.indeterminate()
    assert [c.invoke.value for c in ind] == [1, 2]
    assert all(c.end is None for c in ind)
    assert h.calls()[2].failed and not h.calls()[2].indeterminate


def test_nemesis_events_are_not_client_calls() -> None:
    h = history(
        info("nemesis", "start-partition", "majority"),
        invoke(0, "read"),
        info("nemesis", "stop-partition"),
        ok(0, "read", None),
    )
    assert len(h.calls()) == 1
    assert [op.f for op in h.nemesis_ops()] == ["start-partition", "stop-partition"]


def test_completion_without_invocation_is_malformed() -> None:
    with pytest.raises(HistoryError, match="no open invocation"):
        history(ok(0, "read", 1))


def test_double_invoke_is_malformed() -> None:
    with pytest.raises(HistoryError, match="still open"):
        history(invoke(0, "read"), invoke(0, "read"))


def test_mismatched_f_is_malformed() -> None:
    with pytest.raises(HistoryError, match="does not match"):
        history(invoke(0, "read"), ok(0, "write", 1))


def test_duplicate_index_is_malformed() -> None:
    a = Op(5, 0, OpType.INVOKE, 0, "read")
    b = Op(5, 1, OpType.OK, 0, "read", 1)
    with pytest.raises(HistoryError, match="duplicate index"):
        History([a, b])


def test_sparse_indices_are_kept_and_looked_up() -> None:
    a = Op(10, 0, OpType.INVOKE, 0, "read")
    b = Op(20, 1, OpType.OK, 0, "read", 1)
    h = History([a, b])
    assert h.by_index(20) is b and h.position(20) == 1
    assert h.completion(a) is b


def test_empty_history() -> None:
    h = History([])
    assert len(h) == 0 and h.calls() == () and h.indeterminate() == ()


def test_history_is_immutable_and_comparable() -> None:
    h1 = history(invoke(0, "read"), ok(0, "read", 1))
    h2 = history(invoke(0, "read"), ok(0, "read", 1))
    assert h1 == h2 and h1.ops == h2.ops
    with pytest.raises(AttributeError):
        h1[0].value = 3  # type: ignore[misc]
