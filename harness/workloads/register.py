"""Registers with independent keys: read, write and compare-and-set, checked per key.

Values are ``[key, v]`` (Jepsen's "independent" convention), so the
linearizability checker splits the history by key and checks each part
alone. The checker's cost grows steeply with the operations in one part, and
a stale read is invisible when it returns a value equal to the current one;
so, as Jepsen's ``independent`` generator does, this workload:

* gives each key at most ``ops_per_key`` operations, then moves every client
  to a fresh key: the key of operation number ``n`` of the plan is
  ``k{n // ops_per_key}``. Operations are numbered across the run and handed
  to the workers round-robin, so several clients share a key while it is live
  (concurrency on one key is what makes linearizability interesting), and a
  run's checking cost grows linearly with its length;
* writes the operation's own number: every value written to a key is unique,
  so a read of any earlier value is visibly stale;
* draws a compare-and-set's ``from`` from the key's recent values, so it often
  succeeds. The plan has no run-time feedback (it is data, fixed by the seed,
  and replayable), so "recent" is what the plan itself wrote: the plan follows
  each live key as if its operations took effect in plan order, and compares
  against the value that would be current (usually) or an older recent one
  (a probe for replicas that lag). Reads return only values the plan wrote, so
  this is also what reads see while clients keep roughly to plan order.

A read of a key that holds nothing returns ``None``, and the model
(``strict-cas-register-per-key``) checks it: a system that loses a key's
writes and then answers "not found" is caught. The final phase reads every
key used (up to ``final_keys_max``) through the load balancer and through
every node, so a replica whose state diverged shows up too.
"""

from __future__ import annotations

import functools
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.client import Client, Outcome
from harness.errors import HarnessError
from harness.generator import Mix, Phase
from harness.history import Op, OpType
from harness.workloads.base import FinalContext, even_sample, read_each

__all__ = ["NO_VALUE", "ObservingClient", "RegisterWorkload"]

#: what a compare-and-set compares against on a key the plan has not written
#: yet: no operation writes it, so such a cas must fail (and the checker says
#: so if it does not). ``None`` would mean "the key is empty", which not every
#: system can compare against (etcd compares a value that must exist).
NO_VALUE = -1

#: how many keys' plan state is kept; keys are used one after another, so only
#: the last few are live (more than one only while a slow unpaced worker lags)
_LIVE_KEYS_MAX = 64

#: the chance that a cas compares against the value the plan expects to be
#: current, rather than an older recent value
_CAS_CURRENT_P = 0.75

#: register operations, the ones whose value is ``[key, v]``
REGISTER_FS = ("read", "write", "cas")

#: the chance that a cas compares against the value its worker last saw on the
#: key (read, written or swapped in) instead of the plan's guess
_CAS_SEEN_P = 0.5


class ObservingClient:
    """A register client that lets a cas compare against what its worker last saw.

    The plan guesses a cas's ``from`` before the run, from the values it wrote;
    once faults delay or drop writes, those guesses miss, and a campaign's cas
    mostly fail on the merits. A real client compares against what it read.
    So ``prepare`` (before the call is recorded) replaces a cas's ``from``,
    half the time, with the last value this worker observed on the key: a read's
    answer, its own acknowledged write or cas. Values are unique per key, so a
    stale observation is still a value the key once held: a cas on it must fail
    unless it is current, which is exactly what a stale read would hide.
    Everything else (``retry``, ``idempotency``) is the wrapped client's.
    """

    def __init__(self, inner: Client, rng: random.Random, p: float = _CAS_SEEN_P) -> None:
        self.inner = inner
        self.rng = rng
        self.p = p
        self.seen: OrderedDict[str, Any] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        f, value = self.inner.prepare(f, value)
        if f == "cas" and isinstance(value, list | tuple) and len(value) == 2 \
                and value[0] in self.seen and self.rng.random() < self.p:
            key, (frm, to) = value
            seen = self.seen[key]
            if seen is not None and seen != frm:
                return f, [key, [seen, to]]
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        out = self.inner.invoke(f, value)
        if out.type is OpType.OK and isinstance(value, list | tuple) and len(value) == 2:
            key = str(value[0])
            if f == "read" and isinstance(out.value, list | tuple) and len(out.value) == 2:
                self._see(key, out.value[1])
            elif f == "write":
                self._see(key, value[1])
            elif f == "cas" and isinstance(value[1], list | tuple) and len(value[1]) == 2:
                self._see(key, value[1][1])
        return out

    def _see(self, key: str, v: Any) -> None:
        self.seen[key] = v
        self.seen.move_to_end(key)
        while len(self.seen) > _LIVE_KEYS_MAX:
            self.seen.popitem(last=False)

    def close(self) -> None:
        self.inner.close()


