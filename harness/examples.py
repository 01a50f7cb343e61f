"""Example histories the project makes itself, from simulated systems with known bugs.

Each simulated system is deliberately tiny: operations get random invocation
and completion times on one simulated clock, take effect at a random instant
in between (their linearization point), and results are computed by applying
them in that order. A correct system therefore yields a linearizable history
by construction; each bug bends exactly one rule, so the checkers must flag
exactly that anomaly. These feed the demo verdict table and the tests that
prove a checker can fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.history import History, Op, OpType

__all__ = ["EXAMPLES", "Example", "simulate_queue", "simulate_register", "simulate_work_items"]


@dataclass
class _Planned:
    process: int
    f: str
    value: Any
    start: int
    point: int
    end: int
    outcome: OpType = OpType.OK
    result: Any = None
    effect: bool = True


class _Clock:
    """Per-process sequential timing with a stable process id scheme (Jepsen's rule)."""

    def __init__(self, rng: random.Random, processes: int) -> None:
        self.rng = rng
        self.n = processes
        self.free_at = [0] * processes
        self.pid = list(range(processes))

    def next(
        self, mean_gap_ns: int = 2_000, mean_dur_ns: int = 10_000
    ) -> tuple[int, int, int, int]:
        slot = self.rng.randrange(self.n)
        start = self.free_at[slot] + int(self.rng.expovariate(1 / mean_gap_ns))
        dur = 1 + int(self.rng.expovariate(1 / mean_dur_ns))
        end = start + dur
        point = start + self.rng.randrange(dur)
        self.free_at[slot] = end
        return slot, start, point, end

    def crash(self, slot: int) -> None:
        """After an indeterminate op the client continues as a new process."""
        self.pid[slot] += self.n


def _emit(planned: list[_Planned]) -> History:
    events: list[tuple[int, int, int, Op]] = []
    for i, p in enumerate(planned):
        inv = Op(0, p.start, OpType.INVOKE, p.process, p.f, p.value)
        events.append((p.start, 1, i, inv))
        if p.outcome is not OpType.INVOKE:  # INVOKE outcome = never completed
            value = p.result if p.outcome is OpType.OK else p.value
            error = "timeout" if p.outcome is OpType.INFO else None
            if p.outcome is OpType.FAIL:
                error = p.result if isinstance(p.result, str) else "failed"
            # completions sort before invocations at the same instant, so a process
            # that starts its next op the moment its last one ended stays sequential
            events.append((p.end, 0, i, Op(0, p.end, p.outcome, p.process, p.f, value, error)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return History((e[3] for e in events), reindex=True)


def simulate_register(
    seed: int, *, ops: int = 300, processes: int = 5, keys: int = 3, bug: str | None = None
) -> History:
    """Read/write/cas per key (values ``[key, v]``).

    Bug ``stale-read``: reads may see an old value."""
    rng = random.Random(seed)
    clock = _Clock(rng, processes)
    planned: list[_Planned] = []
    for _ in range(ops):
        slot, start, point, end = clock.next()
        key = rng.randrange(keys)
        f = rng.choice(("read", "read", "write", "cas"))
        inner: Any = None if f == "read" else rng.randrange(5)
        if f == "cas":
            inner = [rng.randrange(5), rng.randrange(5)]
        p = _Planned(clock.pid[slot], f, [key, inner], start, point, end)
        if f != "read" and rng.random() < 0.05:
            p.outcome = OpType.INFO
            p.effect = rng.random() < 0.5
            clock.crash(slot)
        planned.append(p)
    state: dict[int, Any] = {}
    history_of: dict[int, list[Any]] = {}
    for p in sorted(planned, key=lambda p: p.point):
        key, inner = p.value
        cur = state.get(key)
        if p.f == "read":
            seen = cur
            if bug == "stale-read" and history_of.get(key) and rng.random() < 0.3:
                seen = rng.choice(history_of[key])
            p.result = [key, seen]
        elif p.f == "write":
            if p.effect:
                history_of.setdefault(key, []).append(cur)
                state[key] = inner
            p.result = p.value
        else:
            if cur == inner[0]:
                if p.effect:
                    history_of.setdefault(key, []).append(cur)
                    state[key] = inner[1]
                p.result = p.value
            elif p.outcome is OpType.OK:
                p.outcome = OpType.FAIL
                p.result = "mismatch"
    return _emit(planned)


def simulate_queue(
    seed: int, *, ops: int = 300, processes: int = 5, bug: str | None = None
) -> History:
    """A FIFO queue, drained at the end. Bugs: ``lost`` drops one acked item, ``duplicate``
    hands one item out twice."""
    rng = random.Random(seed)
    clock = _Clock(rng, processes)
    planned: list[_Planned] = []
    next_id = 0
    for _ in range(ops):
        slot, start, point, end = clock.next()
        if rng.random() < 0.55:
            p = _Planned(clock.pid[slot], "enqueue", {"id": next_id, "payload": f"p{next_id}"},
                         start, point, end)
            next_id += 1
        else:
            p = _Planned(clock.pid[slot], "dequeue", None, start, point, end)
        # Only enqueues time out here: a timed-out dequeue could explain a missing
        # item, which would (rightly) make the queue checker say "unknown".
        if p.f == "enqueue" and rng.random() < 0.03:
            p.outcome = OpType.INFO
            p.effect = rng.random() < 0.5
            clock.crash(slot)
        planned.append(p)
    items: list[dict[str, Any]] = []
    dropped = duplicated = False
    for p in sorted(planned, key=lambda p: p.point):
        if p.f == "enqueue":
            if p.effect:
                if bug == "lost" and not dropped and p.outcome is OpType.OK and rng.random() < 0.2:
                    dropped = True
                else:
                    items.append(p.value)
            p.result = p.value
        else:
            if p.effect and items:
                item = items.pop(0)
                if bug == "duplicate" and not duplicated and rng.random() < 0.2:
                    items.insert(0, item)
                    duplicated = True
                p.result = item
            else:
                p.result = None
    end = max((p.end for p in planned), default=0) + 1000
    drain = _Planned(10_000_000, "drain", None, end, end + 1, end + 2, result=list(items))
    return _emit([*planned, drain])


def simulate_work_items(
    seed: int, *, items: int = 40, processes: int = 4, bug: str | None = None
) -> History:
    """Enqueue, claim (token = a global counter), complete; some workers stall past their
    lease and the item is re-claimed. Bug ``stale-token``: a stalled worker's completion
    with the old token is accepted."""
    rng = random.Random(seed)
    t = 0
    planned: list[_Planned] = []
    token = 0
    pid = 0

    def op(f: str, value: Any, result: Any, outcome: OpType = OpType.OK) -> None:
        nonlocal t, pid
        start = t + rng.randrange(1, 100)
        end = start + rng.randrange(1, 1000)
        t = end
        planned.append(_Planned(pid % processes, f, value, start, start, end, outcome, result))
        pid += 1

    for i in range(items):
        op("enqueue", {"id": i, "payload": i}, {"id": i, "payload": i})
    for i in range(items):
        token += 1
        op("claim", None, {"id": i, "token": token})
        if rng.random() < 0.2:  # the worker stalls; the lease expires; another claims
            old = token
            token += 1
            op("claim", None, {"id": i, "token": token})
            op("complete", {"id": i, "token": token, "result": "done"},
               {"id": i, "token": token, "result": "done"})
            if bug == "stale-token":
                op("complete", {"id": i, "token": old, "result": "late"},
                   {"id": i, "token": old, "result": "late"})
            else:
                op("complete", {"id": i, "token": old, "result": "late"}, "stale-token",
                   OpType.FAIL)
        else:
            op("complete", {"id": i, "token": token, "result": "done"},
               {"id": i, "token": token, "result": "done"})
    op("claim", None, None)
    return _emit(planned)


@dataclass(frozen=True)
class Example:
    """A generated history with the checkers and model that apply, and the verdict it must get."""

    name: str
    make: Callable[[int], History]
    model: str | None
    checkers: tuple[str, ...]
    expected: bool


EXAMPLES: tuple[Example, ...] = (
    Example("register-ok", lambda s: simulate_register(s), "cas-register-per-key",
            ("linearizable",), True),
    Example("register-stale-read", lambda s: simulate_register(s, bug="stale-read"),
            "cas-register-per-key", ("linearizable",), False),
    Example("queue-ok", lambda s: simulate_queue(s), None, ("queue",), True),
    Example("queue-lost", lambda s: simulate_queue(s, bug="lost"), None, ("queue",), False),
    Example("queue-duplicate", lambda s: simulate_queue(s, bug="duplicate"), None, ("queue",),
            False),
    Example("work-items-ok", lambda s: simulate_work_items(s), None, ("queue", "fencing"), True),
    Example("work-items-stale-token", lambda s: simulate_work_items(s, bug="stale-token"), None,
            ("queue", "fencing"), False),
)
