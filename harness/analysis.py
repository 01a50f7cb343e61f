"""Choosing and running the checkers that apply to a history.

A history says what it is through its operations: read/write/cas is a
register, enqueue/claim/complete a work queue, and so on. ``plan_checks``
makes that guess explicit (and overridable) so ``harness check`` can be
pointed at any file; an op the chosen model does not know is an error, not a
silent pass.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checker.availability import availability, has_availability_promise
from harness.checker.compose import Checker, compose
from harness.checker.convergence import convergence, has_replica_states
from harness.checker.details import (
    AvailabilityDetails,
    ConvergenceDetails,
    FencingDetails,
    IdempotencyDetails,
    IntrospectionDetails,
    LeadershipDetails,
    LeaseDetails,
    LinearizableDetails,
    QueueDetails,
    ResourcesDetails,
    RobustnessDetails,
    StatsDetails,
)
from harness.checker.fencing import fencing
from harness.checker.idempotency import has_resends, idempotency
from harness.checker.introspection import has_probes, introspection
from harness.checker.leadership import has_leadership_promise, leadership
from harness.checker.queue import queue
from harness.checker.resources import has_cpu_promise, resources
from harness.checker.result import Result, typed
from harness.checker.robustness import has_hostile_requests, robustness
from harness.checker.stats import stats
from harness.errors import HarnessError
from harness.history import History
from harness.logical import logical_history

__all__ = ["CHECKERS", "CheckPlan", "check_history", "plan_checks", "with_recorded_checks"]

CHECKERS = ("linearizable", "queue", "fencing", "lease", "stats", "convergence", "availability",
            "idempotency", "robustness", "leadership", "introspection", "resources")
#: checkers that judge the raw history, resends and all (the rest judge logical
#: operations, see :mod:`harness.logical`)
_RAW = frozenset({"idempotency", "robustness", "leadership", "introspection", "resources"})
_QUEUE_FS = frozenset({"enqueue", "dequeue", "drain", "claim", "complete", "renew", "fail",
                       "read-item"})
_FORMAT_MODELS = {"etcd-log": "etcd", "kv-lines": "kv"}


@dataclass(frozen=True)
class CheckPlan:
    """Which checkers to run, and with which model."""

    checkers: tuple[str, ...]
    model: str | None


def _pairs(history: History) -> bool:
    """True when every client op's value is a ``[key, value]`` pair (Jepsen's independent)."""
    seen = False
    for call in history.calls():
        v = call.invoke.value
        if not (isinstance(v, list) and len(v) == 2):
            return False
        seen = True
    return seen


def plan_checks(
    history: History,
    *,
    fmt: str | None = None,
    model: str | None = None,
    checkers: Sequence[str] | None = None,
) -> CheckPlan:
    """Pick checkers and a model from the history's operations, unless given."""
    for name in checkers or ():
        if name not in CHECKERS:
            raise HarnessError(f"unknown checker {name!r}; known: {', '.join(CHECKERS)}")
    fs = {c.f for c in history.calls()}
    if model is None and (checkers is None or "linearizable" in checkers):
        model = _FORMAT_MODELS.get(fmt or "")
        if model is None and fs:
            if fs <= {"read", "write", "cas"}:
                model = "cas-register-per-key" if _pairs(history) else "cas-register"
            elif fs <= {"txn"}:
                model = "multi-register"
            elif fs <= {"acquire", "release"}:
                model = "mutex"
            elif fs <= {"get", "put", "append"}:
                model = "kv"
    if checkers:
        chosen = tuple(checkers)
    elif not fs:
        chosen = ("stats",)
    elif fs & _QUEUE_FS and model is None:
        chosen = ("queue", "fencing") if fs & {"claim", "complete"} else ("queue",)
    elif model is not None:
        chosen = ("linearizable",)
    else:
        raise HarnessError(
            f"cannot tell which checker applies to operations {sorted(fs)}; "
            "pass --model or --checker"
        )
    if "linearizable" in chosen and model is None:
        raise HarnessError("the linearizable checker needs a model: pass --model")
    if not checkers:
        chosen = with_recorded_checks(chosen, history)
    return CheckPlan(chosen, model)


