"""The register workload: fresh keys, unique values, cas on recent values, final reads.

The plan is data, so most tests read it directly. The rest execute it against
an in-memory register (correct, or serving one stale value) and check the
history with the workload's own model: a stale read must be caught, a correct
register must pass, and each key's share of a history must stay bounded
however long the run (that bound is what keeps checking linear in run length).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.bench.driver import InMemoryRegisterClient
from harness.checker.linearizable import linearizable
from harness.checker.models import get_model
from harness.client import Client, Outcome, fail, ok
from harness.errors import HarnessError
from harness.formats import HistoryWriter
from harness.generator import ClientOp, client_ops
from harness.history import History, Op, OpType
from harness.runner import Recorder, drive_worker, unpaced_ops
from harness.workloads import get_workload
from harness.workloads.register import NO_VALUE, RegisterWorkload

NODES = ("n1", "n2", "n3")


def plan(w: RegisterWorkload, *, seconds: float = 30.0, rate_hz: float = 50.0,
         concurrency: int = 5, seed: int = 1) -> list[ClientOp]:
    return list(client_ops(w.phases(time_limit_s=seconds, rate_hz=rate_hz),
                           concurrency=concurrency, rng=random.Random(seed)))


def by_key(ops: Iterable[ClientOp]) -> dict[str, list[ClientOp]]:
    keys: dict[str, list[ClientOp]] = defaultdict(list)
    for op in ops:
        keys[op.value[0]].append(op)
    return keys


def written(op: ClientOp) -> int | None:
    """The value a write or a cas would leave in its key."""
    if op.f == "write":
        return int(op.value[1])
    if op.f == "cas":
        return int(op.value[1][1])
    return None


# ---------------------------------------------------------------- the plan


def test_each_key_takes_at_most_n_ops_then_clients_move_on() -> None:
    w = RegisterWorkload(ops_per_key=40)
    ops = plan(w)
    keys = by_key(ops)
    assert len(ops) > 1000
    assert len(keys) == math.ceil(len(ops) / 40)
    assert all(len(v) <= 40 for v in keys.values())
    assert sorted(Counter(len(v) for v in keys.values()).items())[-1] == (40, len(keys) - 1)
    # keys are used one after another: a key never comes back once the next began
    order = [int(op.value[0][1:]) for op in ops]
    assert order == sorted(order) and set(order) == set(range(len(keys)))
    # several clients share each key while it is live
    assert all(len({op.worker for op in v}) == 5 for v in keys.values() if len(v) == 40)


def test_values_written_to_a_key_are_unique() -> None:
    for op_list in by_key(plan(RegisterWorkload(ops_per_key=25))).values():
        values = [v for v in map(written, op_list) if v is not None]
        assert values and len(values) == len(set(values))
        assert NO_VALUE not in values


def test_reads_name_only_a_key() -> None:
    reads = [op for op in plan(RegisterWorkload()) if op.f == "read"]
    assert reads and all(op.value[1] is None for op in reads)


def test_cas_compares_against_a_recent_value_of_its_key() -> None:
    """A cas's ``from`` is one of the key's last ``cas_recent`` values in plan order,
    usually the current one (so, applied in plan order, most succeed); on a key the
    plan has not written yet it is a value nobody writes."""
    w = RegisterWorkload(ops_per_key=60, cas_recent=3)
    current: dict[str, int | None] = {}
    recent: dict[str, list[int]] = defaultdict(list)
    matched = older = unwritten = 0
    for op in plan(w, seconds=60):
        key = op.value[0]
        if op.f == "write":
            current[key] = op.value[1]
            recent[key].append(op.value[1])
        elif op.f == "cas":
            frm, to = op.value[1]
            if not recent[key]:
                assert frm == NO_VALUE
                unwritten += 1
                continue
            assert frm in recent[key][-3:], (op, recent[key][-3:])
            if frm == current[key]:
                matched += 1
                current[key] = to
                recent[key].append(to)
            else:
                older += 1
    assert matched > 2 * (older + unwritten) and older > 0 and unwritten > 0


def test_plan_is_replayable_from_its_seed() -> None:
    w = RegisterWorkload(ops_per_key=30)
    assert plan(w, seed=7) == plan(w, seed=7)
    assert plan(w, seed=7) != plan(w, seed=8)
    # a fresh workload object plans the same: no state is carried between plans
    assert plan(RegisterWorkload(ops_per_key=30), seed=7) == plan(w, seed=7)


def test_unpaced_workers_share_keys_within_the_bound() -> None:
    """Without a rate each worker plans in its own thread, concurrently; the counters
    stay unique, so the per-key bound and unique values hold all the same."""
    w = RegisterWorkload(ops_per_key=20)
    phases = w.phases(time_limit_s=0.2, rate_hz=0)
    got: list[list[ClientOp]] = [[] for _ in range(4)]
    t0 = time.monotonic()

    def worker(i: int) -> None:
        for op in unpaced_ops(phases, worker=i, concurrency=4, rng=random.Random(i), t0=t0):
            got[i].append(op)
            if len(got[i]) >= 500:
                break

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = by_key(op for ops in got for op in ops)
    assert len(keys) > 1 and all(len(v) <= 20 for v in keys.values())
    for op_list in keys.values():
        values = [v for v in map(written, op_list) if v is not None]
        assert len(values) == len(set(values))


@pytest.mark.parametrize("options", [{"ops_per_key": 0}, {"cas_recent": 0},
                                     {"final_keys_max": 0}])
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RegisterWorkload(**options)


def test_old_fixed_key_options_are_refused_by_name() -> None:
    with pytest.raises(HarnessError, match="keys"):
        get_workload("register", keys=("k0",))


# ---------------------------------------------------------------- executing the plan


class FinalCtx:
    """The runner's final-phase view, in memory: nodes, pinned clients, a recorder."""

    nodes: Sequence[str]
    stuck_after_ms: float | None = None

    def __init__(self, recorder: Recorder, pinned: Callable[[str], Client],
                 nodes: Sequence[str] = NODES, deadline_after_calls: int | None = None
                 ) -> None:
        self.recorder = recorder
        self.nodes = tuple(nodes)
        self._pinned = pinned
        self.process = 1_000_000
        self.calls = 0
        self.deadline_after_calls = deadline_after_calls

    def pinned_client(self, node: str) -> Client:
        return self._pinned(node)

    def call(self, client: Client, f: str, value: Any) -> tuple[Op, Outcome]:
        self.calls += 1
        inv = self.recorder.invoke(self.process, f, value)
        out = client.invoke(f, value)
        self.recorder.complete(inv, out)
        return inv, out

    def history_so_far(self) -> Sequence[Op]:
        return list(self.recorder.ops)

    def note(self, f: str, value: Any) -> None:
        self.recorder.nemesis(f, value)

    def deadline_passed(self) -> bool:
        return self.deadline_after_calls is not None and self.calls >= self.deadline_after_calls


