"""A sans-IO Multi-Paxos replica: acceptor, leader and learner in one object.

Inputs are messages, client commands and the current time; outputs are an
:class:`~reference_system.messages.Effects` per input (records to persist,
messages to send once they are durable, applied slots, a snapshot). The same
object runs under the asyncio node and under the deterministic simulator.

The design follows van Renesse & Altinbuken, "Paxos Made Moderately Complex",
with the engineering of "Paxos Made Live":

* A stable leader runs phase 1 once for every open slot (``Prepare`` from its
  applied index on), then phase 2 alone for each new slot. Heartbeats are
  empty ``Accept`` messages; they carry the leader's applied index, so a
  follower learns a slot is chosen when it accepted that slot at the leader's
  ballot (one value per slot per ballot), and asks for the rest (catch-up).
* A window of in-flight slots, each holding a batch of commands: with fsync
  at a few milliseconds this is what gives throughput.
* Snapshots every ``snapshot_every_slots``; an acceptor forgets accepted
  values at or below its snapshot and says so in its promises
  (``compacted_through``) so a candidate that is behind catches up first.
* Pre-vote and stickiness: a node whose election timer runs out first asks
  whether a quorum hears from no live leader (``PreVote``, nothing written),
  and an acceptor ignores a ``Prepare`` while it hears from a live leader, so
  a node back from a pause or a partition does not depose a working leader.
  Ignoring a message is always safe.
* The leader sends phase 2a before its own fsync and counts its own vote
  after it (:meth:`Replica.durable`), so a slot is chosen only when a quorum
  holds it on disk, and the leader's disk is off the critical path.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reference_system.messages import (
    SLOT_STRIDE,
    ZERO_BALLOT,
    Accept,
    Accepted,
    AcceptRecord,
    AppliedSlot,
    Ballot,
    CatchupReply,
    CatchupRequest,
    Effects,
    Envelope,
    Message,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    PromiseRecord,
    Record,
    Snapshot,
    Value,
)

__all__ = ["Config", "NotLeader", "Replica", "Role", "StateMachine"]


class StateMachine(Protocol):
    """What the replica applies chosen commands to. Must be deterministic."""

    def apply(self, command: Any, position: int) -> Any:
        """Apply one command at log ``position``; return the client's result."""
        ...

    def snapshot(self) -> Any:
        """A JSON-able deep copy of the state."""
        ...

    def restore(self, state: Any) -> None:
        """Replace the state by (a copy of) ``state`` from :meth:`snapshot`."""
        ...


class Role(enum.Enum):
    """What a replica currently does besides accepting."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class NotLeader(Exception):
    """Raised by :meth:`Replica.propose` on a non-leader; nothing was proposed."""

    def __init__(self, leader_id: int | None):
        super().__init__(f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


@dataclass(frozen=True, slots=True)
class Config:
    """Timing and size limits. Times are in the driver's milliseconds."""

    heartbeat_ms: float = 50.0
    election_timeout_ms: float = 300.0
    # How long a follower waits for its leader to come back on a new connection after
    # the one carrying the leader's messages closed (see Replica.link_lost).
    link_loss_grace_ms: float = 100.0
    retransmit_ms: float = 100.0
    backoff_max_ms: float = 2000.0
    window_slots: int = 32
    batch_max: int = 512
    snapshot_every_slots: int = 2000
    catchup_max_slots: int = 200


@dataclass(slots=True)
class _Proposal:
    value: Value
    acks: set[int]
    sent_ms: float


@dataclass(slots=True)
class _PreVote:
    ballot: Ballot
    deadline_ms: float
    sent_ms: float
    grants: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Campaign:
    ballot: Ballot
    from_slot: int
    deadline_ms: float
    sent_ms: float
    promises: dict[int, Promise] = field(default_factory=dict)