def with_recorded_checks(checkers: Sequence[str], history: History) -> tuple[str, ...]:
    """``checkers`` plus those the history itself calls for: ``convergence`` when it
    holds replica reads, ``availability`` when it states an availability promise,
    ``idempotency`` when it has resends of acknowledged requests, ``robustness``
    when it holds malformed requests (:mod:`harness.hostile`), ``leadership`` when it
    states a stable-leader promise (:mod:`harness.leadership`), ``introspection`` when
    it holds the runner's introspection probes (:mod:`harness.probes`), ``resources``
    when it states a CPU bound (:mod:`harness.resources`).

    Added by what the history holds, not by workload: both depend on the
    system (an adapter with ``HasReplicaState`` or ``PromisesAvailability``),
    and a run against a system without them must not turn "unknown" for lack
    of them.
    """
    chosen = tuple(checkers)
    if "convergence" not in chosen and has_replica_states(history):
        chosen += ("convergence",)
    if "availability" not in chosen and has_availability_promise(history):
        chosen += ("availability",)
    if "idempotency" not in chosen and has_resends(history):
        chosen += ("idempotency",)
    if "robustness" not in chosen and has_hostile_requests(history):
        chosen += ("robustness",)
    if "leadership" not in chosen and has_leadership_promise(history):
        chosen += ("leadership",)
    if "introspection" not in chosen and has_probes(history):
        chosen += ("introspection",)
    if "resources" not in chosen and has_cpu_promise(history):
        chosen += ("resources",)
    return chosen


def build_checker(plan: CheckPlan, *, time_limit_s: float | None = 60.0,
                  allow_duplicates: bool = False, collect_s: float = 0.0,
                  required_fs: Sequence[str] | None = None,
                  checker_options: Mapping[str, Mapping[str, Any]] | None = None) -> Checker:
    """The composed checker for a plan (``collect_s``: see :func:`linearizable`)."""
    table: dict[str, Checker] = {}
    for name in plan.checkers:
        if name == "linearizable":
            from harness.checker.linearizable import linearizable
            from harness.checker.models import get_model

            m = get_model(plan.model or "")
            table[name] = functools.partial(linearizable, model=m, time_limit_s=time_limit_s,
                                            collect_s=collect_s)
        elif name == "queue":
            opts = dict((checker_options or {}).get("queue", {}))
            opts.setdefault("allow_duplicates", allow_duplicates)
            table[name] = functools.partial(queue, **opts)
        elif name == "fencing":
            table[name] = fencing
        elif name == "lease":
            from harness.checker.lease import lease

            table[name] = lease
        elif name == "stats":
            table[name] = functools.partial(stats, required=required_fs)
        elif name == "convergence":
            table[name] = convergence
        elif name == "availability":
            table[name] = availability
        elif name == "idempotency":
            table[name] = idempotency
        elif name == "robustness":
            table[name] = robustness
        elif name == "leadership":
            table[name] = leadership
        elif name == "introspection":
            table[name] = introspection
        elif name == "resources":
            table[name] = resources

    def check(history: History) -> Result:
        # every checker but those in _RAW judges logical operations: a
        # request-id system's retries are one call (see harness.logical)
        logical = logical_history(history)
        return compose({n: (functools.partial(_raw, c, history) if n in _RAW else c)
                        for n, c in table.items()})(logical)

    return check


def _raw(checker: Checker, raw: History, _logical: History) -> Result:
    """Run ``checker`` on the raw history instead of the logical one it is given."""
    return checker(raw)


