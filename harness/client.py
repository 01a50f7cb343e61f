"""The client protocol: how a workload's operation reaches a system and what came back.

An :class:`Outcome` is the completion a client observed. The rule that keeps
histories honest (Jepsen's, and Maelstrom's "definite" errors): an operation is
``fail`` only when the system said it certainly did not happen; a timeout, a
dropped connection, a proxy's error page, anything else is ``info``. Reads
change nothing, so a read that did not answer may be recorded as ``fail``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from harness.history import OpType

__all__ = ["RETRIED_FS", "Client", "ClientFactory", "Outcome", "Retryable", "fail", "idempotency",
           "info", "ok", "prepare_held"]

#: the operations a driver resends after an indeterminate outcome: the ones
#: that change state (reads are simply not retried; a claim's resend would
#: take a second item under at-least-once and is left to the lease)
RETRIED_FS = frozenset({"enqueue", "write", "cas", "complete"})


@dataclass(frozen=True)
class Outcome:
    """What a client saw: ok with a value, a definite fail, or info (unknown)."""

    type: OpType
    value: Any = None
    error: Any = None
    node: str | None = None


def ok(value: Any = None, *, node: str | None = None) -> Outcome:
    return Outcome(OpType.OK, value, None, node)


def fail(error: Any, value: Any = None, *, node: str | None = None) -> Outcome:
    return Outcome(OpType.FAIL, value, error, node)


def info(error: Any, value: Any = None, *, node: str | None = None) -> Outcome:
    return Outcome(OpType.INFO, value, error, node)


@runtime_checkable
class Client(Protocol):
    """One worker's connection to the system.

    ``prepare`` may rewrite an operation before it is recorded (a queue client
    fills in which held item to complete); ``invoke`` performs it and never
    raises for anything the system does: every failure is an :class:`Outcome`.
    """

    def prepare(self, f: str, value: Any) -> tuple[str, Any]: ...

    def invoke(self, f: str, value: Any) -> Outcome: ...

    def close(self) -> None: ...


@runtime_checkable
class Retryable(Protocol):
    """A client that can resend its last operation with the same request id.

    ``idempotency`` states what the system promises for such a resend (see
    :mod:`harness.logical`): ``"request-id"`` (applied at most once, and
    answered as the first attempt was) or ``"none"`` (an independent attempt:
    a resend of something that already happened may happen again, or be
    refused). It decides how checkers read the retries, so it must be the
    system's real promise, not a hope.
    """

    idempotency: str

    def retry(self, f: str, value: Any) -> Outcome:
        """Resend the last invoked ``f`` with ``value`` under the same request id."""
        ...


def idempotency(client: object) -> str:
    """What a client's system promises for resends (``"none"`` unless it says more)."""
    promise = getattr(client, "idempotency", "none")
    return promise if promise in ("request-id", "none") else "none"


ClientFactory = Callable[[int], Client]


def prepare_held(held: MutableSequence[dict[str, Any]], worker: str, f: str, value: Any
                 ) -> tuple[str, Any]:
    """A queue client's ``prepare``: a ``complete`` or ``renew`` with no value refers to
    the oldest item this worker holds (``held``: ``{"id", "token"}`` per claim, oldest
    first; a completion takes it out), and with nothing held it becomes a ``claim``.

    Filling the item in before the invocation is recorded is what lets the checkers
    see which item and token each completion names.
    """
    if f in ("complete", "renew") and value is None:
        if not held:
            return "claim", None
        item = held[0] if f == "renew" else held.pop(0)
        v: dict[str, Any] = {"id": item["id"], "token": item["token"]}
        if f == "complete":
            v["result"] = f"done-by-{worker}"
        return f, v
    return f, value

