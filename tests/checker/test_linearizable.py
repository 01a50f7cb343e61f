"""The linearizability checker on small named histories, with the whole verdict checked."""

from __future__ import annotations

import time
from typing import Any

from harness.checker.linearizable import linearizable
from harness.checker.models import cas_register, etcd_register, get_model, kv, register
from harness.checker.wgl import _SEEN_BYTES
from harness.history import History
from harness.testing import fail, history, info, invoke, ok


def check(h: History, model: Any, **kw: Any) -> Any:
    r = linearizable(h, model=model, **kw)
    assert r.checker == "linearizable"
    return r


def test_empty_history_is_linearizable() -> None:
    r = check(history(), cas_register(0))
    assert r.valid is True
    assert r.details["op_count"] == 0


def test_sequential_register() -> None:
    h = history(invoke(0, "write", 1), ok(0, "write", 1), invoke(1, "read"), ok(1, "read", 1))
    assert check(h, register()).valid is True


def test_stale_read_is_caught_with_a_counterexample() -> None:
    # knossos rethink-fail-minimal: value 0, then write 4 concurrent with a read of 3.
    h = history(
        invoke(0, "write", 0), ok(0, "write", 0),
        invoke(1, "read"), invoke(2, "write", 4), ok(1, "read", 3), ok(2, "write", 4),
        invoke(3, "read"), ok(3, "read", 4),
    )
    r = check(h, cas_register())
    assert r.valid is False
    ce = r.details["counterexample"]
    assert ce["key"] is None
    # write 0 (index 0), then write 4 (index 3) linearize; the read of 3 (index 2) cannot.
    assert ce["linearized_prefix"][0] == 0
    assert 2 in ce["could_not_place"]
    assert ce["state"] in ("0", "4")


def test_concurrent_ops_may_take_effect_in_either_order() -> None:
    h = history(
        invoke(0, "write", 1), invoke(1, "write", 2), ok(0, "write", 1), ok(1, "write", 2),
        invoke(2, "read"), ok(2, "read", 1),
    )
    assert check(h, register()).valid is True


def test_read_before_write_completes_cannot_see_later_value() -> None:
    h = history(
        invoke(0, "read"), ok(0, "read", 1), invoke(1, "write", 1), ok(1, "write", 1),
    )
    assert check(h, register(0)).valid is False


def test_identity_write_is_not_linearized_eagerly() -> None:
    # Register at 3. A long write(3) is concurrent with write(5) and a read of 3 that
    # starts after write(5) ended: only write(5), write(3), read(3) works. A write
    # that happens to leave the state unchanged must therefore not be moved first.
    h = history(
        invoke(0, "write", 3),
        invoke(1, "write", 5), ok(1, "write", 5),
        invoke(2, "read"), ok(0, "write", 3), ok(2, "read", 3),
    )
    assert check(h, register(3)).valid is True
    assert check(h, register(3), max_memory=1 << 20).valid is True


def test_indeterminate_write_may_take_effect_late() -> None:
    h = history(
        invoke(0, "write", 1), info(0, "write", 1),
        invoke(1, "read"), ok(1, "read", None),
        invoke(2, "read"), ok(2, "read", 1),
    )
    assert check(h, etcd_register()).valid is True


def test_indeterminate_write_may_never_take_effect() -> None:
    h = history(invoke(0, "write", 1), invoke(1, "read"), ok(1, "read", 0))
    assert check(h, cas_register(0)).valid is True


def test_indeterminate_op_cannot_take_effect_before_its_invocation() -> None:
    h = history(invoke(1, "read"), ok(1, "read", 1), invoke(0, "write", 1), info(0, "write", 1))
    assert check(h, cas_register(0)).valid is False


def test_failed_ops_are_dropped() -> None:
    h = history(invoke(0, "write", 1), fail(0, "write", 1), invoke(1, "read"), ok(1, "read", 0))
    r = check(h, cas_register(0))
    assert r.valid is True
    assert r.details["dropped"]["failed"] == 1


def test_etcd_mismatch_is_checked() -> None:
    # cas [0 1] failing with "mismatch" while the register certainly holds 0: impossible.
    h = history(
        invoke(0, "write", 0), ok(0, "write", 0),
        invoke(1, "cas", [0, 1]), fail(1, "cas", [0, 1], error="mismatch"),
    )
    assert check(h, etcd_register()).valid is False
    assert check(h, cas_register()).valid is True  # Knossos drops the failure


def test_unknown_f_is_unknown_with_the_error() -> None:
    h = history(invoke(0, "frob", 1), ok(0, "frob", 1))
    r = check(h, cas_register())
    assert r.valid == "unknown"
    assert r.error is not None and "frob" in r.error


def test_model_crash_is_unknown_not_a_crash() -> None:
    class Broken:
        name = "broken"

        def init(self) -> int:
            return 0

        def step(self, state: Any, op: Any) -> Any:
            raise ZeroDivisionError("boom")

        def describe(self, state: Any) -> str:
            return str(state)

    r = check(history(invoke(0, "x"), ok(0, "x")), Broken())
    assert r.valid == "unknown"
    assert r.error is not None and "ZeroDivisionError" in r.error


def hard_kv(key: str, n: int, *, process0: int = 0) -> list[Any]:
    """``n`` concurrent puts and appends, then a get of a value no order produces.

    Puts reset the value, so no shortcut refutes the get: the search must try
    the orders (memoized by set and value), which is exponential in ``n``.
    """
    ops: list[Any] = []
    fs = ["put" if p % 2 else "append" for p in range(n)]
    for p in range(n):
        ops.append(invoke(process0 + p, fs[p], [key, f"<{p}>"]))
    for p in range(n):
        ops.append(ok(process0 + p, fs[p], [key, f"<{p}>"]))
    g = process0 + n
    ops += [invoke(g, "get", [key, None]), ok(g, "get", [key, "nope"])]
    return ops


