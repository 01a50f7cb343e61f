"""One fault campaign run, from cluster setup to verdict.

Phases: set up the cluster and wait until it is ready; run the clients and
the nemesis for the time limit; stop the nemesis and heal everything; wait
for recovery; the workload's final reads or drain; collect logs; tear down;
check the history; write the results. Teardown happens whatever goes wrong
(and on Ctrl-C), and the history is on disk op by op throughout, so even an
interrupted run can be checked afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from harness.analysis import check_history, with_recorded_checks
from harness.checker.availability import PROMISES
from harness.checker.result import UNKNOWN, Result
from harness.client import RETRIED_FS, Client, Outcome, Retryable, idempotency
from harness.cluster.backend import Cluster
from harness.errors import HarnessError
from harness.formats import HistoryWriter
from harness.generator import (
    ClientOp,
    FaultSchedule,
    Phase,
    client_ops,
    random_schedule,
)
from harness.history import NEMESIS, History, Op, OpType
from harness.hostile import DEFAULT_HOSTILE_RATE_HZ, drive_hostile
from harness.interrupts import Interrupted, StopSignals
from harness.leadership import leadership_promise, observe_leadership
from harness.nemesis import registry
from harness.nemesis.driver import FaultDriver
from harness.nemesis.faults import Nemesis
from harness.probes import probe_introspection
from harness.replicas import record_quiet_catch_up, record_replica_states
from harness.resources import cpu_promise, measure_idle_cpu
from harness.store import RunStore, new_run_dir, new_run_id
from harness.system import (
    Address,
    HasLease,
    PromisesStableLeader,
    TakesHostileInput,
    availability_promise,
    election_timeout_s,
)
from harness.workloads import get_workload

__all__ = ["DEFAULT_RATE_HZ", "Recorder", "RunConfig", "RunResult", "run"]

DEFAULT_RATE_HZ = 50.0


@dataclass
class RunConfig:
    """Everything that decides a run; stored in its results so it can be repeated."""

    system: str = "refsys"
    workload: str = "register"
    nemesis: tuple[str, ...] = ("partition",)
    time_limit_s: float = 30.0
    concurrency: int = 5
    #: client operations per second in all (0: as fast as they return); None: the
    #: workload's ``default_rate_hz``, else :data:`DEFAULT_RATE_HZ`
    rate_hz: float | None = None
    backend: str = "local"
    nodes: int = 3
    seed: int | None = None
    bug: str | None = None
    test: str | None = None
    reports_dir: Path = Path("reports")
    schedule: FaultSchedule | None = None
    recovery_timeout_s: float = 30.0
    #: a hard cap on the final phase; within it, a workload waits for the backlog
    #: as long as it keeps shrinking (see :mod:`harness.workloads.settle`)
    final_timeout_s: float = 300.0
    op_timeout_s: float = 5.0
    #: resends of an indeterminate enqueue, write, cas or complete with the same
    #: request id, as a real client would (only through clients that can: see
    #: :class:`harness.client.Retryable`); 0 turns retries off
    retries: int = 2
    #: the fraction of acknowledged enqueues, writes, cas and completes resent at
    #: once with the same request id (systems that promise request-id
    #: idempotency only), as when an answer is lost on its way: the resend must
    #: change nothing and be answered as the first was (the idempotency checker)
    resend_rate: float = 0.05
    #: malformed requests per second, sent alongside the workload to systems that
    #: state :class:`harness.system.TakesHostileInput` (see :mod:`harness.hostile`);
    #: 0 turns them off
    hostile_rate_hz: float = DEFAULT_HOSTILE_RATE_HZ
    #: seconds the check may take before a checker says unknown
    check_time_limit_s: float = 120.0
    through_lb: bool = True
    toxiproxy_url: str | None = None
    system_options: dict[str, Any] = field(default_factory=dict)
    #: keyword options for the workload (e.g. the lease its queue clients are
    #: promised, so the lease checker can judge exclusivity from the history)
    workload_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system, "workload": self.workload, "nemesis": list(self.nemesis),
            "time_limit_s": self.time_limit_s, "concurrency": self.concurrency,
            "rate_hz": self.rate_hz, "backend": self.backend, "nodes": self.nodes,
            "seed": self.seed, "bug": self.bug, "test": self.test,
            "through_lb": self.through_lb, "op_timeout_s": self.op_timeout_s,
            "retries": self.retries, "resend_rate": self.resend_rate,
            "hostile_rate_hz": self.hostile_rate_hz,
            "check_time_limit_s": self.check_time_limit_s,
            "system_options": dict(self.system_options),
            "workload_options": dict(self.workload_options),
        }


@dataclass
class RunResult:
    """The verdict of a run, where its files are, and what decided it."""

    valid: Any
    results: dict[str, Result]
    run_dir: Path
    seed: int
    schedule: FaultSchedule
    op_count: int
    error: str | None = None

    @property
    def verdict(self) -> str:
        return {True: "valid", False: "invalid"}.get(self.valid, "unknown")


class Recorder:
    """Thread-safe history recording: an index, a monotonic clock, a streamed file."""

    def __init__(self, writer: HistoryWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._t0 = time.monotonic_ns()
        self.ops: list[Op] = []
        self.counts = {"ok": 0, "fail": 0, "info": 0}

    def now_s(self) -> float:
        return (time.monotonic_ns() - self._t0) / 1e9

    def _record(self, type_: OpType, process: int | str, f: str, value: Any,
                error: Any = None, node: str | None = None,
                extra: tuple[tuple[str, Any], ...] = ()) -> Op:
        with self._lock:
            op = Op(len(self.ops), time.monotonic_ns() - self._t0, type_, process, f, value,
                    error, node, extra)
            self.ops.append(op)
            self._writer.write(op)
            if type_ is not OpType.INVOKE and isinstance(process, int):
                self.counts[type_.value] += 1
            return op

    def invoke(self, process: int, f: str, value: Any,
               extra: tuple[tuple[str, Any], ...] = ()) -> Op:
        return self._record(OpType.INVOKE, process, f, value, extra=extra)

    def complete(self, inv: Op, out: Outcome) -> Op:
        return self._record(out.type, inv.process, inv.f, out.value if out.type is OpType.OK
                            else inv.value, out.error, out.node)

    def nemesis(self, f: str, value: Any) -> Op:
        return self._record(OpType.INFO, NEMESIS, f, value)


def _call(recorder: Recorder, client: Client, process: int, f: str, value: Any, *,
          retry_of: Op | None = None) -> tuple[Op, Outcome]:
    """Record, invoke (or, with ``retry_of``, resend that operation), record."""
    if retry_of is None:
        inv = recorder.invoke(process, f, value)
    else:
        inv = recorder.invoke(process, f, value, extra=(
            ("idempotency", idempotency(client)), ("retry_of", retry_of.index)))
    try:
        out = client.invoke(f, value) if retry_of is None else \
            cast(Retryable, client).retry(f, value)
    except Exception as e:
        out = Outcome(OpType.INFO, None, f"client raised {type(e).__name__}: {e}")
    recorder.complete(inv, out)
    return inv, out


def unpaced_ops(phases: Sequence[Phase], *, worker: int, concurrency: int,
                rng: random.Random, t0: float) -> Iterator[ClientOp]:
    """A worker's operations with no rate: the next one as soon as the last returns.

    Values stay unique across workers (the counter is ``worker + k*concurrency``).
    """
    start = 0.0
    k = 0
    for phase in phases:
        stop_at = t0 + start + phase.duration_s
        while time.monotonic() < stop_at:
            f, v = phase.mix.pick(rng, worker + k * concurrency)
            k += 1
            yield ClientOp(start, worker, f, v)
        start += phase.duration_s


def drive_worker(client: Client, recorder: Recorder, ops: Iterable[ClientOp], *, process: int,
                 concurrency: int, t0: float, end: float, stop: threading.Event,
                 retries: int = 0, resend_rate: float = 0.0,
                 rng: random.Random | None = None) -> int:
    """One worker's loop: wait for each op's time, prepare, record, invoke, record.

    After an indeterminate outcome the worker continues as a new process
    (Jepsen's rule). An indeterminate mutating operation is resent, up to
    ``retries`` times, when the client can resend it with the same request id
    (:class:`harness.client.Retryable`), as a real client would; each resend is
    recorded as its own call marked as a retry of the first (see
    :mod:`harness.logical`). With ``resend_rate`` (and a client whose system
    promises request-id idempotency), that fraction of the acknowledged ones is
    resent once at once, marked the same way: the system cannot tell it from a
    resend after a lost answer, and must neither apply it again nor answer it
    differently. Returns the number of operations performed.
    """
    n = 0
    can_retry = retries > 0 and isinstance(client, Retryable)
    can_resend = resend_rate > 0 and isinstance(client, Retryable) \
        and idempotency(client) == "request-id"
    pick = rng or random.Random(process)
    for op in ops:
        delay = t0 + op.at_s - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        if stop.is_set() or time.monotonic() >= end:
            break
        f, value = client.prepare(op.f, op.value)
        first, out = _call(recorder, client, process, f, value)
        n += 1
        left = retries if can_retry and f in RETRIED_FS else 0
        if out.type is OpType.OK and can_resend and f in RETRIED_FS \
                and pick.random() < resend_rate and not stop.is_set():
            _, again = _call(recorder, client, process, f, value, retry_of=first)
            n += 1
            if again.type is OpType.INFO:
                process += concurrency
        while out.type is OpType.INFO:
            process += concurrency
            if left <= 0 or stop.is_set():
                break
            left -= 1
            _, out = _call(recorder, client, process, f, value, retry_of=first)
            n += 1
    return n


class _Final:
    """The final phase's view of the run (see :class:`harness.workloads.base.FinalContext`)."""

    def __init__(self, recorder: Recorder, process: int, deadline: float, *,
                 nodes: Sequence[str] = (),
                 pinned: Callable[[str], Client] | None = None,
                 stuck_after_ms: float | None = None) -> None:
        self.recorder = recorder
        self.process = process
        self.deadline = deadline
        self.nodes = tuple(nodes)
        self._pinned = pinned
        self.stuck_after_ms = stuck_after_ms

    def note(self, f: str, value: Any) -> None:
        self.recorder.nemesis(f, value)

    def pinned_client(self, node: str) -> Client:
        if self._pinned is None:
            raise HarnessError("this run offers no clients pinned to a node")
        return self._pinned(node)

    def call(self, client: Client, f: str, value: Any) -> tuple[Op, Outcome]:
        inv, out = _call(self.recorder, client, self.process, f, value)
        if out.type is OpType.INFO:
            self.process += 1_000_000  # Jepsen's rule: a new process after an unknown outcome
        return inv, out

    def history_so_far(self) -> Sequence[Op]:
        return list(self.recorder.ops)

    def deadline_passed(self) -> bool:
        return time.monotonic() > self.deadline


def stuck_after_ms(system: object) -> float | None:
    """How long an item may stay ``processing`` under one token before it is stuck:
    the system's lease plus its takeover grace (None when it states no lease)."""
    if isinstance(system, HasLease):
        return float(system.lease_ms) + float(system.takeover_grace_ms)
    return None


def backend_class(backend: str) -> type:
    """The cluster class of a backend, without starting anything (a fault kind's needs
    are checked against it before the run begins)."""
    if backend == "local":
        from harness.cluster.local import LocalCluster

        return LocalCluster
    if backend == "docker":
        try:
            from harness.cluster.docker import DockerCluster
        except ImportError as e:
            raise HarnessError(f"the docker backend is not available: {e}") from None
        return DockerCluster
    raise HarnessError(f"unknown backend {backend!r}; known: local, docker")


def _kind_cluster_options(cfg: RunConfig) -> dict[str, Any]:
    """What the run's fault kinds need the cluster built with (a kind's
    ``cluster_options``, e.g. lose-unsynced's layer under the data dirs)."""
    used = {*cfg.nemesis, *(f.kind for f in (cfg.schedule.faults if cfg.schedule else ()))}
    options: dict[str, Any] = {}
    for name in sorted(used):
        options.update(getattr(registry.get(name), "cluster_options", None) or {})
    return options


def _make_cluster(cfg: RunConfig, system: Any, run_dir: Path, run_id: str) -> Cluster:
    """The run's cluster, not started. Typed as :class:`Cluster` on purpose: mypy then
    checks each backend's class against the protocol the fault kinds are written to."""
    extra = _kind_cluster_options(cfg)
    if cfg.backend == "local":
        from harness.cluster.local import LocalCluster

        local: Cluster = LocalCluster(system, nodes=cfg.nodes, run_dir=run_dir, run_id=run_id,
                                      toxiproxy_url=cfg.toxiproxy_url, **extra)
        return local
    backend_class(cfg.backend)  # an unknown backend, or Docker's missing, is one line
    if cfg.toxiproxy_url:
        raise HarnessError("--toxiproxy-url works with the local backend; in Docker the "
                           "proxies run in a container on the run's own network")
    from harness.cluster.docker import DockerCluster

    docker: Cluster = DockerCluster(system, nodes=cfg.nodes, run_dir=run_dir, run_id=run_id,
                                    **extra)
    return docker


class _LbObserver:
    """Polls HAProxy's runtime API and records when each server went DOWN or UP.

    The report shows the LB's view beside the faults; the records go to
    ``lb.jsonl`` (one ``{"time", "server", "status", "check"}`` per change, time
    in ns on the history's clock), not into the client history.
    """

    def __init__(self, cluster: Any, recorder: Recorder, path: Path, stop: threading.Event,
                 interval_s: float = 0.2) -> None:
        self.cluster = cluster
        self.recorder = recorder
        self.path = path
        self.stop = stop
        self.interval_s = interval_s
        self.last: dict[str, str] = {}

    def poll(self, fh: Any) -> None:
        from harness.cluster.haproxy import read_server_states

        stats = self.cluster.lb_stats_address()
        if stats is None:
            return
        try:
            states = read_server_states(stats, timeout_s=0.5)
        except OSError:
            return
        t = int(self.recorder.now_s() * 1e9)
        for st in states:
            status = st.status.split(" ")[0]  # "DOWN 1/2" is still DOWN
            if self.last.get(st.name) != status:
                self.last[st.name] = status
                fh.write(json.dumps({"time": t, "server": st.name, "status": status,
                                     "check": st.check_status}) + "\n")
                fh.flush()

    def run(self) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            while True:
                self.poll(fh)
                if self.stop.wait(self.interval_s):
                    self.poll(fh)
                    return


def run(cfg: RunConfig, *, progress: Callable[[dict[str, Any]], None] | None = None
        ) -> RunResult:
    """Run one campaign and return its verdict; files go to a new run folder.

    SIGINT, SIGTERM and SIGHUP stop it cleanly (see :mod:`harness.interrupts`): they
    raise while the cluster is up, and past that are only noted until the results
    are written; either way :class:`Interrupted` ends the call.
    """
    with StopSignals() as signals:
        return _run(cfg, signals, progress)


def _run(cfg: RunConfig, signals: StopSignals,
         progress: Callable[[dict[str, Any]], None] | None) -> RunResult:
    from harness.systems import get_system

    workload = get_workload(cfg.workload, **cfg.workload_options)
    if cfg.rate_hz is None:
        cfg = dataclasses.replace(cfg, rate_hz=float(
            getattr(workload, "default_rate_hz", DEFAULT_RATE_HZ)))
    seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    # what the workload needs of the system (e.g. its own workers), then the user's options
    options = {**getattr(workload, "system_options", {}), **cfg.system_options}
    if cfg.bug:
        options["bug"] = cfg.bug
    system = get_system(cfg.system, **options)
    if cfg.workload not in system.workloads:
        raise HarnessError(f"system {cfg.system!r} does not support workload {cfg.workload!r}; "
                           f"it supports {', '.join(system.workloads)}")
    if getattr(workload, "lease_ms", 0) is None and getattr(system, "states_claim_lease", False):
        # the system promises each claim its lease from the claim's sending: state it in
        # every claim, so the lease checker judges every run, not only tuned campaigns
        stated: Any = workload  # a dataclass with lease_ms (the queue workloads)
        workload = dataclasses.replace(stated, lease_ms=float(system.lease_ms))
    kinds_used = list(dict.fromkeys([*cfg.nemesis, *(f.kind for f in (
        cfg.schedule.faults if cfg.schedule else ()))]))
    registry.require(kinds_used, system, backend_class(cfg.backend),
                     system_name=cfg.system, backend_name=cfg.backend)
    test = cfg.test or f"{cfg.system}-{cfg.workload}-{'+'.join(cfg.nemesis) or 'none'}"
    run_dir = new_run_dir(cfg.reports_dir, test)
    store = RunStore(run_dir)
    run_id = new_run_id(test)
    node_names = [f"n{i}" for i in range(1, cfg.nodes + 1)]
    schedule = cfg.schedule or random_schedule(
        random.Random(rng.randrange(2**31)), kinds=list(cfg.nemesis), nodes=node_names,
        time_limit_s=cfg.time_limit_s, mean_interval_s=max(2.0, cfg.time_limit_s / 6),
        min_duration_s=min(2.0, cfg.time_limit_s / 4),
        max_duration_s=max(2.0, min(10.0, cfg.time_limit_s / 3)), seed=seed,
        election_timeout_s=election_timeout_s(system))
    store.write_json("schedule.json", schedule.to_dict())
    started_at = time.time()
    error: str | None = None
    interrupted: Interrupted | None = None
    cluster: Any = None
    with HistoryWriter(store.history_path) as writer:
        recorder = Recorder(writer)
        try:
            cluster = _make_cluster(cfg, system, run_dir, run_id)
            with cluster:
                lb_stop = threading.Event()
                observer = _LbObserver(cluster, recorder, store.dir / "lb.jsonl", lb_stop)
                lb_thread = threading.Thread(target=observer.run, name="lb-observer",
                                             daemon=True)
                lb_thread.start()
                try:
                    _drive(cfg, cluster, system, workload, recorder, rng, schedule, progress)
                finally:
                    lb_stop.set()
                    lb_thread.join(timeout=5)
                    cluster.collect_logs(store.dir / "logs")
        except KeyboardInterrupt as e:
            interrupted = e if isinstance(e, Interrupted) else Interrupted()
            error = f"interrupted ({interrupted.signal_name})"
        except HarnessError as e:
            error = str(e)
        except Exception as e:
            error = "".join(traceback.format_exception_only(type(e), e)).strip()
        finally:
            signals.defer()
            if cluster is not None:  # finish a teardown that a signal cut short
                with contextlib.suppress(Exception):
                    cluster.teardown()
    history = History(recorder.ops)
    results: dict[str, Result] = {}
    valid: Any = UNKNOWN
    if error is None or interrupted:
        _, composed = check_history(history, model=workload.model,
                                       checkers=with_recorded_checks(workload.checkers,
                                                                 history),
                                       time_limit_s=_check_time_limit(cfg, interrupted),
                                       collect_s=5.0,
                                       required_fs=getattr(workload, "required_fs", None),
                                       checker_options={"queue": {
                                           "stuck_after_ms": stuck_after_ms(system),
                                           **getattr(workload, "queue_options", {})}})
        results = dict(composed.details["results"])
        valid = UNKNOWN if interrupted else composed.valid
    result = RunResult(valid, results, run_dir, seed, schedule, len(history), error)
    store.write_json("results.json", {
        "valid": valid, "verdict": result.verdict, "error": error, "seed": seed,
        "config": cfg.to_dict(), "schedule": schedule.to_dict(), "test": test,
        "started": started_at, "duration_s": round(time.time() - started_at, 3),
        "op_count": len(history), "counts": recorder.counts,
        "results": {k: r.to_dict() for k, r in results.items()},
    })
    _write_reports(run_dir, cfg.reports_dir)
    if interrupted is None and signals.received is not None:
        interrupted = Interrupted(signals.received)  # came during the check: results written
    if interrupted is not None:
        raise Interrupted(interrupted.signum, run_dir)
    return result


def _check_time_limit(cfg: RunConfig, interrupted: Interrupted | None) -> float:
    """The check's budget: the configured one, but at most 10 s after a signal, whose
    sender expects an exit soon (the verdict of an interrupted run is unknown anyway)."""
    return cfg.check_time_limit_s if interrupted is None else min(cfg.check_time_limit_s, 10.0)


def _write_reports(run_dir: Path, reports_dir: Path) -> None:
    """The run's HTML report and the index of runs; a failure here never loses a verdict."""
    try:
        from harness.report import write_index, write_report

        write_report(run_dir)
        write_index(reports_dir)
    except Exception as e:  # the verdict is already on disk in results.json
        (run_dir / "report-error.txt").write_text(
            "".join(traceback.format_exception(type(e), e, e.__traceback__)))


def _drive(cfg: RunConfig, cluster: Any, system: Any, workload: Any, recorder: Recorder,
           rng: random.Random, schedule: FaultSchedule,
           progress: Callable[[dict[str, Any]], None] | None) -> None:
    cluster.wait_ready(timeout_s=cfg.recovery_timeout_s)
    # what the system promises, in the history, so a saved history is judged alike
    promises: dict[str, Any] = {}
    promise = availability_promise(system)
    if promise is not None:
        # the cluster's size decides which faults leave a majority (a failover grace's windows)
        promises["availability"] = {**promise, "nodes": [str(n) for n in cluster.nodes]}
    stable = leadership_promise(system, [str(n) for n in cluster.nodes])
    if stable is not None:
        promises["leadership"] = stable
    cpu = cpu_promise(system, cluster, [str(n) for n in cluster.nodes])
    if cpu is not None:
        promises["cpu"] = cpu
    if getattr(system, "delivery", None) == "at-least-once":
        # a broker that redelivers by design: duplicates are counted, not anomalies
        promises["delivery"] = "at-least-once"
    if promises:
        recorder.nemesis(PROMISES, promises)
    lb = cluster.lb_address() if cfg.through_lb else None
    nodes = {n: {role: cluster.address(n, role) for role in system.ports}
             for n in cluster.nodes}
    # every node's view of who leads, from now until the replicas are read at the end
    watch = threading.Event()
    watcher: threading.Thread | None = None
    if isinstance(system, PromisesStableLeader):
        watcher = threading.Thread(target=observe_leadership, args=(
            system, recorder._record, nodes), kwargs={"stop": watch}, name="leadership",
            daemon=True)
        watcher.start()
    try:
        _drive_phases(cfg, cluster, system, workload, recorder, rng, schedule, progress,
                      lb=lb, nodes=nodes)
    finally:
        watch.set()
        if watcher is not None:
            watcher.join(timeout=5)
    if cpu is not None:
        # the idle cluster's CPU, last: nothing else is asking anything now
        # (harness.resources)
        measure_idle_cpu(cluster, recorder._record, [str(n) for n in cluster.nodes],
                         window_s=cpu["window_s"])


def _drive_phases(cfg: RunConfig, cluster: Any, system: Any, workload: Any, recorder: Recorder,
                  rng: random.Random, schedule: FaultSchedule,
                  progress: Callable[[dict[str, Any]], None] | None, *, lb: Address | None,
                  nodes: Mapping[str, Mapping[str, Address]]) -> None:
    """The run proper: the workload with the faults, the heal, the final phase, and
    the replicas' own states."""

    def address(worker: int) -> Address:
        if lb is not None:
            return lb
        return cluster.client_address(cluster.nodes[worker % len(cluster.nodes)])

    def new_client(worker: int) -> Client:
        client = system.client(cfg.workload, address(worker), worker=f"w{worker}",
                               timeout_s=cfg.op_timeout_s, nodes=nodes)
        # a workload may watch its clients (register: cas against values seen)
        wrap = getattr(workload, "wrap_client", None)
        return wrap(client, worker) if wrap is not None else client

    rate_hz = cfg.rate_hz if cfg.rate_hz is not None else DEFAULT_RATE_HZ
    phases = workload.phases(time_limit_s=cfg.time_limit_s, rate_hz=rate_hz)
    plan_seed = rng.randrange(2**31)
    plan: list[Iterable[ClientOp]] = [[] for _ in range(cfg.concurrency)]
    paced: list[list[ClientOp]] = [[] for _ in range(cfg.concurrency)]
    if rate_hz > 0:
        for op in client_ops(phases, concurrency=cfg.concurrency, rng=random.Random(plan_seed)):
            paced[op.worker].append(op)
        plan = list(paced)
    stop = threading.Event()
    nemesis = Nemesis(cluster)
    driver = FaultDriver(nemesis, cluster, system, recorder, schedule, stop)
    t0 = time.monotonic()
    end = t0 + cfg.time_limit_s
    if rate_hz <= 0:
        plan = [unpaced_ops(phases, worker=w, concurrency=cfg.concurrency,
                            rng=random.Random(plan_seed + w), t0=t0)
                for w in range(cfg.concurrency)]

    def worker(w: int) -> None:
        client = new_client(w)
        try:
            drive_worker(client, recorder, plan[w], process=w, concurrency=cfg.concurrency,
                         retries=cfg.retries, resend_rate=cfg.resend_rate,
                         rng=random.Random(plan_seed + 7919 * (w + 1)),
                         t0=t0, end=end, stop=stop)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(w,), name=f"worker-{w}", daemon=True)
               for w in range(cfg.concurrency)]
    helpers: list[threading.Thread] = []
    if cfg.hostile_rate_hz > 0 and isinstance(system, TakesHostileInput):
        # through the load balancer and to every node in turn; its own random stream,
        # so the schedule and the clients' operations are those of a run without it
        targets = ([("lb", lb)] if lb is not None else []) + \
            [(str(n), cluster.client_address(n)) for n in cluster.nodes]
        hostile_rng = random.Random(plan_seed ^ 0x5EED)
        helpers.append(threading.Thread(
            target=drive_hostile, args=(system, recorder._record, targets), kwargs={
                "rng": hostile_rng, "rate_hz": cfg.hostile_rate_hz,
                "timeout_s": cfg.op_timeout_s, "end": end, "stop": stop},
            name="hostile", daemon=True))
    nem_thread = threading.Thread(target=driver.run, args=(t0,), name="nemesis", daemon=True)
    for t in [*threads, *helpers]:
        t.start()
    nem_thread.start()
    try:
        while time.monotonic() < end and any(t.is_alive() for t in threads):
            if progress:
                progress({"elapsed_s": time.monotonic() - t0, "time_limit_s": cfg.time_limit_s,
                          "counts": dict(recorder.counts), "faults": list(driver.active)})
            time.sleep(0.25)
    finally:
        stop.set()
        for t in [*threads, *helpers]:
            t.join(timeout=cfg.op_timeout_s + 5)
        nem_thread.join(timeout=30)
        try:
            try:
                healed = nemesis.heal_all()
            finally:
                # each kind undoes what only it knows of (a clock, a FUSE layer), even
                # when removing the toxics failed
                kinds_healed = driver.heal_kinds()
        finally:
            nemesis.close()
        if kinds_healed:
            healed["kinds"] = kinds_healed
        recorder.nemesis("heal-all", healed)
    try:
        cluster.wait_ready(timeout_s=cfg.recovery_timeout_s)
        recorder.nemesis("recovered", {})
    except HarnessError as e:
        recorder.nemesis("not-recovered", {"error": str(e)})
    else:
        # the replicas catch up in the quiet cluster, before the final phase's traffic
        # would carry a lagging one along (see harness.replicas)
        record_quiet_catch_up(system, recorder._record, nodes, timeout_s=cfg.op_timeout_s)
        # what the adapter states it can ask (the leader, each replica, each node's view
        # of the leader), asked of the healthy cluster: a broken route makes the verdict
        # unknown, not valid (see harness.probes)
        probe_introspection(system, recorder._record, nodes,
                            {str(n): cluster.client_address(n) for n in cluster.nodes})
    def pinned_client(node: str) -> Client:
        return system.client(cfg.workload, cluster.client_address(node),
                             worker=f"w{cfg.concurrency}-{node}",
                             timeout_s=cfg.op_timeout_s, nodes=nodes)

    final = _Final(recorder, 10 * cfg.concurrency + 1_000_000,
                   time.monotonic() + cfg.final_timeout_s, nodes=list(cluster.nodes),
                   pinned=pinned_client, stuck_after_ms=stuck_after_ms(system))
    workload.final(final, lambda: new_client(cfg.concurrency))
    # every replica's own state, for the convergence checker (systems with HasReplicaState)
    record_replica_states(system, recorder._record, nodes, timeout_s=cfg.op_timeout_s)
    if progress:
        progress({"elapsed_s": time.monotonic() - t0, "time_limit_s": cfg.time_limit_s,
                  "counts": dict(recorder.counts), "faults": [], "phase": "done"})