def check_history(
    history: History,
    *,
    fmt: str | None = None,
    model: str | None = None,
    checkers: Sequence[str] | None = None,
    time_limit_s: float | None = 60.0,
    allow_duplicates: bool = False,
    collect_s: float = 0.0,
    required_fs: Sequence[str] | None = None,
    checker_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[CheckPlan, Result]:
    """Plan and run the checks for one history."""
    plan = plan_checks(history, fmt=fmt, model=model, checkers=checkers)
    checker = build_checker(plan, time_limit_s=time_limit_s, allow_duplicates=allow_duplicates,
                            collect_s=collect_s, required_fs=required_fs,
                            checker_options=checker_options)
    return plan, checker(history)


def summarize(result: Result) -> str:
    """One line saying why a result is what it is, for tables (reads the typed details)."""
    if result.error:
        return result.error
    d = typed(result).details
    valid = result.valid
    if isinstance(d, QueueDetails):
        parts = [f"{d.acknowledged_count} acked"]
        for k in ("lost", "vanished", "duplicated", "unexpected", "failed_then_seen", "stuck",
                  "dead_lettered", "unfinished", "unresolved", "recovered"):
            n = getattr(d, f"{k}_count")
            if n:
                parts.append(f"{n} {k.replace('_', '-')}")
                if k == "duplicated" and d.get("delivery") == "at-least-once":
                    parts[-1] += " (allowed: the system promises at-least-once delivery)"
        if d.unfinished_count and not d.anomalies:
            parts.append("not lost: the system had not finished (see the settle phase)")
        return ", ".join(parts)
    if isinstance(d, FencingDetails):
        return ", ".join(d.anomalies) if d.anomalies else \
            f"{d.completed_items} items completed once"
    if isinstance(d, LinearizableDetails):
        if valid is False:
            ce = d.counterexample or {}
            key = ce.get("key", ce.get("partition"))
            return f"not linearizable (partition {key!r})" if key is not None else \
                "not linearizable"
        if valid == "unknown":
            return str(d.reason or d.get("cause") or "search incomplete")
        ops = d.op_count if "op_count" in d else d.get("ops", "?")
        return f"{ops} ops, {d.partitions if 'partitions' in d else 1} partition(s)"
    if isinstance(d, StatsDetails):
        return f"{d.count} calls"
    if isinstance(d, ConvergenceDetails):
        if valid is False:
            return "replicas differ: " + ", ".join(f"{n} ({k} differences)"
                                                   for n, k in d.difference_count.items())
        if valid == "unknown":
            return str(d.reason or "not compared")
        return f"{len(d.nodes)} replicas equal at position {d.position!r}"
    if isinstance(d, IdempotencyDetails):
        if valid is False:
            return (f"{d.anomalous_count} of {d.resends} resends judged anew: "
                    + ", ".join(d.anomalies))
        return (f"{d.resends} resends, {d.same_answer} answered as the "
                f"first, {d.no_evidence} unanswered or turned away")
    if isinstance(d, LeadershipDetails):
        if d.get("progress") or valid is not True:
            return str(d.reason or "not judged")
        return (f"{d.tenures} leaders' tenures, none ended by a rejoining node; "
                f"{d.excused} ended by faults, {d.elsewhere} with no fault on the leader")
    if isinstance(d, RobustnessDetails):
        if valid == "unknown":
            return str(d.reason or "not judged")
        a = d.answers
        text = (f"{d.requests} malformed requests: {a.get('refused', 0)} refused, "
                f"{a.get('no-answer', 0)} unanswered")
        if valid is False:
            text += (f", {a.get('accepted', 0)} accepted, {a.get('error', 0)} answered 5xx, "
                     f"{a.get('dropped', 0) - (d.drops_near_faults or 0)} hung up on")
        return text
    if isinstance(d, IntrospectionDetails):
        if valid is True:
            return f"{d.probes} introspection probes answered on the healthy cluster"
        return str(d.reason or "not judged")
    if isinstance(d, ResourcesDetails):
        if valid is True:
            used = [float(n["cores"]) for n in d.nodes.values()
                    if isinstance(n.get("cores"), int | float)] or [0.0]
            return (f"{len(used)} idle nodes under {d.idle_cores:g} core(s) over "
                    f"{d.window_s:.2f} s (the busiest: {max(used):.2f})")
        return str(d.reason or "not judged")
    if isinstance(d, LeaseDetails):
        if valid is False:
            return ", ".join(f"{getattr(d, a.replace('-', '_') + '_count')} {a}"
                             for a in d.anomalies)
        if valid == "unknown":
            return str(d.reason or "not judged")
        return f"{d.claims_with_lease} claims with a stated lease, none cut short"
    if isinstance(d, AvailabilityDetails):
        if d.progress:
            return str(d.reason or "requests not served while no fault was in force")
        if valid == "unknown":
            return str(d.reason or "not judged")
        text = f"{d.judged} requests made while quiet, {d.unserved_count} not served"
        m = d.get("minority")
        if isinstance(m, Mapping) and m.get("judged"):
            text += (f"; {m['judged']} while a minority was faulty, "
                     f"{m.get('unserved_count', 0)} not served")
        return text
    return ""


_CHECKER_FS = {
    "queue": frozenset({"enqueue", "dequeue", "drain", "complete", "read-item"}),
    "fencing": frozenset({"claim", "complete"}),
    "lease": frozenset({"claim"}),
}


def misfit(checker: str, history: History) -> str | None:
    """Why ``checker`` has nothing to judge in ``history``, or None when it fits.

    A checker pointed at operations it does not know passes vacuously (the queue
    checker on a register history finds "0 acked", nothing lost): a verdict of
    "valid" that proves nothing. ``harness check`` asks this for a checker the
    user named and says the history does not fit instead. Checkers without an
    entry here (linearizable, stats, and any added later) are not second-guessed.
    """
    fs = {c.f for c in history.calls()}
    wanted = _CHECKER_FS.get(checker)
    if wanted is None or fs & wanted:
        return None
    return (f"the {checker} checker does not fit this history: it judges "
            f"{', '.join(sorted(wanted))} operations, and the history has "
            f"{', '.join(sorted(fs)) or 'none'}")