class StaleOnce(InMemoryRegisterClient):
    """A register that, once, answers a read with the value its key held before."""

    def __init__(self, store: dict[str, Any], lock: threading.Lock) -> None:
        super().__init__(store, lock)
        self.previous: dict[str, Any] = {}
        self.served_stale: list[Any] = []

    def invoke(self, f: str, value: Any) -> Outcome:
        key = value[0]
        with self.lock:
            before = self.store.get(key)
        out = super().invoke(f, value)
        with self.lock:
            after = self.store.get(key)
            if after != before:
                self.previous[key] = before
            if (f == "read" and not self.served_stale
                    and self.previous.get(key) is not None):
                self.served_stale.append([key, self.previous[key]])
                return ok([key, self.previous[key]])
        return out


def sequential(ops: Iterable[ClientOp], client: Client, recorder: Recorder) -> None:
    """Each op completes before the next starts: a stale read is then certainly illegal."""
    for op in ops:
        f, value = client.prepare(op.f, op.value)
        inv = recorder.invoke(op.worker, f, value)
        recorder.complete(inv, client.invoke(f, value))


def check(w: RegisterWorkload, recorder: Recorder) -> Any:
    assert w.model is not None
    return linearizable(History(recorder.ops), model=get_model(w.model), time_limit_s=60)


def test_a_stale_read_is_caught(tmp_path: Path) -> None:
    w = RegisterWorkload(ops_per_key=30)
    client = StaleOnce({}, threading.Lock())
    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        sequential(plan(w, seconds=5), client, rec)
    assert client.served_stale, "the register never had a stale value to serve"
    r = check(w, rec)
    assert r.valid is False
    stale_key = client.served_stale[0][0]
    assert r.details["counterexample"]["key"] == stale_key


def test_a_correct_register_passes_sequentially_and_concurrently(tmp_path: Path) -> None:
    w = RegisterWorkload(ops_per_key=30)
    store: dict[str, Any] = {}
    lock = threading.Lock()
    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        sequential(plan(w, seconds=5), InMemoryRegisterClient(store, lock), rec)
    assert check(w, rec).valid is True
    # reads of keys not yet written answered None, and the strict model accepted them
    assert any(op.type is OpType.OK and op.f == "read" and op.value[1] is None
               for op in rec.ops)
    rec2 = run_concurrently(w, seconds=5, path=tmp_path / "c.jsonl")
    assert check(w, rec2).valid is True


