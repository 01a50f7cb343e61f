"""The campaign battery each mutant faces, how its nodes run the mutant, and what a kill is.

The battery is generic: not one recipe per known bug (``harness.bench.
campaigns`` has those) but short runs that each exercise a broad promise, so
an unforeseen bug has a fair chance (:data:`BATTERY`): the queue with leader
kills and pauses and a lease shorter than the faults (queue, fencing and lease
checkers; restarts replay the write-ahead log and snapshots), registers behind
a partition that isolates the leader with clients pinned to every node
(linearizability: stale reads, split brain), the nodes' own workers taking
over items from a killed leader (every acknowledged item must end completed),
registers through crashes that lose unsynced writes (a torn tail, a dropped
cache, then a power loss of every node that drops what was not fsynced), the
queue with its leader cut off and clients pinned to every node (acknowledged
but uncommitted items), registers on five nodes split two against three
(quorum arithmetic right only for three nodes), five nodes losing two leaders
in turn (a majority must elect and serve: the availability checker's minority
windows), the queue while every disk fails its fsyncs (an I/O error
handled wrongly), and registers while the links between the leader and a
follower close after every 4 KB (messages lost on links that stay up: what
is never resent leaves the follower behind). Every run also resends a few
acknowledged requests (the runner's default resend rate), sends malformed
requests alongside the workload (the runner's default hostile rate: the
robustness checker), judges availability, and ends with the cluster idle for
half a second (the resources checker: a node that spins). The same seeds
every time, so mutants face the same schedules.

Nodes run the mutant: :class:`MutantSystem` is the reference system's adapter
with the nodes' environment set to ``PYTHONPATH=<copy>`` and
``PYTHONSAFEPATH=1``. The local backend starts nodes with the project root as
working directory, and ``python -m`` would put that directory first on
``sys.path`` (ahead of ``PYTHONPATH``), so the working tree's
``reference_system`` would win; ``PYTHONSAFEPATH`` leaves it out, and the copy
comes first (before the editable install too).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.generator import Fault, FaultSchedule
from harness.runner import RunConfig, RunResult
from harness.system import NodeContext, NodeLaunch
from harness.systems.refsys import ReferenceSystem

__all__ = ["BATTERY", "INTROSPECTION_ANOMALIES", "PROGRESS_ANOMALIES", "RESOURCE_ANOMALIES",
           "ROBUSTNESS_ANOMALIES",
           "Kill", "MutantSystem", "Outcome", "Recipe", "kill_of", "run_battery"]

#: how the runner loads the adapter (``module:factory``)
SYSTEM = "harness.bench.mutants.battery:MutantSystem"


@dataclass
class MutantSystem(ReferenceSystem):
    """The reference system whose nodes import ``reference_system`` from ``mutant_path``."""

    mutant_path: str = ""

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        launch = super().launch(ctx)
        if not self.mutant_path:
            return launch
        return NodeLaunch(launch.argv, {**launch.env, "PYTHONPATH": self.mutant_path,
                                        "PYTHONSAFEPATH": "1"})


@dataclass(frozen=True)
class Recipe:
    """One run of the battery: a name and the :class:`RunConfig` keywords."""

    name: str
    build: Callable[[], dict[str, Any]]
    seed: int

    def config(self, mutant_path: Path, reports_dir: Path, test: str) -> RunConfig:
        kw = self.build()
        options = {**kw.pop("system_options", {}), "mutant_path": str(mutant_path)}
        # bounded waits: a mutant that never recovers, never finishes or leaves a
        # history too tangled to search must not eat the battery's budget; the
        # correct system needs a few seconds for each (a check that runs out of
        # time says unknown, which kills nothing)
        kw.setdefault("recovery_timeout_s", 10.0)
        kw.setdefault("final_timeout_s", 15.0)
        kw.setdefault("check_time_limit_s", 20.0)
        return RunConfig(system=SYSTEM, seed=self.seed, reports_dir=reports_dir, test=test,
                         system_options=options, **kw)


def _sched(seed: int, *faults: Fault) -> FaultSchedule:
    return FaultSchedule(tuple(faults), seed=seed)


#: snapshots every 64 slots instead of 2,000, in the runs with kills: a short run
#: then writes snapshots, and a restarted node recovers from one (and a lagging
#: one may need one sent), code a run of a few hundred slots never reaches
_SNAPSHOTS = ("--snapshot-every-slots", "64")

#: clients that claim more than they complete, so items are held, some past
#: their lease (fencing and lease checks need holders that outlive it)
_HOLDING = {"enqueue": 2.0, "claim": 2.5, "complete": 1.5, "renew": 0.3}


def _queue_kill_pause() -> dict[str, Any]:
    return dict(
        workload="queue", nemesis=("kill", "pause"), time_limit_s=6.0, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0,
        schedule=_sched(11, Fault("kill", 1.0, 1.5, {"node": "leader"}),
                        Fault("pause", 3.5, 1.5, {"node": "leader"})),
        system_options={"lease_ms": 1000.0, "extra_args": _SNAPSHOTS},
        workload_options={"lease_ms": 1000.0, "weights": _HOLDING, "drain_quiet_s": 1.5})


def _register_partition() -> dict[str, Any]:
    return dict(
        workload="register", nemesis=("partition",), time_limit_s=6.0, concurrency=6,
        rate_hz=80.0, through_lb=False, op_timeout_s=1.0,
        schedule=_sched(12, Fault("partition", 1.0, 3.0, {"plan": "isolate-leader"})))


def _takeover_kill() -> dict[str, Any]:
    return dict(
        workload="takeover", nemesis=("kill",), time_limit_s=5.0, concurrency=3, rate_hz=30.0,
        op_timeout_s=1.0,
        schedule=_sched(13, Fault("kill", 1.5, 2.0, {"node": "leader"})))


def _queue_partition() -> dict[str, Any]:
    return dict(
        workload="queue", nemesis=("partition",), time_limit_s=5.0, concurrency=6,
        rate_hz=100.0, through_lb=False, op_timeout_s=1.0,
        schedule=_sched(15, Fault("partition", 1.0, 2.5, {"plan": "isolate-leader"})),
        workload_options={"weights": {"enqueue": 4.0, "claim": 1.5, "complete": 1.5},
                          "drain_quiet_s": 1.0})


def _register_crashes() -> dict[str, Any]:
    # crashes that lose what was not fsynced (the lose-unsynced layer under every
    # data dir): a leader's torn tail, a follower's dropped cache, then a power
    # loss of the whole cluster that drops every unsynced write, which only
    # fsynced data survives. The power loss drops rather than tears: a torn tail
    # keeps a random prefix of what was never fsynced, so a node that
    # acknowledges before it syncs (an fsync skipped, of the wrong file, or
    # before the write) would lose only what the draw cut, often nothing
    # acknowledged; the leader's tear already covers torn-tail recovery
    return dict(
        workload="register", nemesis=("lose-unsynced",), time_limit_s=6.0, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0, system_options={"extra_args": _SNAPSHOTS},
        schedule=_sched(14,
                        Fault("lose-unsynced", 1.0, 1.0, {"node": "leader", "mode": "tear",
                                                          "seed": 141}),
                        Fault("lose-unsynced", 2.6, 0.5, {"node": "follower", "mode": "drop",
                                                          "seed": 142}),
                        Fault("lose-unsynced", 3.8, 1.0, {"node": "all", "mode": "drop",
                                                          "seed": 143})))


def _register_partition_five() -> dict[str, Any]:
    return dict(
        workload="register", nemesis=("partition",), time_limit_s=5.0, concurrency=5,
        rate_hz=60.0, through_lb=False, op_timeout_s=1.0, nodes=5,
        schedule=_sched(16, Fault("partition", 1.0, 2.5, {"plan": "random-halves", "seed": 16})))


def _register_leaders_down() -> dict[str, Any]:
    # Five nodes; the leader is killed, and 4 s later the leader the others
    # elected is killed too: three of five are still a majority, and must elect
    # a third leader and serve through the load balancer for seconds past the
    # failover grace (the availability checker's minority windows). An election
    # right after an election is where ballot and timer mistakes show: a ballot
    # that does not exceed those seen, followers whose deadlines the last vote
    # pushed away. Short kills only show that the cluster recovers once the
    # node is back, not that a majority serves.
    return dict(
        workload="register", nemesis=("kill",), time_limit_s=12.0, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0, nodes=5, system_options={"extra_args": _SNAPSHOTS},
        schedule=_sched(17, Fault("kill", 1.0, 11.0, {"node": "leader"}),
                        Fault("kill", 5.0, 7.0, {"node": "leader"})))


def _queue_disk_errors() -> dict[str, Any]:
    # Every node's disk fails its fsyncs at once, then the leader's fails writes too.
    # A fail-stop node exits at its first failed fsync and is started at the repair
    # with a log whose unwritten tail reads as zeros (a torn tail). A node that
    # retries or ignores the error acknowledges what its disk lost and writes past
    # the hole; restarted after the repair it either refuses its damaged log (the
    # cluster never comes back: not-recovered) or has forgotten acknowledged items
    # (lost, divergent replicas).
    return dict(
        workload="queue", nemesis=("disk-error",), time_limit_s=6.0, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0, system_options={"extra_args": _SNAPSHOTS},
        schedule=_sched(18, Fault("disk-error", 1.0, 1.5, {"node": "all", "mode": "fsync"}),
                        Fault("disk-error", 3.8, 1.0, {"node": "leader", "mode": "all"})),
        workload_options={"drain_quiet_s": 1.5})


def _register_flaky_links() -> dict[str, Any]:
    # The links between the leader and a follower close after every 4 KB, both ways,
    # for 3 s of writes: every message in flight when a connection closes is lost,
    # and a catch-up reply bigger than 4 KB never arrives while it lasts. The links
    # stay up (each node reconnects at once), so nothing looks like a partition: a
    # protocol must resend what was lost. After the heal the follower must catch up
    # in the quiet cluster (the quiet wait); one that dropped a request or a reply
    # and never asked again stays behind (lagging-replica).
    return dict(
        workload="register", nemesis=("flaky",), time_limit_s=6.0, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0,
        schedule=_sched(19, Fault("flaky", 1.0, 3.0, {
            "toxic": "limit_data", "toxicity": 1.0, "attributes": {"bytes": 4096},
            "pairs": [["leader", "follower"], ["follower", "leader"]]})))


def _register_leader_churn() -> dict[str, Any]:
    # Three leaders cut off in turn, through the load balancer: each isolation
    # forces an election among the other two, and each heal brings the deposed
    # leader back into a newer term. A cluster must elect again after each, so
    # a ballot or term that does not outgrow every one seen (a node that can
    # lead only once, or only if its id is highest), a timer or a promise left
    # over from the last election, or a leader that keeps its old ballot's view
    # shows by the third. The first two are short (an election, not a judged
    # window); the third outlasts the failover grace by four seconds, so the
    # availability checker judges whether the two left serve.
    return dict(
        workload="register", nemesis=("partition",), time_limit_s=12.5, concurrency=5,
        rate_hz=60.0, op_timeout_s=1.0,
        schedule=_sched(20, Fault("partition", 1.0, 1.5, {"plan": "isolate-leader"}),
                        Fault("partition", 3.5, 1.5, {"plan": "isolate-leader"}),
                        Fault("partition", 6.0, 7.0, {"plan": "isolate-leader"})))


BATTERY: tuple[Recipe, ...] = (
    Recipe("queue-kill-pause", _queue_kill_pause, 11),
    Recipe("register-partition", _register_partition, 12),
    Recipe("takeover-kill", _takeover_kill, 13),
    Recipe("register-crashes", _register_crashes, 14),
    Recipe("queue-partition", _queue_partition, 15),
    Recipe("register-partition-5", _register_partition_five, 16),
    Recipe("register-leaders-down", _register_leaders_down, 17),
    Recipe("queue-disk-errors", _queue_disk_errors, 18),
    Recipe("register-flaky-links", _register_flaky_links, 19),
    Recipe("register-leader-churn", _register_leader_churn, 20),
)

#: anomalies that break a progress promise (the system stopped doing its work);
#: every other anomaly an invalid checker names breaks a safety promise
PROGRESS_ANOMALIES = frozenset({"unfinished", "stuck", "dead-lettered", "required-op-missing",
                                "not-recovered", "never-ready", "unavailable", "lagging-replica",
                                "leader-disrupted"})
#: named anomalies known to break safety (for the record; anything invalid that
#: is not a progress anomaly counts as safety, so a new checker is not missed)
SAFETY_ANOMALIES = frozenset({"lost", "duplicated", "unexpected", "failed-then-seen",
                              "double-completion", "token-reuse", "token-regression",
                              "stale-accepted", "lease-overlap", "lease-cut-short",
                              "nonlinearizable",
                              "divergence", "convergence",
                              "term-regression", "two-leaders-one-term"})


#: anomalies of the system's handling of malformed requests (the robustness checker):
#: input it accepted or failed on, which the workload's clients never send
ROBUSTNESS_ANOMALIES = frozenset({"accepted-bad-input", "error-on-bad-input",
                                  "dropped-bad-input"})


#: a stated introspection route (leader lookup, a node's state, its view of the leader)
#: that never answered on the healthy cluster (the introspection checker): the verdict
#: is unknown because the system broke what its adapter states, not for want of evidence
INTROSPECTION_ANOMALIES = frozenset({"introspection-failed"})


#: a node above its system's promised CPU bound (the resources checker): it spun, and
#: maybe served all the while
RESOURCE_ANOMALIES = frozenset({"cpu-runaway"})

_NOT_SAFETY = PROGRESS_ANOMALIES | ROBUSTNESS_ANOMALIES | INTROSPECTION_ANOMALIES \
    | RESOURCE_ANOMALIES


@dataclass(frozen=True)
class Kill:
    """What caught a mutant in one run: each (checker, anomaly), and its class."""

    findings: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        """``safety`` if any finding broke a safety promise, else ``robustness`` if one
        was a malformed request's answer, else ``progress`` if one was a promise of
        progress, else ``resources`` if a node broke its CPU bound, else
        ``introspection``."""
        anomalies = [a for _, a in self.findings]
        if any(a not in _NOT_SAFETY for a in anomalies):
            return "safety"
        if any(a in ROBUSTNESS_ANOMALIES for a in anomalies):
            return "robustness"
        if any(a in PROGRESS_ANOMALIES for a in anomalies):
            return "progress"
        return "resources" if any(a in RESOURCE_ANOMALIES for a in anomalies) \
            else "introspection"

    def describe(self) -> str:
        return ", ".join(f"{c}:{a}" for c, a in self.findings)


def kill_of(result: RunResult) -> Kill | None:
    """Whether a run caught the mutant, read generically from each checker's result.

    An invalid checker kills with the anomalies it names (``details
    ["anomalies"]``; linearizable's counterexample is ``nonlinearizable``; an
    invalid checker naming none, with the checker's name). A checker that is
    unknown or valid kills only by a progress anomaly it names (``unfinished``
    in the queue checker's ``progress``, a required operation that never
    succeeded in ``stats``); ``unresolved`` items and a search that ran out of
    time do not kill: they say the history proves nothing, not that the
    system broke a promise. The runner's own ``not-recovered`` (after the faults
    were healed the cluster was not healthy again within the recovery timeout:
    a node crashed, or no leader) is a progress kill too: the checkers may see
    only unanswered final reads, which prove nothing. A run that errored kills
    nothing.
    """
    if result.error is not None:
        return None
    found: list[tuple[str, str]] = []
    if _not_recovered(result.run_dir / "history.jsonl"):
        found.append(("runner", "not-recovered"))
    for name, r in sorted(result.results.items()):
        d = r.details
        named = [str(a) for a in (d.get("anomalies") or [])]
        if r.valid is False:
            if name == "linearizable" and not named and d.get("counterexample") is not None:
                named = ["nonlinearizable"]
            found += [(name, a) for a in (named or ["invalid"])]
            continue
        progress = [a for a in [*named, *(str(p) for p in d.get("progress") or [])]
                    if a in PROGRESS_ANOMALIES or a in INTROSPECTION_ANOMALIES]
        if name == "stats" and d.get("never_ok"):
            progress.append("required-op-missing")
        found += [(name, a) for a in dict.fromkeys(progress)]
    return Kill(tuple(found)) if found else None


def _not_recovered(history: Path) -> bool:
    """The run's history has the runner's ``not-recovered`` event."""
    try:
        with history.open(encoding="utf-8") as f:
            for line in f:
                if '"not-recovered"' in line:
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("f") == "not-recovered":
                            return True
    except OSError:
        pass
    return False


@dataclass
class Outcome:
    """How one mutant (or the control) fared: ``killed``, ``survived``, ``broken`` or
    ``error``, by which run, in how many campaign seconds."""

    status: str
    seconds: float = 0.0
    runs: int = 0
    recipe: str | None = None
    kill: Kill | None = None
    error: str | None = None
    #: recipes not run because the budget was spent
    skipped: list[str] = field(default_factory=list)
    #: campaign seconds per recipe run
    per_run_s: dict[str, float] = field(default_factory=dict)


def _not_started(result: RunResult) -> bool:
    """The run failed before a single operation: the cluster never got ready."""
    return result.error is not None and result.op_count == 0


def run_battery(mutant_path: Path, reports_dir: Path, *, label: str, budget_s: float = 200.0,
                nominal_s: dict[str, float] | None = None,
                battery: tuple[Recipe, ...] = BATTERY,
                runner: Callable[[RunConfig], RunResult] | None = None,
                clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Run ``battery`` against the nodes importing from ``mutant_path``; stop at the first kill.

    A run starts only while the campaign time spent plus the run's nominal
    time (``nominal_s``, measured on the control; else its time limit + 8 s)
    stays within ``budget_s``. A cluster that never got ready in the first run
    is ``broken`` (nothing checked it: the mutant does not start); one that got
    ready in an earlier run and not in a later one is killed (progress:
    ``never-ready``, a cluster that sometimes elects no leader). A run that errored after
    starting is noted and the battery goes on; if nothing killed the mutant
    and some run errored, the outcome is ``error``, not ``survived``.
    """
    if runner is None:
        from harness.runner import run

        runner = run
    out = Outcome("survived")
    errors: list[str] = []
    started = False  # a run of this battery got the cluster ready
    for recipe in battery:
        cfg = recipe.config(mutant_path, reports_dir, f"{label}-{recipe.name}")
        nominal = (nominal_s or {}).get(recipe.name, cfg.time_limit_s + 8.0)
        if out.seconds + nominal > budget_s:
            out.skipped.append(recipe.name)
            continue
        t0 = clock()
        result = runner(cfg)
        spent = clock() - t0
        out.seconds += spent
        out.runs += 1
        out.per_run_s[recipe.name] = spent
        if _not_started(result):
            if started:
                # it started in an earlier run and not in this one: not a mutant that
                # cannot start, but a cluster that sometimes elects no leader (the
                # control always gets ready), a progress failure of its own
                out.status, out.recipe = "killed", recipe.name
                out.kill, out.error = Kill((("runner", "never-ready"),)), result.error
                return out
            out.status, out.recipe, out.error = "broken", recipe.name, result.error
            return out
        started = True
        if result.error is not None:
            errors.append(f"{recipe.name}: {result.error}")
            continue
        kill = kill_of(result)
        if kill is not None:
            out.status, out.recipe, out.kill = "killed", recipe.name, kill
            return out
    if errors:
        out.status, out.error = "error", "; ".join(errors)
    return out
