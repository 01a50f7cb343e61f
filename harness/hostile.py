"""Malformed requests sent alongside a workload, and how their answers are recorded.

A system that states :class:`harness.system.TakesHostileInput` draws requests its
API documents as malformed (too deeply nested values, fields of the wrong type,
bodies that are not JSON, unknown routes: the adapter knows its API). While the
workload runs, one more thread sends one every ``1 / rate`` seconds, in turn
through the load balancer and to each node directly, so a follower's forwarding
path sees them as well as the leader's.

Each is recorded as a pair of ops of the process :data:`HOSTILE` with ``f``
:data:`HOSTILE`: the invocation holds the request and the target, the completion
its answer (``ok`` for ``accepted``, ``fail`` for ``refused``, ``info`` for
``error``, ``dropped`` and ``no-answer``, the answer and the system's detail in
``error``).
They are not client ops: the workload's checkers never see them, and the
schedule and the clients' operations are those of the same run without them (the
thread draws from its own random stream). What they did is judged twice: the
``robustness`` checker (:mod:`harness.checker.robustness`) judges each answer,
and the availability and convergence checkers judge the cluster after them (a
value one node accepted and every replica then failed to apply).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.history import Op, OpType
from harness.system import Address, TakesHostileInput

__all__ = ["ACCEPTED", "ANSWERS", "DEFAULT_HOSTILE_RATE_HZ", "DROPPED", "ERROR", "HOSTILE",
           "NO_ANSWER",
           "REFUSED", "answer_of", "drive_hostile", "hostile_calls"]

HOSTILE = "hostile"
"""The process (and ``f``) of the malformed requests' ops."""

REFUSED = "refused"
ACCEPTED = "accepted"
ERROR = "error"
DROPPED = "dropped"
NO_ANSWER = "no-answer"
ANSWERS = (REFUSED, ACCEPTED, ERROR, DROPPED, NO_ANSWER)
"""What :meth:`TakesHostileInput.send_hostile` may answer (see there)."""

DEFAULT_HOSTILE_RATE_HZ = 2.0
"""Malformed requests per second: enough that a 30 s run sends each kind the
adapter draws several times, few enough to stay out of the workload's way."""

_TYPES = {ACCEPTED: OpType.OK, REFUSED: OpType.FAIL, ERROR: OpType.INFO, DROPPED: OpType.INFO,
          NO_ANSWER: OpType.INFO}

Record = Callable[..., Op]
"""The recorder's ``_record(type, process, f, value, error=..., node=...)``."""


def drive_hostile(system: TakesHostileInput, record: Record, targets: Sequence[tuple[str, Address]],
                  *, rng: random.Random, rate_hz: float, timeout_s: float, end: float,
                  stop: threading.Event) -> int:
    """Send malformed requests to ``targets`` (``(name, address)``, in turn) until
    ``end`` (a ``time.monotonic()``) or ``stop``; return how many were sent."""
    if rate_hz <= 0 or not targets:
        return 0
    interval = 1.0 / rate_hz
    sent = 0
    next_at = time.monotonic() + interval * rng.random()
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        if now < next_at:
            stop.wait(min(next_at, end) - now)
            continue
        next_at += interval
        name, address = targets[sent % len(targets)]
        try:
            request = dict(system.hostile_request(rng))
        except Exception as e:  # an adapter's bug must not end the run
            record(OpType.INFO, HOSTILE, "hostile-skipped",
                   {"error": f"hostile_request raised {type(e).__name__}: {e}"})
            return sent
        record(OpType.INVOKE, HOSTILE, HOSTILE, {**request, "target": name})
        try:
            answer, detail = system.send_hostile(request, address, timeout_s=timeout_s)
        except Exception as e:
            answer, detail = NO_ANSWER, f"send_hostile raised {type(e).__name__}: {e}"
        if answer not in _TYPES:
            answer, detail = NO_ANSWER, f"send_hostile answered {answer!r}: {detail}"
        record(_TYPES[answer], HOSTILE, HOSTILE, {**request, "target": name},
               error={"answer": answer, "detail": str(detail)[:300]},
               node=None if name == "lb" else name)
        sent += 1
    return sent


def hostile_calls(history: Sequence[Op] | Any) -> list[tuple[Op, Op | None]]:
    """The malformed requests in ``history``: ``(invocation, completion or None)``."""
    out: list[tuple[Op, Op | None]] = []
    pending: Op | None = None
    for op in history:
        if op.process != HOSTILE or op.f != HOSTILE:
            continue
        if op.type is OpType.INVOKE:
            if pending is not None:
                out.append((pending, None))
            pending = op
        elif pending is not None:
            out.append((pending, op))
            pending = None
    if pending is not None:
        out.append((pending, None))
    return out


def answer_of(completion: Op | None) -> str:
    """The recorded answer of a completion (``no-answer`` when none was recorded)."""
    if completion is None:
        return NO_ANSWER
    err = completion.error
    if isinstance(err, Mapping) and err.get("answer") in _TYPES:
        return str(err["answer"])
    return ACCEPTED if completion.type is OpType.OK else NO_ANSWER