def test_reading_nothing_after_a_write_is_caught(tmp_path: Path) -> None:
    """The model's None is "no value yet", checked: a register that forgets a key fails,
    while reads of a key before its first write (the plan has many) pass."""

    class Forgetful(InMemoryRegisterClient):
        def invoke(self, f: str, value: Any) -> Outcome:
            out = super().invoke(f, value)
            if f == "read" and value[0] == "k1":
                return ok([value[0], None])
            return out

    w = RegisterWorkload(ops_per_key=30)
    ops = plan(w, seconds=5)
    first_writes = {k: next(i for i, op in enumerate(v) if op.f != "read")
                    for k, v in by_key(ops).items()}
    assert any(i > 0 for i in first_writes.values())  # some keys are read before written
    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        sequential(ops, Forgetful({}, threading.Lock()), rec)
    r = check(w, rec)
    assert r.valid is False and r.details["counterexample"]["key"] == "k1"


def run_concurrently(w: RegisterWorkload, *, seconds: float, path: Path,
                     concurrency: int = 5, rate_hz: float = 100.0,
                     store: dict[str, Any] | None = None) -> Recorder:
    """The plan driven by the runner's own worker loop against an in-memory register,
    as fast as it goes (the plan's times are all in the past), then the final phase."""
    store = {} if store is None else store
    lock = threading.Lock()
    per_worker: list[list[ClientOp]] = [[] for _ in range(concurrency)]
    for op in plan(w, seconds=seconds, rate_hz=rate_hz, concurrency=concurrency):
        per_worker[op.worker].append(op)
    writer = HistoryWriter(path)
    with writer:
        rec = Recorder(writer)
        t0 = time.monotonic() - seconds
        stop = threading.Event()
        threads = [threading.Thread(
            target=drive_worker,
            args=(InMemoryRegisterClient(store, lock), rec, per_worker[i]),
            kwargs={"process": i, "concurrency": concurrency, "t0": t0,
                    "end": time.monotonic() + 600, "stop": stop})
            for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx = FinalCtx(rec, lambda node: InMemoryRegisterClient(store, lock))
        w.final(ctx, lambda: InMemoryRegisterClient(store, lock))
    return rec


def test_each_key_partition_stays_bounded_as_runs_grow(tmp_path: Path) -> None:
    """Checking cost grows with run length only through the number of keys: every
    key's partition holds at most ``ops_per_key`` planned ops plus its final reads
    (one through the LB, one per node), whatever the length."""
    w = RegisterWorkload(ops_per_key=50)
    bound = 50 + 1 + len(NODES)
    partitions = []
    for seconds in (5, 10, 20):
        rec = run_concurrently(w, seconds=seconds, path=tmp_path / f"h{seconds}.jsonl")
        r = check(w, rec)
        assert r.valid is True
        planned = len(plan(w, seconds=seconds, rate_hz=100.0))
        assert r.details["partitions"] == math.ceil(planned / 50)
        sizes = [p["ops"] for p in r.details["partition_stats"]]
        assert max(sizes) <= bound
        # every op is accounted for: the final reads and the plan, less failed cas
        searched = sum(sizes) + r.details["dropped"]["failed"]
        assert searched == planned + r.details["partitions"] * (1 + len(NODES))
        partitions.append(r.details["partitions"])
    # twice the run, about twice the partitions (Poisson arrivals: not exactly)
    assert 1.6 < partitions[1] / partitions[0] < 2.4
    assert 1.6 < partitions[2] / partitions[1] < 2.4


# ---------------------------------------------------------------- the final phase


def _history_on_keys(rec: Recorder, keys: Sequence[str]) -> None:
    for i, k in enumerate(keys):
        inv = rec.invoke(i % 3, "write", [k, i])
        rec.complete(inv, ok([k, i]))
    rec.nemesis("heal-all", {})


def test_final_reads_every_key_through_the_lb_and_every_node(tmp_path: Path) -> None:
    store: dict[str, Any] = {}
    lock = threading.Lock()
    opened: list[str] = []

    def pinned(node: str) -> Client:
        opened.append(node)
        return InMemoryRegisterClient(store, lock)

    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        _history_on_keys(rec, ["k0", "k1", "k2"])
        before = len(rec.ops)
        RegisterWorkload().final(FinalCtx(rec, pinned),
                                 lambda: InMemoryRegisterClient(store, lock))
    final = rec.ops[before:]
    reads = [op for op in final if op.type is OpType.INVOKE]
    assert opened == list(NODES)
    assert [op.value for op in reads] == [[k, None] for _ in range(4) for k in ("k0", "k1", "k2")]
    assert all(op.f == "read" for op in reads)
    assert all(op.type is OpType.OK for op in final if op.type is not OpType.INVOKE)


def test_final_keys_are_capped_to_an_even_sample() -> None:
    w = RegisterWorkload(final_keys_max=5)
    ops = [Op(i, i, OpType.INVOKE, 0, "read", [f"k{i}", None]) for i in range(101)]
    ops.append(Op(101, 101, OpType.INFO, "nemesis", "start-kill", {"node": "n1"}))
    assert w.final_keys(ops) == ["k0", "k25", "k50", "k75", "k100"]
    assert RegisterWorkload(final_keys_max=1).final_keys(ops) == ["k100"]
    assert RegisterWorkload().final_keys(ops) == [f"k{i}" for i in range(101)]


class Down:
    """A client of a node that is down: every read fails."""

    def __init__(self) -> None:
        self.calls = 0

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        self.calls += 1
        return fail("no-answer")

    def close(self) -> None:
        pass


def test_final_gives_up_on_a_down_node_and_stops_at_its_deadline(tmp_path: Path) -> None:
    store: dict[str, Any] = {}
    lock = threading.Lock()
    down = Down()

    def pinned(node: str) -> Client:
        return down if node == "n2" else InMemoryRegisterClient(store, lock)

    keys = [f"k{i}" for i in range(10)]
    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        _history_on_keys(rec, keys)
        ctx = FinalCtx(rec, pinned)
        RegisterWorkload().final(ctx, lambda: InMemoryRegisterClient(store, lock))
        assert down.calls == 3 and ctx.calls == 10 + 10 + 3 + 10
        ctx2 = FinalCtx(rec, pinned, deadline_after_calls=15)
        RegisterWorkload().final(ctx2, lambda: InMemoryRegisterClient(store, lock))
        assert ctx2.calls == 15


def test_final_without_pinned_clients_reads_through_the_lb_only(tmp_path: Path) -> None:
    store: dict[str, Any] = {}
    lock = threading.Lock()

    def none(node: str) -> Client:
        raise HarnessError("this run offers no clients pinned to a node")

    with HistoryWriter(tmp_path / "h.jsonl") as writer:
        rec = Recorder(writer)
        _history_on_keys(rec, ["k0", "k1"])
        ctx = FinalCtx(rec, none)
        RegisterWorkload().final(ctx, lambda: InMemoryRegisterClient(store, lock))
    assert ctx.calls == 2


class _Recording:
    """A register client over a dict that keeps its last request id (Retryable)."""

    idempotency = "request-id"

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}
        self.resent: list[Any] = []

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Any:
        from harness.client import fail, ok

        key, v = value
        if f == "read":
            return ok([key, self.store.get(key)])
        if f == "write":
            self.store[key] = v
            return ok(value)
        frm, to = v
        if self.store.get(key) != frm:
            return fail("mismatch")
        self.store[key] = to
        return ok(value)

    def retry(self, f: str, value: Any) -> Any:
        self.resent.append(value)
        return self.invoke(f, value)

    def close(self) -> None:
        pass


