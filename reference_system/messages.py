"""The Multi-Paxos vocabulary: ballots, peer messages, disk records and effects.

Everything here is a frozen value so that the same objects can be passed
between cores in the deterministic simulator, encoded as JSON by the runtime,
and compared in tests ("the replica sent exactly these messages").

A slot's value is a *batch*: a tuple of commands (JSON-able objects). The
empty tuple is the no-op a new leader proposes to fill a gap in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "SLOT_STRIDE",
    "ZERO_BALLOT",
    "Accept",
    "AcceptRecord",
    "Accepted",
    "AppliedSlot",
    "Ballot",
    "CatchupReply",
    "CatchupRequest",
    "Effects",
    "Envelope",
    "Message",
    "Nack",
    "PreVote",
    "PreVoteReply",
    "Prepare",
    "Promise",
    "PromiseRecord",
    "Record",
    "Snapshot",
    "Value",
]

Value = tuple[Any, ...]
"""A slot's value: a batch of commands; ``()`` is a no-op."""

SLOT_STRIDE = 1024
"""Commands per slot are at most this many, so ``slot * SLOT_STRIDE + index``
is a strictly increasing position in the log (used as the fencing token)."""


class Ballot(NamedTuple):
    """A proposal number: ordered by round, ties broken by node id (never equal
    for two different proposers)."""

    round: int
    node: int


ZERO_BALLOT = Ballot(0, -1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine after applying every slot up to and including ``slot``."""

    slot: int
    state: Any


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class PreVote:
    """Would you join an election for ``ballot``? Changes nothing on disk.

    Asked before a real election so that a node coming back from a pause or a
    partition does not raise ballots (and so depose a working leader) while
    the others still hear from that leader (Raft's pre-vote, for Paxos).
    """

    src: int
    ballot: Ballot


@dataclass(frozen=True, slots=True)
class PreVoteReply:
    """``granted``: the sender hears from no live leader."""

    src: int
    ballot: Ballot
    granted: bool


@dataclass(frozen=True, slots=True)
class Prepare:
    """Phase 1a: a candidate asks for promises for every slot from ``from_slot`` on."""

    src: int
    ballot: Ballot
    from_slot: int


@dataclass(frozen=True, slots=True)
class Promise:
    """Phase 1b: the acceptor will not accept below ``ballot``; ``accepted`` lists
    what it accepted at or after the candidate's ``from_slot``.

    ``compacted_through`` is the acceptor's snapshot slot: it no longer holds
    accepted values at or below it, so a candidate that still needs those slots
    must catch up before it may lead.
    """

    src: int
    ballot: Ballot
    accepted: tuple[tuple[int, Ballot, Value], ...]
    compacted_through: int
    applied: int


@dataclass(frozen=True, slots=True)
class Nack:
    """A refusal: ``ballot`` was below the acceptor's ``promised`` ballot."""

    src: int
    ballot: Ballot
    promised: Ballot


@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2a for several slots at once; with no entries it is the heartbeat.

    ``commit`` is the leader's applied index: every slot up to it is chosen.
    """

    src: int
    ballot: Ballot
    entries: tuple[tuple[int, Value], ...]
    commit: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """Phase 2b for the listed slots; with none it acknowledges a heartbeat."""

    src: int
    ballot: Ballot
    slots: tuple[int, ...]
    applied: int


@dataclass(frozen=True, slots=True)
class CatchupRequest:
    """A lagging node asks any peer for chosen slots from ``from_slot`` on."""

    src: int
    from_slot: int


@dataclass(frozen=True, slots=True)
class CatchupReply:
    """Chosen values (and a snapshot when the asker is behind the responder's
    compaction point); ``applied`` tells the asker how far it may go on asking."""

    src: int
    snapshot: Snapshot | None
    entries: tuple[tuple[int, Value], ...]
    applied: int


Message = (
    PreVote
    | PreVoteReply
    | Prepare
    | Promise
    | Nack
    | Accept
    | Accepted
    | CatchupRequest
    | CatchupReply
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message and the node it is for."""

    dst: int
    msg: Message


# ---------------------------------------------------------------- disk records


@dataclass(frozen=True, slots=True)
class PromiseRecord:
    """The acceptor promised ``ballot``: durable before any reply that shows it."""

    ballot: Ballot


@dataclass(frozen=True, slots=True)
class AcceptRecord:
    """The acceptor accepted ``value`` in ``slot`` at ``ballot``."""

    slot: int
    ballot: Ballot
    value: Value


Record = PromiseRecord | AcceptRecord


# ---------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class AppliedSlot:
    """A chosen slot applied to the state machine; ``results[i]`` belongs to
    ``value[i]``."""

    slot: int
    value: Value
    results: tuple[Any, ...]


@dataclass(slots=True)
class Effects:
    """What one input to the core asks of its driver.

    The durability rule: the driver makes ``records`` durable (and writes
    ``snapshot`` atomically) *before* it sends any of ``messages``, and before
    it sends messages of any later step; then it calls
    :meth:`~reference_system.replica.Replica.durable`. ``early`` messages
    depend on nothing unsynced and may be sent at once (the leader's phase 2a).
    ``applied`` may be reported to clients at once: a slot is chosen only when
    a quorum holds it durably. ``dropped`` lists commands the leader had
    queued but never proposed when it lost leadership: they certainly did not
    take effect.
    """

    records: list[Record] = field(default_factory=list)
    messages: list[Envelope] = field(default_factory=list)
    early: list[Envelope] = field(default_factory=list)
    applied: list[AppliedSlot] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)
    snapshot: Snapshot | None = None

    def empty(self) -> bool:
        """True when the driver has nothing to do."""
        return not (
            self.records
            or self.messages
            or self.early
            or self.applied
            or self.dropped
            or self.snapshot
        )
