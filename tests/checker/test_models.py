"""Each model's step function on its own, state by state."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checker.models import (
    EVERY,
    INCONSISTENT,
    MODELS,
    Operation,
    cas_register,
    etcd_register,
    fifo_queue,
    get_model,
    independent,
    kv,
    multi_register,
    mutex,
    register,
    unordered_queue,
    work_item,
)
from harness.errors import ModelError
from harness.history import OpType

OK, INFO, FAIL = OpType.OK, OpType.INFO, OpType.FAIL


def run(model: Any, *ops: Operation) -> Any:
    """Fold ``ops`` through ``model``; INCONSISTENT as soon as one step is."""
    s = model.init()
    for op in ops:
        s = model.step(s, op)
        if s is INCONSISTENT:
            return s
        hash(s)  # states must be hashable: the checker memoizes them
    return s


def test_register_reads_see_the_last_write() -> None:
    m = register()
    assert run(m, Operation("write", 3), Operation("read", 3)) == 3
    assert run(m, Operation("write", 3), Operation("read", 4)) is INCONSISTENT
    assert run(m, Operation("read", None)) is None  # Knossos: an unrecorded read is legal


def test_register_has_no_cas() -> None:
    with pytest.raises(ModelError):
        run(register(), Operation("cas", [1, 2]))


def test_cas_register_follows_knossos() -> None:
    m = cas_register(0)
    assert run(m, Operation("cas", [0, 5]), Operation("read", 5)) == 5
    assert run(m, Operation("cas", [1, 5])) is INCONSISTENT
    assert run(m, Operation("write", 2), Operation("read", None)) == 2
    assert run(m, Operation("read", 1)) is INCONSISTENT
    assert m.read_only(Operation("read", 1))
    assert m.read_only(Operation("cas", [2, 2]))
    assert not m.read_only(Operation("cas", [2, 3]))
    assert not m.read_only(Operation("write", 2))


def test_cas_register_lists_and_tuples_are_one_value() -> None:
    m = cas_register()
    assert run(m, Operation("write", [1, 2]), Operation("read", (1, 2))) == (1, 2)


def test_indeterminate_read_accepts_any_output() -> None:
    m = cas_register(0)
    assert run(m, Operation("read", 7, INFO)) == 0


def test_etcd_register_nil_read_means_absent() -> None:
    m = etcd_register()
    assert run(m, Operation("read", None)) is None
    assert run(m, Operation("write", 1), Operation("read", None)) is INCONSISTENT


def test_etcd_mismatch_is_an_observation() -> None:
    m = etcd_register()
    mismatch = Operation("cas", [1, 2], FAIL, "mismatch")
    assert m.observes_failure(mismatch)
    assert not m.observes_failure(Operation("cas", [1, 2], FAIL, "timeout"))
    assert not m.observes_failure(Operation("write", 1, FAIL, "mismatch"))
    assert m.read_only(mismatch)
    assert run(m, Operation("write", 3), mismatch) == 3
    assert run(m, Operation("write", 1), mismatch) is INCONSISTENT
    assert not cas_register().observes_failure(mismatch)


def test_unknown_f_is_an_error() -> None:
    for name in MODELS:
        m = get_model(name)
        with pytest.raises(ModelError):
            s = m.init()
            op = Operation("frobnicate", [0, {"id": 0, "token": 1}])
            m.step(s, op)


def test_independent_partitions_by_key() -> None:
    m = independent(cas_register())
    assert m.name == "cas-register-per-key"
    s = run(m, Operation("write", ["a", 1]), Operation("write", ["b", 2]),
            Operation("read", ["a", 1]), Operation("read", ["b", 2]))
    assert dict(s) == {"a": 1, "b": 2}
    assert run(m, Operation("write", ["a", 1]), Operation("read", ["b", 1])) is INCONSISTENT
    assert m.partition(Operation("read", ["a", 1])) == ("a", Operation("read", 1))
    with pytest.raises(ModelError):
        m.partition(Operation("read", 1))


def test_kv_gets_puts_and_appends_per_key() -> None:
    m = kv()
    s = run(m, Operation("append", ["k", "x"]), Operation("append", ["k", "y"]),
            Operation("get", ["k", "xy"]), Operation("get", ["j", ""]))
    assert dict(s) == {"k": "xy"}
    assert run(m, Operation("put", ["k", "a"]), Operation("get", ["k", ""])) is INCONSISTENT
    assert run(m, Operation("get", ["k", "zz"], INFO)) == m.init()  # output unknown
    key, inner = m.partition(Operation("get", ["k", "x"]))
    assert key == "k"
    assert m.inner.read_only(inner)
    assert not m.inner.read_only(m.partition(Operation("append", ["k", "x"]))[1])
    with pytest.raises(ModelError):
        run(m, Operation("put", ["k", 3]))


def test_multi_register_txns() -> None:
    m = multi_register()
    w = Operation("txn", [[":write", ":x", 1], ["write", "y", 2]])
    r_ok = Operation("txn", [["read", "x", 1], ["read", ":y", 2]])
    r_bad = Operation("txn", [["read", "x", 1], ["read", "y", 0]])
    assert dict(run(m, w, r_ok)) == {"x": 1, "y": 2}
    assert run(m, w, r_bad) is INCONSISTENT
    assert run(m, Operation("txn", [["read", "x", 0], ["read", "y", None]])) is not INCONSISTENT
    assert m.read_only(r_ok) and not m.read_only(w)
    assert dict(multi_register({"z": 5}).init()) == {"z": 5}
    with pytest.raises(ModelError):
        run(m, Operation("txn", [["incr", "x", 1]]))


def test_mutex() -> None:
    m = mutex()
    assert run(m, Operation("acquire"), Operation("release"), Operation("acquire")) is True
    assert run(m, Operation("acquire"), Operation("acquire")) is INCONSISTENT
    assert run(m, Operation("release")) is INCONSISTENT


def test_fifo_queue() -> None:
    m = fifo_queue()
    assert run(m, Operation("enqueue", 1), Operation("enqueue", 2),
               Operation("dequeue", 1)) == (2,)
    assert run(m, Operation("enqueue", 1), Operation("enqueue", 2),
               Operation("dequeue", 2)) is INCONSISTENT
    assert run(m, Operation("dequeue", None)) == ()
    assert run(m, Operation("enqueue", 1), Operation("dequeue", None)) is INCONSISTENT
    assert run(m, Operation("enqueue", 1), Operation("dequeue", None, INFO)) == ()


def test_unordered_queue() -> None:
    m = unordered_queue()
    s = run(m, Operation("enqueue", 1), Operation("enqueue", 2), Operation("dequeue", 2))
    assert s == ((1, 1),)
    assert run(m, Operation("enqueue", 1), Operation("dequeue", 3)) is INCONSISTENT
    s2 = run(m, Operation("enqueue", 1), Operation("enqueue", 2))
    assert set(m.successors(s2, Operation("dequeue", None, INFO))) == {((1, 1),), ((2, 1),)}
    with pytest.raises(ModelError):
        m.step(s2, Operation("dequeue", None, INFO))


def item(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": i, **kw}


def test_work_item_lifecycle() -> None:
    m = work_item()
    enq = Operation("enqueue", item(1, payload="p"))
    claim5 = Operation("claim", item(1, token=5))
    done5 = Operation("complete", item(1, token=5, result="r"))
    s = run(m, enq, claim5, Operation("renew", item(1, token=5)), done5, done5)
    assert dict(s) == {1: ("completed", 5)}
    # completing with a stale token, after a takeover with a larger one
    claim7 = Operation("claim", item(1, token=7))
    assert run(m, enq, claim5, claim7, done5) is INCONSISTENT
    assert dict(run(m, enq, claim5, claim7,
                    Operation("complete", item(1, token=7)))) == {1: ("completed", 7)}
    # takeover needs a larger token; fail requeues
    assert run(m, enq, claim7, claim5) is INCONSISTENT
    s = run(m, enq, claim5, Operation("fail", item(1, token=5)))
    assert dict(s) == {1: ("queued", 5)}
    assert run(m, enq, claim5, Operation("fail", item(1, token=5)), claim5) is INCONSISTENT
    # a claim of something never enqueued
    assert run(m, claim5) is INCONSISTENT


def test_work_item_empty_claim_sees_every_item() -> None:
    m = work_item()
    empty = Operation("claim", None)
    assert m.partition(empty)[0] is EVERY
    assert run(m, Operation("enqueue", item(1)), empty) is INCONSISTENT
    assert run(m, Operation("enqueue", item(1)), Operation("claim", item(1, token=1)),
               empty) is not INCONSISTENT
    assert m.read_only(empty)


def test_work_item_unanswered_claim_binds_its_token_later() -> None:
    m = work_item()
    s = run(m, Operation("enqueue", item(1)))
    lost = Operation("claim", None, INFO)
    nexts = m.successors(s, lost)
    assert s in nexts and len(nexts) == 2
    taken = next(x for x in nexts if x != s)
    assert dict(m.step(taken, Operation("complete", item(1, token=9)))) == {
        1: ("completed", 9)}


def test_get_model_names_and_options() -> None:
    assert get_model("cas-register", initial=0).init() == 0
    assert get_model("cas-register-per-key").name == "cas-register-per-key"
    assert get_model("register-per-key").name == "register-per-key"
    with pytest.raises(ModelError):
        get_model("nope")
    with pytest.raises(ModelError):
        get_model("mutex", initial=3)


def test_describe_is_a_string_for_every_model() -> None:
    for name in MODELS:
        m = get_model(name)
        assert isinstance(m.describe(m.init()), str)


def test_strict_register_checks_nil_reads_where_knossos_accepts_them() -> None:
    """A lost write followed by "not found": Knossos's wildcard nil passes it; the
    register workload's model must not (its clients answer None only for no value)."""
    from harness.checker import linearizable
    from harness.testing import history, invoke, ok

    h = history(invoke(0, "write", ["k", 1]), ok(0, "write", ["k", 1]),
                invoke(1, "read", ["k", None]), ok(1, "read", ["k", None]))
    assert linearizable(h, model=get_model("cas-register-per-key")).valid is True
    assert linearizable(h, model=get_model("strict-cas-register-per-key")).valid is False
    before = history(invoke(1, "read", ["k", None]), ok(1, "read", ["k", None]),
                     invoke(0, "write", ["k", 1]), ok(0, "write", ["k", 1]))
    assert linearizable(before, model=get_model("strict-cas-register-per-key")).valid is True