def test_time_limit_gives_unknown_with_a_reason() -> None:
    h = history(*hard_kv("k", 12))
    t0 = time.perf_counter()
    r = check(h, kv(), time_limit_s=0.2)
    assert time.perf_counter() - t0 < 2.0
    assert r.valid == "unknown"
    assert "time limit" in r.details["reason"]


def test_memory_bound_gives_unknown_with_a_reason() -> None:
    h = history(*hard_kv("k", 12))
    r = check(h, kv(), max_memory=2_000_000)
    assert r.valid == "unknown"
    assert "memory bound reached" in r.details["reason"]
    # The bound is checked between step budgets (at most 2**15 steps, one memo entry each).
    memo = sum(p["states"] for p in r.details["partition_stats"]) * _SEEN_BYTES
    assert memo <= 2_000_000 + (1 << 15) * _SEEN_BYTES


def test_a_bad_small_partition_is_found_despite_a_huge_one() -> None:
    # Key "big" alone would take far longer than the limit; key "small" is plainly bad.
    small = [invoke(100, "put", ["small", "a"]), ok(100, "put", ["small", "a"]),
             invoke(101, "get", ["small", None]), ok(101, "get", ["small", "b"])]
    h = history(*hard_kv("big", 14), *small)
    t0 = time.perf_counter()
    r = check(h, kv(), time_limit_s=20)
    assert time.perf_counter() - t0 < 1.0
    assert r.valid is False
    assert r.details["counterexample"]["key"] == "small"
    stats = {p["key"]: p for p in r.details["partition_stats"]}
    assert stats["small"]["result"] == "not linearizable"
    assert stats["big"]["result"] == "unfinished"
    assert r.details["partitions"] == 2


def test_partitions_are_checked_independently() -> None:
    m = get_model("cas-register-per-key")
    h = history(
        invoke(0, "write", ["a", 1]), invoke(1, "write", ["b", 2]),
        ok(0, "write", ["a", 1]), ok(1, "write", ["b", 2]),
        invoke(2, "read", ["a", None]), ok(2, "read", ["a", 1]),
        invoke(3, "read", ["b", None]), ok(3, "read", ["b", 2]),
    )
    r = check(h, m)
    assert r.valid is True
    assert r.details["partitions"] == 2
    assert {p["key"] for p in r.details["partition_stats"]} == {"a", "b"}


def test_work_item_empty_claim_needs_the_whole_history() -> None:
    # Per item each claim-of-nothing fits (item 1 was claimed before it, item 2 not
    # yet enqueued), but at any single instant one of them is queued: a per-item
    # pass must be confirmed on the whole history, which fails here.
    m = get_model("work-item")
    e1 = {"id": 1, "payload": 1}
    e2 = {"id": 2, "payload": 2}
    h = history(
        invoke(0, "enqueue", e1), ok(0, "enqueue", e1),
        invoke(1, "claim"),  # empty claim concurrent with a claim of 1 and enqueue of 2
        invoke(2, "claim"), ok(2, "claim", {"id": 1, "token": 1}),
        invoke(3, "enqueue", e2), ok(3, "enqueue", e2),
        ok(1, "claim", None),
    )
    r = check(h, m)
    assert r.valid is True  # linearize the empty claim between the claim of 1 and enqueue 2
    assert r.details["whole_history_check"] is True
    # Now enqueue 2 ends before the claim of 1 starts: no instant has neither queued.
    h_bad = history(
        invoke(0, "enqueue", e1), ok(0, "enqueue", e1),
        invoke(1, "claim"),
        invoke(3, "enqueue", e2), ok(3, "enqueue", e2),
        invoke(2, "claim"), ok(2, "claim", {"id": 1, "token": 1}),
        ok(1, "claim", None),
    )
    r_bad = check(h_bad, m)
    assert r_bad.valid is False
    assert r_bad.details["whole_history_check"] is True
    assert all(p["result"] == "linearizable" for p in r_bad.details["partition_stats"])


def test_empty_claims_alone_are_still_checked() -> None:
    m = get_model("work-item")
    h = history(invoke(0, "claim"), ok(0, "claim", None))
    r = check(h, m)
    assert r.valid is True
    assert r.details["op_count"] == 1


def test_collect_finds_every_failing_partition_and_keeps_the_verdict() -> None:
    from harness.checker.linearizable import linearizable as lin
    from harness.checker.models import get_model
    from harness.testing import history as hist
    from harness.testing import invoke as inv
    from harness.testing import ok as okk

    h = hist(
        inv(0, "write", ["a", 1]), okk(0, "write", ["a", 1]),
        inv(0, "read", ["a", None]), okk(0, "read", ["a", 2]),   # key a: impossible read
        inv(1, "write", ["b", 1]), okk(1, "write", ["b", 1]),
        inv(1, "read", ["b", None]), okk(1, "read", ["b", 3]),   # key b: impossible read
        inv(2, "write", ["c", 1]), okk(2, "write", ["c", 1]),    # key c: fine
    )
    model = get_model("cas-register-per-key")
    first = lin(h, model=model)
    assert first.valid is False and len(first.details["counterexamples"]) == 1
    every = lin(h, model=model, collect_s=5.0)
    assert every.valid is False
    assert sorted(cx["key"] for cx in every.details["counterexamples"]) == ["a", "b"]
    assert every.details["counterexample"] == every.details["counterexamples"][0]