class Replica:
    """One Multi-Paxos node. Not thread-safe; the driver serialises calls."""

    def __init__(
        self,
        node_id: int,
        nodes: Sequence[int],
        machine: StateMachine,
        *,
        now_ms: float,
        rng: random.Random,
        config: Config | None = None,
        snapshot: Snapshot | None = None,
        records: Iterable[Record] = (),
        bugs: frozenset[str] = frozenset(),
    ):
        if node_id not in nodes:
            raise ValueError(f"node {node_id} is not one of {list(nodes)}")
        self.id = node_id
        self.nodes = tuple(sorted(nodes))
        self.peers = tuple(n for n in self.nodes if n != node_id)
        self.config = config or Config()
        self.machine = machine
        self.rng = rng
        self.bugs = bugs
        # Bug "small_quorum": a quorum one node too small lets two leaders
        # both commit different values for the same slot (split brain).
        self.quorum = len(self.nodes) // 2 + 1
        if "small_quorum" in bugs and self.quorum > 1:
            self.quorum -= 1

        # acceptor
        self.promised = ZERO_BALLOT
        self.accepted: dict[int, tuple[Ballot, Value]] = {}
        # learner
        self.snapshot = snapshot
        self.applied = snapshot.slot if snapshot else 0
        if snapshot is not None:
            machine.restore(snapshot.state)
        self.log: dict[int, Value] = {}  # chosen and applied, above the snapshot
        self.chosen: dict[int, Value] = {}  # chosen, not yet applied (gaps below)
        self.leader_commit = self.applied
        for rec in records:
            if isinstance(rec, PromiseRecord):
                self.promised = max(self.promised, rec.ballot)
            else:
                if "forget_promise" not in bugs:  # the bug: promises come back as zero
                    self.promised = max(self.promised, rec.ballot)
                if rec.slot > self.applied:
                    self.accepted[rec.slot] = (rec.ballot, rec.value)
        self.max_seen = self.promised
        # roles
        self.role = Role.FOLLOWER
        self.ballot = ZERO_BALLOT  # our own ballot while candidate or leader
        self.leader_id: int | None = None
        self.leader_contact_ms = -math.inf
        self.leader_since_ms = math.inf
        self._backoff_attempts = 0
        self._election_deadline_ms = now_ms + self._election_timeout_ms()
        self._campaign: _Campaign | None = None
        self._prevote: _PreVote | None = None
        self._catchup_next_ms = -math.inf
        # leader
        self.next_slot = self.applied + 1
        self.proposals: dict[int, _Proposal] = {}
        self.pending: deque[Any] = deque()
        self._peer_ack_ms: dict[int, float] = {}
        self._last_heartbeat_ms = -math.inf
        self._own_seq = 0
        self._own_unsynced: deque[tuple[int, int, Ballot]] = deque()
        self._fx = Effects()

    # ------------------------------------------------------------ public API

    @property
    def snapshot_slot(self) -> int:
        """Accepted values at or below this slot are forgotten."""
        return self.snapshot.slot if self.snapshot else 0

    def handle(self, msg: Message, now_ms: float) -> Effects:
        """Process one peer message."""
        if isinstance(msg, Accept):
            self._on_accept(msg, now_ms)
        elif isinstance(msg, Accepted):
            self._on_accepted(msg, now_ms)
        elif isinstance(msg, Prepare):
            self._on_prepare(msg, now_ms)
        elif isinstance(msg, Promise):
            self._on_promise(msg, now_ms)
        elif isinstance(msg, Nack):
            self._on_nack(msg, now_ms)
        elif isinstance(msg, PreVote):
            granted = not self._leader_alive(now_ms)
            self._send(msg.src, PreVoteReply(self.id, msg.ballot, granted))
        elif isinstance(msg, PreVoteReply):
            self._on_prevote_reply(msg, now_ms)
        elif isinstance(msg, CatchupRequest):
            self._on_catchup_request(msg)
        elif isinstance(msg, CatchupReply):
            self._on_catchup_reply(msg, now_ms)
        return self._take()

    def tick(self, now_ms: float) -> Effects:
        """Let time pass: heartbeats, retransmissions, elections."""
        if self.role is Role.LEADER:
            self._leader_tick(now_ms)
        elif self.role is Role.CANDIDATE:
            self._candidate_tick(now_ms)
        elif self._prevote is not None:
            self._prevote_tick(now_ms)
        else:
            if now_ms >= self._election_deadline_ms:
                self._start_prevote(now_ms)
            elif self.leader_commit > self.applied and self.leader_id is not None:
                self._request_catchup(self.leader_id, now_ms)
        return self._take()

    def propose(self, commands: Sequence[Any], now_ms: float) -> Effects:
        """Queue client commands for the log; raises :class:`NotLeader` otherwise."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)
        self.pending.extend(commands)
        self._fill_window(now_ms)
        return self._take()

    def link_lost(self, peer: int, now_ms: float) -> Effects:
        """The connection that carried ``peer``'s messages to us closed.

        If ``peer`` is our leader, the likeliest cause is that its process died
        (its kernel closed the socket). A live leader reconnects at once and its
        next heartbeat follows within ``heartbeat_ms``, so waiting the whole
        election timeout for it only lengthens failover: the leader now counts as
        gone after ``link_loss_grace_ms`` unless it is heard from again, and the
        election that follows is jittered as usual so that the two followers, who
        saw the same close, do not both campaign at once. Safety does not depend
        on it: this only moves a timer, and pre-vote and ballots decide as always
        (nothing here serves reads on a lease)."""
        if (
            self.role is Role.FOLLOWER
            and peer == self.leader_id
            and self.leader_known(now_ms)
        ):
            grace = self.config.link_loss_grace_ms
            gone_ms = now_ms + grace - self.config.election_timeout_ms
            self.leader_contact_ms = min(self.leader_contact_ms, gone_ms)
            jitter = self.rng.uniform(0, self.config.election_timeout_ms / 2)
            self._election_deadline_ms = min(self._election_deadline_ms, now_ms + grace + jitter)
        return self._take()

    def leader_known(self, now_ms: float) -> bool:
        """Whether this node believes in a live leader (itself included)."""
        if self.role is Role.LEADER:
            return True
        return (
            self.leader_id is not None
            and now_ms - self.leader_contact_ms < self.config.election_timeout_ms
        )

    def next_deadline_ms(self) -> float:
        """The latest time by which :meth:`tick` must be called again."""
        if self.role is Role.LEADER:
            return self._last_heartbeat_ms + self.config.heartbeat_ms
        if self._prevote is not None:
            return min(self._prevote.deadline_ms, self._prevote.sent_ms + self.config.retransmit_ms)
        if self.role is Role.CANDIDATE and self._campaign is not None:
            return min(
                self._campaign.deadline_ms,
                self._campaign.sent_ms + self.config.retransmit_ms,
            )
        return self._election_deadline_ms

    def sync_marker(self) -> int:
        """Call when the driver takes the records to persist; pass the result
        to :meth:`durable` once they are on disk."""
        return self._own_seq

    def durable(self, marker: int, now_ms: float) -> Effects:
        """The records taken at ``marker`` are durable: the leader's own accepts
        up to there now count as votes (Paxos Made Live: the leader writes
        its log in parallel with sending to followers)."""
        slots = []
        while self._own_unsynced and self._own_unsynced[0][0] <= marker:
            _, slot, ballot = self._own_unsynced.popleft()
            p = self.proposals.get(slot)
            if self.role is Role.LEADER and ballot == self.ballot and p is not None:
                p.acks.add(self.id)
                slots.append(slot)
        if slots:
            self._check_chosen(slots)
            self._fill_window(now_ms)
        return self._take()

    def durable_records(self) -> list[Record]:
        """The acceptor state as records: what a compacted log must hold."""
        out: list[Record] = []
        if "forget_promise" not in self.bugs:
            out.append(PromiseRecord(self.promised))
        out.extend(AcceptRecord(s, b, v) for s, (b, v) in sorted(self.accepted.items()))
        return out

    # ------------------------------------------------------------ helpers

    def _take(self) -> Effects:
        fx, self._fx = self._fx, Effects()
        return fx

    def _send(self, dst: int, msg: Message) -> None:
        self._fx.messages.append(Envelope(dst, msg))

    def _broadcast(self, msg: Message) -> None:
        for p in self.peers:
            self._send(p, msg)

    def _election_timeout_ms(self) -> float:
        t = self.config.election_timeout_ms
        return t + self.rng.uniform(0, t)

    def _backoff_ms(self) -> float:
        self._backoff_attempts += 1
        t = self.config.election_timeout_ms
        span = min(self.config.backoff_max_ms, t * 2**self._backoff_attempts)
        return t + self.rng.uniform(0, span)

    def _set_promised(self, ballot: Ballot) -> None:
        self.promised = ballot
        self.max_seen = max(self.max_seen, ballot)
        # Bug "forget_promise": the promise lives in memory only (and recovery
        # takes the promise from promise records alone), so a restarted acceptor
        # may accept an older leader's value after promising a newer one: two
        # different values chosen for one slot (lost or divergent writes).
        if "forget_promise" not in self.bugs:
            self._fx.records.append(PromiseRecord(ballot))

    def _accept_locally(self, slot: int, ballot: Ballot, value: Value) -> None:
        if slot > self.snapshot_slot:
            self.accepted[slot] = (ballot, value)
            self._fx.records.append(AcceptRecord(slot, ballot, value))

    def _leader_alive(self, now_ms: float) -> bool:
        return self.leader_known(now_ms)

    def _step_down(self, now_ms: float, leader_id: int | None = None) -> None:
        if self.role is Role.LEADER:
            self._fx.dropped.extend(self.pending)
            self.pending.clear()
            self.proposals.clear()
        self.role = Role.FOLLOWER
        self._campaign = None
        self.leader_id = leader_id
        self.leader_since_ms = math.inf
        self._election_deadline_ms = now_ms + self._backoff_ms()

    def _request_catchup(self, target: int, now_ms: float) -> None:
        if target != self.id and now_ms >= self._catchup_next_ms:
            # A reply clears this at once; the wait only spaces out retries, which
            # must not pile snapshot transfers onto a slow link.
            self._catchup_next_ms = now_ms + 4 * self.config.retransmit_ms
            self._send(target, CatchupRequest(self.id, self.applied + 1))

    def _learn(self, slot: int, value: Value) -> None:
        if slot > self.applied and slot not in self.chosen:
            self.chosen[slot] = value

    def _apply_ready(self) -> None:
        while (slot := self.applied + 1) in self.chosen:
            value = self.chosen.pop(slot)
            self.log[slot] = value
            self.applied = slot
            self.proposals.pop(slot, None)
            results = tuple(
                self.machine.apply(cmd, slot * SLOT_STRIDE + i) for i, cmd in enumerate(value)
            )
            self._fx.applied.append(AppliedSlot(slot, value, results))
        self.leader_commit = max(self.leader_commit, self.applied)
        self.next_slot = max(self.next_slot, self.applied + 1)
        if self.applied - self.snapshot_slot >= self.config.snapshot_every_slots:
            self._compact(Snapshot(self.applied, self.machine.snapshot()))

    def _compact(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.log = {s: v for s, v in self.log.items() if s > snap.slot}
        self.accepted = {s: a for s, a in self.accepted.items() if s > snap.slot}
        self.chosen = {s: v for s, v in self.chosen.items() if s > snap.slot}
        self._fx.snapshot = snap

    # ------------------------------------------------------------ elections

    def _start_prevote(self, now_ms: float) -> None:
        if "no_prevote" in self.bugs:  # seeded bug: elect without asking first
            self._start_election(now_ms)
            return
        ballot = Ballot(max(self.max_seen.round, self.promised.round) + 1, self.id)
        pv = _PreVote(ballot, now_ms + self._election_timeout_ms(), now_ms, {self.id})
        self._prevote = pv
        self._broadcast(PreVote(self.id, ballot))
        if len(pv.grants) >= self.quorum:
            self._prevote = None
            self._start_election(now_ms)

    def _prevote_tick(self, now_ms: float) -> None:
        pv = self._prevote
        assert pv is not None
        if now_ms >= pv.deadline_ms:
            self._prevote = None
            self._election_deadline_ms = now_ms + self._backoff_ms()
        elif now_ms - pv.sent_ms >= self.config.retransmit_ms:
            pv.sent_ms = now_ms
            for p in self.peers:
                if p not in pv.grants:
                    self._send(p, PreVote(self.id, pv.ballot))

    def _on_prevote_reply(self, m: PreVoteReply, now_ms: float) -> None:
        pv = self._prevote
        if pv is None or m.ballot != pv.ballot or not m.granted or self.role is not Role.FOLLOWER:
            return
        pv.grants.add(m.src)
        if len(pv.grants) >= self.quorum:
            self._prevote = None
            self._start_election(now_ms)

    def _start_election(self, now_ms: float) -> None:
        ballot = Ballot(max(self.max_seen.round, self.promised.round) + 1, self.id)
        self._set_promised(ballot)
        self.role = Role.CANDIDATE
        self.ballot = ballot
        self.leader_id = None
        from_slot = self.applied + 1
        self._campaign = _Campaign(ballot, from_slot, now_ms + self._election_timeout_ms(), now_ms)
        self._campaign.promises[self.id] = self._make_promise(ballot, from_slot)
        self._broadcast(Prepare(self.id, ballot, from_slot))
        self._check_campaign(now_ms)

    def _make_promise(self, ballot: Ballot, from_slot: int) -> Promise:
        entries = tuple((s, b, v) for s, (b, v) in sorted(self.accepted.items()) if s >= from_slot)
        return Promise(self.id, ballot, entries, self.snapshot_slot, self.applied)

    def _candidate_tick(self, now_ms: float) -> None:
        c = self._campaign
        assert c is not None
        if now_ms >= c.deadline_ms:
            self._step_down(now_ms)
        elif now_ms - c.sent_ms >= self.config.retransmit_ms:
            c.sent_ms = now_ms
            for p in self.peers:
                if p not in c.promises:
                    self._send(p, Prepare(self.id, c.ballot, c.from_slot))

    def _on_prepare(self, m: Prepare, now_ms: float) -> None:
        if m.ballot < self.promised:
            self._send(m.src, Nack(self.id, m.ballot, self.promised))
            return
        if m.ballot > self.promised:
            if self._leader_alive(now_ms) and m.src != self.leader_id:
                return  # stickiness: a live leader is not deposed
            self._set_promised(m.ballot)
            if self.role is not Role.FOLLOWER:
                self._step_down(now_ms)
            else:
                self.leader_id = None
                self._election_deadline_ms = now_ms + self._election_timeout_ms()
        self._send(m.src, self._make_promise(m.ballot, m.from_slot))

    def _on_promise(self, m: Promise, now_ms: float) -> None:
        c = self._campaign
        if self.role is not Role.CANDIDATE or c is None or m.ballot != c.ballot:
            return
        if m.compacted_through >= c.from_slot:
            # The acceptor forgot slots we still need: learn them, then retry.
            self._catchup_next_ms = -math.inf
            self._request_catchup(m.src, now_ms)
            self._step_down(now_ms)
            return
        c.promises[m.src] = m
        self._check_campaign(now_ms)

    def _check_campaign(self, now_ms: float) -> None:
        c = self._campaign
        if c is not None and len(c.promises) >= self.quorum:
            self._become_leader(c, now_ms)

    def _become_leader(self, c: _Campaign, now_ms: float) -> None:
        self.role = Role.LEADER
        self._campaign = None
        self.leader_id = self.id
        self.leader_since_ms = now_ms
        self.leader_contact_ms = now_ms
        self._backoff_attempts = 0
        best: dict[int, tuple[Ballot, Value]] = {}
        for p in c.promises.values():
            for s, b, v in p.accepted:
                if s > self.applied and (s not in best or b > best[s][0]):
                    best[s] = (b, v)
        top = max([self.applied, *best, *self.chosen])
        self.next_slot = top + 1
        self.proposals = {}
        self._peer_ack_ms = {p: now_ms for p in self.peers}
        entries: list[tuple[int, Value]] = []
        for s in range(self.applied + 1, top + 1):
            if s in self.chosen:
                continue
            value = best[s][1] if s in best else ()
            self._propose_slot(s, value, now_ms)
            entries.append((s, value))
        self._broadcast_accept(tuple(entries))
        self._last_heartbeat_ms = now_ms
        self._fill_window(now_ms)

    def _on_nack(self, m: Nack, now_ms: float) -> None:
        self.max_seen = max(self.max_seen, m.promised)
        if self.role is not Role.FOLLOWER and m.ballot == self.ballot and m.promised > m.ballot:
            self._step_down(now_ms)

    # ------------------------------------------------------------ phase 2

    def _fill_window(self, now_ms: float) -> None:
        entries: list[tuple[int, Value]] = []
        cfg = self.config
        while self.pending and len(self.proposals) < cfg.window_slots:
            n = min(cfg.batch_max, len(self.pending))
            batch = tuple(self.pending.popleft() for _ in range(n))
            slot = self.next_slot
            self.next_slot += 1
            self._propose_slot(slot, batch, now_ms)
            entries.append((slot, batch))
        if entries:
            self._broadcast_accept(tuple(entries))
            self._last_heartbeat_ms = now_ms

    def _propose_slot(self, slot: int, value: Value, now_ms: float) -> None:
        """Accept our own proposal; it counts as our vote only once durable."""
        self._accept_locally(slot, self.ballot, value)
        self.proposals[slot] = _Proposal(value, set(), now_ms)
        self._own_seq += 1
        self._own_unsynced.append((self._own_seq, slot, self.ballot))

    def _broadcast_accept(self, entries: tuple[tuple[int, Value], ...]) -> None:
        # Phase 2a does not depend on anything this node has not yet synced (its
        # promise for this ballot was durable before phase 1 went out), so it
        # goes out at once, in parallel with the leader's own fsync.
        msg = Accept(self.id, self.ballot, entries, self.applied)
        self._fx.early.extend(Envelope(p, msg) for p in self.peers)

    def _check_chosen(self, slots: Iterable[int]) -> None:
        for s in slots:
            p = self.proposals.get(s)
            if p is not None and len(p.acks) >= self.quorum:
                del self.proposals[s]
                self._learn(s, p.value)
        self._apply_ready()

    def _leader_tick(self, now_ms: float) -> None:
        cfg = self.config
        if now_ms - self.leader_since_ms >= cfg.election_timeout_ms:
            live = 1 + sum(
                1 for p in self.peers if now_ms - self._peer_ack_ms[p] < cfg.election_timeout_ms
            )
            if live < self.quorum:
                self._step_down(now_ms)  # cut off: let clients learn it now
                return
        due = [
            s for s, p in sorted(self.proposals.items()) if now_ms - p.sent_ms >= cfg.retransmit_ms
        ]
        heartbeat = now_ms - self._last_heartbeat_ms >= cfg.heartbeat_ms
        for peer in self.peers:
            entries = tuple(
                (s, self.proposals[s].value) for s in due if peer not in self.proposals[s].acks
            )
            if entries or heartbeat:
                self._fx.early.append(
                    Envelope(peer, Accept(self.id, self.ballot, entries, self.applied))
                )
        for s in due:
            self.proposals[s].sent_ms = now_ms
        if heartbeat:
            self._last_heartbeat_ms = now_ms

    def _on_accept(self, m: Accept, now_ms: float) -> None:
        if m.ballot < self.promised:
            self._send(m.src, Nack(self.id, m.ballot, self.promised))
            return
        if m.ballot > self.promised:
            self._set_promised(m.ballot)
        if self.role is not Role.FOLLOWER:
            self._step_down(now_ms, m.src)
        self.leader_id = m.src
        self.leader_contact_ms = now_ms
        self._prevote = None
        self._backoff_attempts = 0
        self._election_deadline_ms = now_ms + self._election_timeout_ms()
        for s, v in m.entries:
            self._accept_locally(s, m.ballot, v)
        self.leader_commit = max(self.leader_commit, m.commit)
        for s in range(self.applied + 1, m.commit + 1):
            if s in self.chosen:
                continue
            a = self.accepted.get(s)
            if a is None or a[0] != m.ballot:
                break
            self.chosen[s] = a[1]
        self._apply_ready()
        if self.applied < m.commit:
            self._request_catchup(m.src, now_ms)
        self._send(m.src, Accepted(self.id, m.ballot, tuple(s for s, _ in m.entries), self.applied))

    def _on_accepted(self, m: Accepted, now_ms: float) -> None:
        if self.role is not Role.LEADER or m.ballot != self.ballot:
            return
        self._peer_ack_ms[m.src] = now_ms
        for s in m.slots:
            p = self.proposals.get(s)
            if p is not None:
                p.acks.add(m.src)
        self._check_chosen(m.slots)
        self._fill_window(now_ms)
        if m.applied > self.applied:
            self._request_catchup(m.src, now_ms)

    # ------------------------------------------------------------ catch-up

    def _on_catchup_request(self, m: CatchupRequest) -> None:
        snap: Snapshot | None = None
        start = m.from_slot
        if start <= self.snapshot_slot and self.snapshot is not None:
            snap = self.snapshot
            start = snap.slot + 1
        end = min(self.applied, start + self.config.catchup_max_slots - 1)
        entries = tuple((s, self.log[s]) for s in range(start, end + 1) if s in self.log)
        self._send(m.src, CatchupReply(self.id, snap, entries, self.applied))

    def _on_catchup_reply(self, m: CatchupReply, now_ms: float) -> None:
        if m.snapshot is not None and m.snapshot.slot > self.applied:
            self.machine.restore(m.snapshot.state)
            self.applied = m.snapshot.slot
            self.proposals = {s: p for s, p in self.proposals.items() if s > self.applied}
            self.next_slot = max(self.next_slot, self.applied + 1)
            self._compact(m.snapshot)
        for s, v in m.entries:
            self._learn(s, v)
        self.leader_commit = max(self.leader_commit, m.applied)
        self._apply_ready()
        self._catchup_next_ms = -math.inf
        if self.applied < m.applied:
            self._request_catchup(m.src, now_ms)