def test_a_cas_compares_against_the_value_its_worker_saw() -> None:
    import random as _random

    from harness.client import Retryable, idempotency
    from harness.workloads.register import ObservingClient

    inner = _Recording()
    c = ObservingClient(inner, _random.Random(1), p=1.0)
    assert isinstance(c, Retryable) and idempotency(c) == "request-id"
    # nothing seen on k0: the plan's guess stands
    assert c.prepare("cas", ["k0", [-1, 5]]) == ("cas", ["k0", [-1, 5]])
    c.invoke("write", ["k0", 3])
    assert c.prepare("cas", ["k0", [-1, 5]]) == ("cas", ["k0", [3, 5]])
    inner.store["k0"] = 4  # another worker wrote 4; this one reads it
    c.invoke("read", ["k0", None])
    f, v = c.prepare("cas", ["k0", [3, 6]])
    assert v == ["k0", [4, 6]] and c.invoke(f, v).type.value == "ok"
    assert c.prepare("cas", ["k0", [1, 7]]) == ("cas", ["k0", [6, 7]])
    c.retry("write", ["k0", 9])  # the wrapped client's own resend
    assert inner.resent == [["k0", 9]]
    # a client without resends stays one
    class Plain:
        def prepare(self, f: str, value: Any) -> tuple[str, Any]:
            return f, value

    assert not isinstance(ObservingClient(Plain(), _random.Random(1)),  # type: ignore[arg-type]
                          Retryable)