class _PlanState:
    """The values the plan wrote to each live key, in plan order.

    Thread-safe: without a rate the runner plans in each worker's thread
    (:func:`harness.runner.unpaced_ops`), so value makers run concurrently.
    With a rate the whole plan is made in one thread before the run, so it is
    a pure function of the seed.
    """

    def __init__(self, recent_max: int) -> None:
        self._recent_max = recent_max
        self._lock = threading.Lock()
        #: key -> its recent values, oldest first; the last is the expected current one
        self._recent: OrderedDict[str, list[int]] = OrderedDict()

    def _values(self, key: str) -> list[int]:
        values = self._recent.get(key)
        if values is None:
            values = self._recent[key] = []
            while len(self._recent) > _LIVE_KEYS_MAX:
                self._recent.popitem(last=False)
        return values

    def _push(self, values: list[int], v: int) -> None:
        values.append(v)
        del values[:-self._recent_max]

    def write(self, key: str, v: int) -> None:
        with self._lock:
            self._push(self._values(key), v)

    def cas(self, rng: random.Random, key: str, to: int) -> int:
        """The ``from`` of a cas to ``to``; the plan takes the cas as applied if it matched."""
        with self._lock:
            values = self._values(key)
            if not values:
                return NO_VALUE
            if len(values) == 1 or rng.random() < _CAS_CURRENT_P:
                frm = values[-1]
            else:
                frm = rng.choice(values[:-1])
            if frm == values[-1]:
                self._push(values, to)
            return frm


@dataclass
class RegisterWorkload:
    """Per-key cas registers on fresh keys: see the module docstring.

    ``ops_per_key`` bounds each key's share of the run (and so the checker's
    work per key); ``cas_recent`` is how many of a key's latest values a cas
    may compare against; ``final_keys_max`` bounds the final reads.
    """

    #: planned operations per key. At the default 50 Hz a key is live for about
    #: 2 s with every client on it; a 30 s refsys run under partitions (1,340
    #: ops on 16 keys) checked in 13 ms, and however long a run, no key's part
    #: of the history holds more than this plus its final reads
    ops_per_key: int = 100
    cas_recent: int = 3
    #: keys read at the end, each through the LB and every node. Refsys answers
    #: a final read through its log in about 3 ms, so 500 keys times (1 + 3
    #: nodes) reads take seconds, well inside the final phase's deadline
    #: (``RunConfig.final_timeout_s``); a longer run reads an even sample of
    #: its keys, first and last included (each key's reads are a check of its
    #: own, so a sample still checks every key it reads fully)
    final_keys_max: int = 500
    weights: dict[str, float] = field(default_factory=lambda: {"read": 2, "write": 1, "cas": 1})
    name: str = "register"
    checkers: tuple[str, ...] = ("linearizable", "stats")
    #: operations that must succeed at least once, or the other checks pass vacuously
    required_fs: tuple[str, ...] = ("read", "write")
    #: a read of None is "no value yet" (checked), not Knossos's wildcard: our clients
    #: answer None only for a key that holds nothing
    model: str | None = "strict-cas-register-per-key"

    def __post_init__(self) -> None:
        if self.ops_per_key < 1:
            raise ValueError("ops_per_key must be at least 1")
        if self.cas_recent < 1:
            raise ValueError("cas_recent must be at least 1")
        if self.final_keys_max < 1:
            raise ValueError("final_keys_max must be at least 1")

    def key(self, n: int) -> str:
        """The key of the plan's operation number ``n``."""
        return f"k{n // self.ops_per_key}"

    def mix(self) -> Mix:
        """A fresh mix; its value makers share one plan's state (one mix per run)."""
        state = _PlanState(self.cas_recent)

        def read(rng: random.Random, n: int) -> Any:
            return [self.key(n), None]

        def write(rng: random.Random, n: int) -> Any:
            key = self.key(n)
            state.write(key, n)
            return [key, n]

        def cas(rng: random.Random, n: int) -> Any:
            key = self.key(n)
            return [key, [state.cas(rng, key, n), n]]

        return Mix(self.weights, {"read": read, "write": write, "cas": cas})

    def phases(self, *, time_limit_s: float, rate_hz: float) -> list[Phase]:
        return [Phase(time_limit_s, self.mix(), rate_hz)]

    def wrap_client(self, client: Client, worker: int) -> Client:
        """The worker's client, its cas comparing against what it saw (:class:`ObservingClient`)."""
        return ObservingClient(client, random.Random(7_000_003 * (worker + 1)))

    def final_keys(self, history: Sequence[Op]) -> list[str]:
        """The keys the clients used, in order of first use, at most ``final_keys_max``.

        Taken from the history rather than the plan, so it holds with or
        without a rate. Past the cap, an even sample, first and last included.
        """
        seen: dict[str, None] = {}
        for op in history:
            if (op.type is OpType.INVOKE and isinstance(op.process, int)
                    and op.f in REGISTER_FS and isinstance(op.value, list | tuple)
                    and op.value):
                seen.setdefault(str(op.value[0]), None)
        return even_sample(list(seen), self.final_keys_max)

    def final(self, ctx: FinalContext, new_client: Callable[[], Client]) -> None:
        """After recovery, read every key used through the LB, then through each node.

        A lost write shows up in any of them; a replica whose applied state
        diverged shows up only through that node (the LB sends reads to
        whichever node it likes). Reads through a node are linearizable only if
        the node serves reads linearizably (refsys reads through its log; the
        etcd adapter's reads are linearizable), which a system adapter must
        guarantee for the register workload. A client that fails three reads in
        a row stops (its node is down: every further read would wait out a
        timeout), and the phase stops at its deadline.
        """
        keys = self.final_keys(ctx.history_so_far())
        if not keys:
            return
        makers: list[Callable[[], Client]] = [new_client]
        makers += [functools.partial(ctx.pinned_client, node) for node in ctx.nodes]
        for make in makers:
            try:
                client = make()
            except HarnessError:
                continue  # this run offers no client pinned to a node
            try:
                if not read_each(ctx, client, "read", [[k, None] for k in keys]):
                    return
            finally:
                client.close()
