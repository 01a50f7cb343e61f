"""Pure generators of client and nemesis operations.

A run's operations are decided here, as data, before anything touches a
cluster: which client does what and when (a mix of operations, a rate, a
concurrency, phases), and which fault starts when, on which nodes, for how
long. Everything comes from one seeded ``random.Random`` and times are
offsets in seconds from the run's start, so a schedule is printable, storable
in results, shrinkable by Hypothesis, and replayable exactly.

The runner owns the clock and the clients; it asks the plan what to do next.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_ELECTION_TIMEOUT_S",
    "FAULT_KINDS",
    "NETWORK_KINDS",
    "NODE_RULES",
    "PARTITION_PLANS",
    "RECIPES",
    "RECIPE_RATE",
    "RECOVERY_WINDOW_S",
    "ClientOp",
    "Fault",
    "FaultSchedule",
    "Mix",
    "Phase",
    "client_ops",
    "election_window_s",
    "random_schedule",
    "recipe",
    "recipes_for",
]

# FAULT_KINDS, NETWORK_KINDS and PARTITION_PLANS are read from the fault kinds'
# registry when first asked for (module ``__getattr__`` below): the kinds import
# modules that import this one, so they cannot be loaded while it loads.
FAULT_KINDS: tuple[str, ...]
"""Every registered fault kind's name (:func:`harness.nemesis.registry.names`)."""
NETWORK_KINDS: tuple[str, ...]
"""Kinds two of whose faults may not overlap (``exclusive``: they would set the same
toxics twice); the name stays from when only network kinds were."""
PARTITION_PLANS: tuple[str, ...]
#: how a fault may name a node without knowing the cluster's state in advance;
#: resolved when the fault starts (see ``harness.runner``) and recorded then
NODE_RULES = ("leader", "follower", "cut-off", "majority", "minority")

#: Window-stretching recipes: short groups of faults that random schedules mix
#: in with plain ones, each needing the fault kinds listed. A plain fault is
#: often over before the others replace the leader, or hits a node nobody is
#: electing; the bugs of Paxos recovery, lease fencing and catch-up show when
#: an old leader lives on while the others elect a new one, or when a fault
#: hits a node while it recovers. Each fault of a recipe carries its name in
#: ``params["recipe"]`` (recorded with the fault when it starts):
#:
#: * ``pause-leader``: the leader is paused past the election window, so it
#:   resumes believing it leads in a term the others have left;
#: * ``isolate-leader``: the leader is cut off past the election window, so the
#:   heal joins it into the new term;
#: * ``kill-new-leader``: the leader is cut off and, once the others have
#:   elected a new one, that new leader (rule ``leader``, resolved then) is
#:   killed, during the cut or as it heals (the two faults overlap);
#: * ``partition-recovering``: a node (or the leader) is killed past the
#:   election window, restarted, and within :data:`RECOVERY_WINDOW_S` of the
#:   restart, while it replays its log and catches up, either cut off from
#:   every other node or made to elect anew (the leader isolated).
RECIPES: Mapping[str, tuple[str, ...]] = {
    "pause-leader": ("pause",),
    "isolate-leader": ("partition",),
    "kill-new-leader": ("partition", "kill"),
    "partition-recovering": ("kill", "partition"),
}
#: the share of a random schedule's draws that are recipes (when one fits)
RECIPE_RATE = 1 / 3
#: the election timeout assumed for a system that states none ("a few seconds":
#: longer than most systems', so a recipe's fault outlasts an unknown system's
#: election, at the price of fewer recipes fitting in a short run)
DEFAULT_ELECTION_TIMEOUT_S = 3.0
#: how soon after a restart a recipe's partition starts: a restarted node is
#: still starting, replaying its log or catching up within about a second
RECOVERY_WINDOW_S = 1.0


@dataclass(frozen=True)
class ClientOp:
    """One planned client operation: at ``at_s`` seconds, worker ``worker`` invokes ``f``."""

    at_s: float
    worker: int
    f: str
    value: Any = None


ValueMaker = Callable[[random.Random, int], Any]


