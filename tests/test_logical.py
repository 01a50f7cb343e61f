"""Retries of one logical operation: recorded as such, and judged as one call."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import check_history
from harness.checker.queue import queue
from harness.client import Outcome, info, ok
from harness.generator import ClientOp
from harness.history import History, Op, OpType
from harness.logical import has_merged_retries, logical_history
from harness.testing import history, invoke
from harness.testing import info as info_op
from harness.testing import ok as ok_op


def retry(op: Op, first_index: int, promise: str = "request-id") -> Op:
    return replace(op, extra=(("idempotency", promise), ("retry_of", first_index)))


def double_applied_write(promise: str) -> History:
    """Write 5 times out but took effect; 6 is written; the resend of 5 is applied
    again (a broken deduplication), and a read sees 5 after 6."""
    return history(
        invoke(0, "write", ["k", 5]),                 # 0: first attempt
        invoke(1, "read", ["k", None]), ok_op(1, "read", ["k", 5]),
        info_op(0, "write", ["k", 5]),                # 3: its outcome unknown
        invoke(1, "write", ["k", 6]), ok_op(1, "write", ["k", 6]),
        invoke(1, "read", ["k", None]), ok_op(1, "read", ["k", 6]),
        retry(invoke(5, "write", ["k", 5]), 0, promise),  # 8: the resend, a new process
        ok_op(5, "write", ["k", 5]),
        invoke(1, "read", ["k", None]), ok_op(1, "read", ["k", 5]),
    )


def test_a_request_id_systems_retries_are_one_call() -> None:
    h = double_applied_write("request-id")
    merged = logical_history(h)
    writes5 = [c for c in merged.calls() if c.f == "write" and c.invoke.value == ["k", 5]]
    assert len(writes5) == 1
    (w,) = writes5
    assert w.invoke.index == 0 and w.process == 0 and w.ok and w.complete is not None
    assert w.complete.index == 9  # it ends where the last attempt ended
    assert len(merged.calls()) == len(h.calls()) - 1


def test_a_write_applied_twice_under_one_request_id_is_not_linearizable() -> None:
    def verdict(h: History) -> Any:
        return check_history(h, model="cas-register-per-key", checkers=["linearizable"])[1].valid

    assert verdict(double_applied_write("request-id")) is False
    # without idempotency the resend is a second write the client really sent: legal
    assert verdict(double_applied_write("none")) is True


def test_a_refused_resend_leaves_the_logical_enqueue_indeterminate() -> None:
    """A node may refuse a resend without looking at its request ids ("no leader"):
    that says nothing of the first attempt, which may have enqueued the item."""
    item = {"id": "i1"}
    h = history(invoke(0, "enqueue", item), info_op(0, "enqueue", item),
                retry(invoke(5, "enqueue", item), 0),
                replace(ok_op(5, "enqueue", item), type=OpType.FAIL, error="no_leader"),
                invoke(1, "dequeue"), ok_op(1, "dequeue", item))
    (enq,) = [c for c in logical_history(h).calls() if c.f == "enqueue"]
    assert enq.type is OpType.INFO and "no_leader" in str(enq.complete and enq.complete.error)
    r = check_history(h, checkers=["queue"])[1].details["results"]["queue"]
    assert r.valid is True and r.details["recovered"] == ["i1"]
    # an ok resend speaks for the whole operation
    h_ok = history(*h.ops[:3], ok_op(5, "enqueue", item), *h.ops[4:])
    (enq,) = [c for c in logical_history(h_ok).calls() if c.f == "enqueue"]
    assert enq.ok and enq.process == 0


def test_markers_that_do_not_describe_a_retry_are_ignored() -> None:
    h = history(invoke(0, "write", ["k", 1]), ok_op(0, "write", ["k", 1]),
                retry(invoke(1, "write", ["k", 1]), 0), ok_op(1, "write", ["k", 1]),
                invoke(2, "write", ["k", 2]), info_op(2, "write", ["k", 2]),
                retry(invoke(7, "cas", ["k", [2, 3]]), 4), ok_op(7, "cas", ["k", [2, 3]]))
    # a "retry" of another op is ignored; a resend of the acknowledged write is
    # folded into its first attempt (that one is a resend, not a stray marker)
    merged = logical_history(h)
    assert has_merged_retries(h)
    assert [op.index for op in merged] == [0, 1, 4, 5, 6, 7]
    assert merged[5] == h[7]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ok", "info", "fail", "open"]),
                          st.integers(0, 3), st.booleans()), max_size=12))
def test_any_chain_of_retries_folds_into_a_well_formed_history(
        attempts: list[tuple[str, int, bool]]) -> None:
    """Random chains of attempts (each on a new process, as the driver does), with
    a random subset marked as resends: the folded history is always well formed
    and has one call per logical operation."""
    ops: list[Op] = []
    first: int | None = None
    logical = 0
    for process, (outcome, _, is_retry) in enumerate(attempts):
        value = ["k", 1]
        if not (is_retry and first is not None):
            first, logical = len(ops), logical + 1
            inv = invoke(process, "write", value)
        else:
            inv = retry(invoke(process, "write", value), first)
        ops.append(inv)
        if outcome != "open":
            ops.append({"ok": ok_op, "info": info_op}.get(outcome, ok_op)(process, "write", value)
                       if outcome != "fail" else
                       replace(ok_op(process, "write", value), type=OpType.FAIL, error="no"))
        if outcome in ("ok", "fail"):
            first = None  # a definite outcome ends the logical operation
    h = history(*ops)
    merged = logical_history(h)
    assert len(merged.calls()) <= len(h.calls())
    assert len(merged.calls()) >= logical


class FlakyRegister:
    """An in-memory register client whose first send of each write times out
    after taking effect; a resend under the same request id is answered ok."""

    idempotency = "request-id"

    def __init__(self, store: dict[str, Any]) -> None:
        self.store = store

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        key, v = value
        if f == "read":
            return ok([key, self.store.get(key)])
        self.store[key] = v
        return info("timeout")

    def retry(self, f: str, value: Any) -> Outcome:
        return ok(value)

    def close(self) -> None:
        pass


def test_the_driver_resends_under_a_new_process_and_marks_the_retry() -> None:
    from harness.runner import Recorder, drive_worker

    class Sink:
        def write(self, op: Op) -> None:
            pass

    rec = Recorder(Sink())  # type: ignore[arg-type]
    client = FlakyRegister({})
    ops = [ClientOp(0.0, 0, "write", ["k", 1]), ClientOp(0.0, 0, "read", ["k", None])]
    n = drive_worker(client, rec, ops, process=0, concurrency=4, t0=time.monotonic(),
                     end=time.monotonic() + 5, stop=threading.Event(), retries=2)
    assert n == 3
    h = History(rec.ops)
    calls = h.calls()
    assert [(c.process, c.f, c.type.value) for c in calls] == [
        (0, "write", "info"), (4, "write", "ok"), (4, "read", "ok")]
    assert dict(calls[1].invoke.extra) == {"idempotency": "request-id", "retry_of": 0}
    # no retries asked for: none made
    rec2 = Recorder(Sink())  # type: ignore[arg-type]
    drive_worker(client, rec2, ops[:1], process=0, concurrency=4, t0=time.monotonic(),
                 end=time.monotonic() + 5, stop=threading.Event())
    assert len(History(rec2.ops).calls()) == 1


def test_without_request_ids_an_enqueue_failed_only_if_every_attempt_did() -> None:
    item = {"id": "i1"}
    h = history(invoke(0, "enqueue", item), info_op(0, "enqueue", item),
                retry(invoke(5, "enqueue", item), 0, "none"),
                replace(ok_op(5, "enqueue", item), type=OpType.FAIL, error="exists"),
                invoke(1, "dequeue"), ok_op(1, "dequeue", item))
    assert logical_history(h) == h  # no promise: the resend stays its own call
    r = queue(h)
    assert r.valid is True and r.details["recovered"] == ["i1"]
    assert r.details["failed_then_seen"] == []


class DedupRegister:
    """A register client whose system answers a resend from a request-id table of
    ``table`` entries (0: no table: a resend is applied again, a CAS judged anew)."""

    idempotency = "request-id"

    def __init__(self, table: int) -> None:
        self.store: dict[str, Any] = {}
        self.table: dict[int, Outcome] = {}
        self.size = table
        self.rid = 0
        self.applied = 0

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def _apply(self, f: str, value: Any) -> Outcome:
        key, v = value
        self.applied += 1
        if f == "cas":
            old, new = v
            if self.store.get(key) != old:
                return Outcome(OpType.FAIL, None, "mismatch")
            self.store[key] = new
            return ok(value)
        self.store[key] = v
        return ok(value)

    def invoke(self, f: str, value: Any) -> Outcome:
        self.rid += 1
        out = self._apply(f, value)
        if self.size:
            self.table[self.rid] = out
        return out

    def retry(self, f: str, value: Any) -> Outcome:
        if self.rid in self.table:
            return self.table[self.rid]
        return self._apply(f, value)

    def close(self) -> None:
        pass


def _drive_resends(client: DedupRegister) -> History:
    from harness.runner import Recorder, drive_worker

    class Sink:
        def write(self, op: Op) -> None:
            pass

    rec = Recorder(Sink())  # type: ignore[arg-type]
    rec.nemesis("promises", {"availability": {"refusals": {"cas": ["mismatch"]},
                                              "recovery_grace_ms": 0.0}})
    ops = [ClientOp(0.0, 0, "cas", ["k", [i, i + 1]]) for i in range(-1, 30)]
    ops[0] = ClientOp(0.0, 0, "write", ["k", 0])
    drive_worker(client, rec, ops, process=0, concurrency=4, t0=time.monotonic(),
                 end=time.monotonic() + 5, stop=threading.Event(), retries=2,
                 resend_rate=0.5, rng=random.Random(3))
    return History(rec.ops)


def test_acknowledged_requests_are_resent_and_folded_into_their_first_attempt() -> None:
    good = DedupRegister(table=100)
    h = _drive_resends(good)
    marked = [c for c in h.calls() if dict(c.invoke.extra).get("retry_of") is not None]
    assert marked, "a resend rate of 0.5 resent nothing"
    assert all(c.ok for c in marked)
    merged = logical_history(h)
    assert len(merged.calls()) == len(h.calls()) - len(marked)
    plan, result = check_history(h, model="cas-register-per-key")
    assert "idempotency" in plan.checkers
    assert result.valid is True, result.details
    idem = result.details["results"]["idempotency"].details
    assert idem["resends"] == len(marked) == idem["same_answer"]


def test_a_resend_judged_anew_is_an_idempotency_anomaly() -> None:
    h = _drive_resends(DedupRegister(table=0))
    _, result = check_history(h, model="cas-register-per-key")
    idem = result.details["results"]["idempotency"]
    assert idem.valid is False
    assert idem.details["anomalies"] == ["resend-reapplied"]
    first = idem.details["anomalous"][0]
    assert first["f"] == "cas" and first["resend_answer"] == "mismatch"
    assert result.valid is False


def test_no_resends_through_a_client_without_request_ids() -> None:
    client = DedupRegister(table=100)
    client.idempotency = "none"  # type: ignore[misc]
    h = _drive_resends(client)
    assert not [c for c in h.calls() if dict(c.invoke.extra).get("retry_of") is not None]