@dataclass(frozen=True)
class Mix:
    """A weighted mix of operations, each with a maker of its invocation value.

    A value maker gets the random source and a per-run counter (for unique
    values: Jepsen's queue and register tests rely on never writing the same
    value twice).
    """

    weights: Mapping[str, float]
    values: Mapping[str, ValueMaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights or any(w < 0 for w in self.weights.values()):
            raise ValueError("a mix needs at least one operation and no negative weight")
        if sum(self.weights.values()) <= 0:
            raise ValueError("a mix needs a positive total weight")

    def pick(self, rng: random.Random, counter: int) -> tuple[str, Any]:
        fs = list(self.weights)
        f = rng.choices(fs, weights=[self.weights[x] for x in fs])[0]
        maker = self.values.get(f)
        return f, (maker(rng, counter) if maker else None)


@dataclass(frozen=True)
class Phase:
    """A stretch of the run with its own mix and rate (e.g. load, then drain)."""

    duration_s: float
    mix: Mix
    rate_hz: float  # total across workers; 0 means as fast as the workers go
    name: str = "main"


def client_ops(
    phases: Sequence[Phase],
    *,
    concurrency: int,
    rng: random.Random,
    stagger: bool = True,
) -> Iterator[ClientOp]:
    """The planned client operations of all phases, in time order.

    With a rate, arrivals are Poisson (``stagger``) or evenly spaced, assigned
    round-robin to workers; the runner starts each when its worker is free and
    the time has come, so a slow system lowers the real rate rather than
    piling up work. Without a rate, one op per worker is planned at each
    phase's start and the runner keeps workers busy with ``pick`` itself.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    t0 = 0.0
    counter = 0
    for phase in phases:
        if phase.duration_s < 0:
            raise ValueError("a phase cannot last a negative time")
        end = t0 + phase.duration_s
        if phase.rate_hz <= 0:
            for w in range(concurrency):
                f, v = phase.mix.pick(rng, counter)
                counter += 1
                yield ClientOp(t0, w, f, v)
        else:
            t = t0
            w = 0
            while True:
                gap = rng.expovariate(phase.rate_hz) if stagger else 1.0 / phase.rate_hz
                t += gap
                if t >= end:
                    break
                f, v = phase.mix.pick(rng, counter)
                counter += 1
                yield ClientOp(round(t, 6), w, f, v)
                w = (w + 1) % concurrency
        t0 = end


@dataclass(frozen=True)
class Fault:
    """One fault: what, when (seconds from the start), for how long, and its parameters.

    ``params`` holds what the kind needs and nothing random is left for later:
    a partition's plan name and seed (plan ``"cut"`` cuts exactly the pairs in
    ``between``, e.g. ``[["leader", "follower"]]``), the node to kill or pause,
    latency in ms and jitter, and the node whose links a latency or stall
    slows (``"all"``), or with ``to`` only its links towards that node. A node
    is a name or a rule from :data:`NODE_RULES`, resolved when the fault
    starts and recorded then: ``"leader"``, ``"follower"`` (a node that talks
    with the leader under the partition in force), ``"cut-off"`` (one that
    does not), ``"majority"`` / ``"minority"`` (an up node on that side of
    the partition in force). ``recipe`` names the recipe (:data:`RECIPES`) a
    fault belongs to; it changes nothing in how the fault is applied.
    """

    kind: str
    start_s: float
    duration_s: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in _kind_names():
            raise ValueError(f"unknown fault kind {self.kind!r}; "
                             f"known: {', '.join(_kind_names())}")
        if self.start_s < 0 or self.duration_s < 0:
            raise ValueError("a fault cannot start or last a negative time")

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"] = dict(self.params)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Fault:
        return Fault(str(d["kind"]), float(d["start_s"]), float(d["duration_s"]),
                     dict(d.get("params") or {}))


@dataclass(frozen=True)
class FaultSchedule:
    """The faults of a run; a heal follows the last.

    Faults may overlap, and some bugs need them to: a forgotten Paxos promise
    shows only when an acceptor restarts *while* a partition keeps a stale
    leader apart, and one fault at a time can never arrange that. The runner
    applies starts and ends in time order and ends each fault alone (a kill's
    end restarts that node; a partition's end removes that partition's cuts,
    not another fault's). Two network faults of one kind may not overlap (they
    would cut or slow the same links twice); overlapping kills and pauses must
    name different nodes, and the runner refuses one that would hold a node
    another fault already holds.
    """

    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        from harness.nemesis import registry

        for kind in sorted({f.kind for f in self.faults}):
            if not registry.get(kind).exclusive:
                continue
            of_kind = sorted((f for f in self.faults if f.kind == kind),
                             key=lambda f: (f.start_s, f.end_s))
            for a, b in itertools.pairwise(of_kind):
                if b.start_s < a.end_s:
                    raise ValueError(f"two {kind} faults overlap ({a.start_s}-{a.end_s} s and "
                                     f"{b.start_s}-{b.end_s} s); faults of one network kind "
                                     "must follow one another")

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": [f.to_dict() for f in self.faults]}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> FaultSchedule:
        return FaultSchedule(tuple(Fault.from_dict(f) for f in d.get("faults", ())),
                             int(d.get("seed", 0)))

    @property
    def end_s(self) -> float:
        return max((f.end_s for f in self.faults), default=0.0)

    def active_at(self, t_s: float) -> list[Fault]:
        return [f for f in self.faults if f.start_s <= t_s < f.end_s]

    @property
    def overlapping(self) -> bool:
        """Whether some fault starts before an earlier one has ended."""
        fs = sorted(self.faults, key=lambda f: f.start_s)
        end = -1.0
        for f in fs:
            if f.start_s < end:
                return True
            end = max(end, f.end_s)
        return False


def __getattr__(name: str) -> Any:
    from harness.nemesis import registry

    if name == "FAULT_KINDS":
        return registry.names()
    if name == "NETWORK_KINDS":
        return tuple(k.name for k in registry.kinds() if k.exclusive)
    if name == "PARTITION_PLANS":
        from harness.nemesis.kinds.partition import PLANS

        return PLANS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kind_names() -> tuple[str, ...]:
    from harness.nemesis import registry

    return registry.names()


def _params(kind: str, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
    """One fault's parameters, drawn by its kind (see :mod:`harness.nemesis.kinds`)."""
    from harness.nemesis import registry

    return registry.get(kind).draw(rng, nodes)


def election_window_s(election_timeout_s: float) -> float:
    """How long after a leader falls silent the others have surely replaced it.

    Raft-like systems (the reference system, etcd) draw each election timeout
    between one and two times the stated one; a second more covers the vote
    itself and the harness asking who leads. A recipe's fault that must
    outlast an election lasts at least this long.
    """
    return 2 * election_timeout_s + 1.0


def recipes_for(kinds: Sequence[str]) -> list[str]:
    """The recipes whose every fault kind is among ``kinds``, in :data:`RECIPES` order."""
    return [name for name, needs in RECIPES.items() if set(needs) <= set(kinds)]


def _up3(x: float) -> float:
    """``x`` rounded *up* to a millisecond: a drawn floor (an election window) stays a floor."""
    return math.ceil(round(x * 1000, 6)) / 1000


def recipe(
    name: str,
    rng: random.Random,
    *,
    start_s: float,
    nodes: Sequence[str],
    election_timeout_s: float = DEFAULT_ELECTION_TIMEOUT_S,
    min_duration_s: float = 2.0,
    max_duration_s: float = 10.0,
) -> tuple[Fault, ...]:
    """The faults of one recipe (:data:`RECIPES`) starting at ``start_s``, drawn from ``rng``.

    A fault that must outlast an election lasts from the election window
    (:func:`election_window_s` of the system's stated timeout, and at least
    ``min_duration_s``) up to ``max_duration_s`` (or the window, if longer);
    the kill of ``kill-new-leader`` starts once the window has passed since the
    cut began and no later than the heal, and lasts as a plain fault does.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    window = election_window_s(election_timeout_s)
    floor = _up3(max(min_duration_s, window))
    ceiling = max(floor, max_duration_s)

    def long() -> float:
        return _up3(rng.uniform(floor, ceiling))

    tag = {"recipe": name}
    s = round(start_s, 3)
    if name == "pause-leader":
        return (Fault("pause", s, long(), {"node": "leader", **tag}),)
    isolate = {"plan": "isolate-leader", **tag}
    if name == "isolate-leader":
        return (Fault("partition", s, long(), isolate),)
    if name == "kill-new-leader":
        cut = long()
        kill_at = round(s + _up3(rng.uniform(_up3(window), cut)), 3)
        kill = _up3(rng.uniform(min_duration_s, max(min_duration_s, max_duration_s)))
        return (Fault("partition", s, cut, isolate),
                Fault("kill", kill_at, kill, {"node": "leader", **tag}))
    # partition-recovering
    victim = rng.choice([*nodes, "leader"])
    down = long()
    after = round(s + down + _up3(rng.uniform(0.0, RECOVERY_WINDOW_S)), 3)
    if victim != "leader" and rng.random() < 0.5:
        # cut the restarted node off from every other node (named: it is known)
        plan: dict[str, Any] = {"plan": "cut", "between": [[victim, o] for o in nodes
                                                            if o != victim], **tag}
    else:
        plan = isolate
    return (Fault("kill", s, down, {"node": victim, **tag}),
            Fault("partition", after, long(), plan))


def random_schedule(
    rng: random.Random,
    *,
    kinds: Sequence[str],
    nodes: Sequence[str],
    time_limit_s: float,
    mean_interval_s: float = 10.0,
    min_duration_s: float = 2.0,
    max_duration_s: float = 10.0,
    election_timeout_s: float = DEFAULT_ELECTION_TIMEOUT_S,
    recipe_rate: float = RECIPE_RATE,
    seed: int = 0,
) -> FaultSchedule:
    """Faults drawn one after another: a quiet gap, a fault, a gap, ... until the limit.

    Each draw is, with probability ``recipe_rate`` when ``kinds`` allow one
    (:func:`recipes_for`), a window-stretching recipe (:data:`RECIPES`) sized
    from the system's ``election_timeout_s``, otherwise one plain fault of a
    kind drawn from ``kinds``; a recipe that would pass the time limit gives
    way to a plain fault. Faults overlap only inside a recipe: between draws
    one fault (or recipe) ends before the next begins, which keeps each
    anomaly attributable to one cause.
    """
    for k in kinds:
        if k not in _kind_names():
            raise ValueError(f"unknown fault kind {k!r}; known: {', '.join(_kind_names())}")
    faults: list[Fault] = []
    if not kinds:
        return FaultSchedule((), seed)
    available = recipes_for(kinds) if recipe_rate > 0 else []
    t = rng.uniform(0.5, min(mean_interval_s, max(0.5, time_limit_s / 4)))
    while True:
        # the coin is tossed only when a recipe is possible, so schedules of
        # kinds without recipes are drawn exactly as before recipes existed
        if available and rng.random() < recipe_rate:
            group = recipe(rng.choice(available), rng, start_s=t, nodes=nodes,
                           election_timeout_s=election_timeout_s,
                           min_duration_s=min_duration_s, max_duration_s=max_duration_s)
            end = max(f.end_s for f in group)
            if end <= time_limit_s:
                faults.extend(group)
                t = end + rng.uniform(1.0, mean_interval_s)
                continue
        dur = rng.uniform(min_duration_s, max_duration_s)
        if t + dur > time_limit_s:
            break
        kind = rng.choice(list(kinds))
        faults.append(Fault(kind, round(t, 3), round(dur, 3), _params(kind, rng, nodes)))
        t += dur + rng.uniform(1.0, mean_interval_s)
    return FaultSchedule(tuple(_cover(faults, kinds, rng, nodes)), seed)


def _cover(faults: list[Fault], kinds: Sequence[str], rng: random.Random,
           nodes: Sequence[str]) -> list[Fault]:
    """Every kind asked for, in a schedule with room for it: a kind the draws missed takes
    the slot of a plain fault whose kind was drawn more than once (its time and length
    kept, its parameters drawn anew), as a combined nemesis cycles through its packages.

    A user who asks for ``clock,lose-unsynced,flaky`` and gets two partitions' worth of
    flaky links has not tested clocks at all. Schedules that already hold every kind
    are left exactly as drawn (so their seeds give what they always gave); recipe
    faults are never replaced (a recipe is one window, not a slot).
    """
    out = list(faults)
    for kind in dict.fromkeys(kinds):
        if any(f.kind == kind for f in out):
            continue
        counts = {k: sum(1 for f in out if f.kind == k) for k in kinds}
        spare = [i for i, f in enumerate(out) if "recipe" not in f.params and counts[f.kind] > 1]
        if not spare:
            break
        i = rng.choice(spare)
        out[i] = Fault(kind, out[i].start_s, out[i].duration_s, _params(kind, rng, nodes))
    return _cover_variants(out, kinds, rng, nodes)


def _cover_variants(faults: list[Fault], kinds: Sequence[str], rng: random.Random,
                    nodes: Sequence[str]) -> list[Fault]:
    """Each kind's decisive variants (``FaultKind.missing_variants``) in a schedule that
    holds the kind: they take the parameters of that kind's plain faults, one each,
    times and lengths kept.

    Half of ``lose-unsynced``'s draws are a power loss, so a 30 s run with one or
    two of them missed it a third of the time, and with it every bug of the kind
    "acknowledged before durable" (one node's crash is healed from its replicas).
    """
    from harness.nemesis import registry

    out = list(faults)
    for kind in dict.fromkeys(kinds):
        slots = [i for i, f in enumerate(out) if f.kind == kind and "recipe" not in f.params]
        if not slots:
            continue
        wanted = registry.get(kind).missing_variants([out[i].params for i in slots], rng, nodes)
        for params in wanted[: len(slots)]:
            i = slots.pop(rng.randrange(len(slots)))
            out[i] = Fault(kind, out[i].start_s, out[i].duration_s, params)
    return out
