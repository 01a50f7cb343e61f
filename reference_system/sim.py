"""A deterministic simulator for the sans-IO replica.

One seeded :class:`random.Random` decides everything: message loss,
duplication, delay (and so reordering), when each node's disk syncs, and what
a crash keeps of unsynced writes. Faults are planned as data
(:class:`FaultEvent`) so Hypothesis can generate and shrink a schedule.

After every step the simulator checks the safety invariants and raises
:class:`InvariantViolation` at the first breach:

* no slot is ever chosen (a majority voted for it at one ballot) with two
  different values, and no ballot proposes two values for one slot;
* no slot is ever applied with two different values, on any node, ever;
* every node's state after applying slot ``s`` is identical (same prefix);
* no client command is chosen twice.
"""

from __future__ import annotations

import heapq
import json
import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reference_system.messages import (
    Accept,
    Accepted,
    Ballot,
    Effects,
    Envelope,
    Message,
    Record,
    Snapshot,
    Value,
)
from reference_system.replica import Config, NotLeader, Replica, Role

__all__ = [
    "ChainMachine",
    "FaultEvent",
    "InvariantViolation",
    "Network",
    "Simulation",
]


class InvariantViolation(AssertionError):
    """A safety property of the protocol was broken."""


class ChainMachine:
    """A state machine that only remembers a hash chain of what it applied:
    enough to compare replicas, cheap enough for long simulations."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = 0

    def apply(self, command: Any, position: int) -> Any:
        self.count += 1
        self.digest = zlib.crc32(json.dumps([self.digest, command]).encode())
        return position

    def snapshot(self) -> Any:
        return [self.count, self.digest]

    def restore(self, state: Any) -> None:
        self.count, self.digest = state[0], state[1]


@dataclass(frozen=True)
class FaultEvent:
    """One planned fault at simulated time ``at_ms``.

    ``kind`` is ``crash`` (``node``; ``lose_unsynced`` drops a random part of
    what was not yet fsynced), ``restart`` (``node``), ``partition``
    (``group``: the nodes cut off from the others), ``heal``, or ``net``
    (``loss``, ``duplicate``: new link fault rates).
    """

    at_ms: int
    kind: str
    node: int = 0
    lose_unsynced: bool = False
    group: tuple[int, ...] = ()
    loss: float = 0.0
    duplicate: float = 0.0


@dataclass
class Network:
    """Link behaviour: probabilities and a delay range in milliseconds."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (1, 8)
    blocked: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class _Disk:
    records: list[Record] = field(default_factory=list)
    snapshot: Snapshot | None = None


@dataclass
class _Node:
    disk: _Disk
    core: Replica | None = None
    pending: list[Record] = field(default_factory=list)
    pending_snapshot: Snapshot | None = None
    held: list[Envelope] = field(default_factory=list)
    machine: ChainMachine = field(default_factory=ChainMachine)


class Simulation:
    """N replicas on a simulated network and clock."""

    def __init__(
        self,
        *,
        seed: int,
        nodes: int = 3,
        config: Config | None = None,
        network: Network | None = None,
        faults: Sequence[FaultEvent] = (),
        step_ms: int = 5,
        fsync_probability: float = 0.7,
        bugs: frozenset[str] = frozenset(),
    ):
        self.rng = random.Random(seed)
        self.config = config or Config()
        self.net = network or Network()
        self.step_ms = step_ms
        self.fsync_probability = fsync_probability
        self.bugs = bugs
        self.now_ms = 0
        self.ids = list(range(1, nodes + 1))
        self.nodes: dict[int, _Node] = {i: _Node(_Disk()) for i in self.ids}
        self.faults = sorted(faults, key=lambda f: f.at_ms)
        self._fault_index = 0
        self._queue: list[tuple[int, int, int, Message]] = []
        self._seq = 0
        self.chosen: dict[int, Value] = {}
        self.proposed: dict[tuple[int, Ballot], Value] = {}
        self.votes: dict[tuple[int, Ballot], set[int]] = {}
        self.chosen_by_votes: dict[int, Value] = {}
        self.state_at: dict[int, Any] = {}
        self.command_slot: dict[Any, int] = {}
        self.applied_commands: dict[int, set[Any]] = {i: set() for i in self.ids}
        self.submitted = 0
        for i in self.ids:
            self._start(i)

    # ------------------------------------------------------------ nodes

    def _start(self, i: int) -> None:
        n = self.nodes[i]
        n.machine = ChainMachine()
        n.core = Replica(
            i,
            self.ids,
            n.machine,
            now_ms=self.now_ms,
            rng=random.Random(self.rng.random()),
            config=self.config,
            snapshot=n.disk.snapshot,
            records=list(n.disk.records),
            bugs=self.bugs,
        )
        n.pending, n.held, n.pending_snapshot = [], [], None
        self.applied_commands[i] = set()
        if n.disk.snapshot is not None:
            self._check_state(i, n.disk.snapshot.slot)

    def crash(self, i: int, *, lose_unsynced: bool) -> None:
        """Kill node ``i``; its unsent messages die with it."""
        n = self.nodes[i]
        if n.core is None:
            return
        if lose_unsynced:
            keep = self.rng.randint(0, len(n.pending))
            n.disk.records.extend(n.pending[:keep])
        else:
            self._sync(i, release=False)
        n.core = None
        n.pending, n.held, n.pending_snapshot = [], [], None

    def restart(self, i: int) -> None:
        """Start node ``i`` again from what its disk holds."""
        if self.nodes[i].core is None:
            self._start(i)

    def heal(self) -> None:
        """End every fault: restart dead nodes, reconnect, perfect links."""
        for i in self.ids:
            self.restart(i)
        self.net.blocked.clear()
        self.net.loss = 0.0
        self.net.duplicate = 0.0

    def partition(self, group: Iterable[int]) -> None:
        """Cut ``group`` off from every other node (both directions)."""
        g = set(group)
        self.net.blocked = {(a, b) for a in self.ids for b in self.ids if (a in g) != (b in g)}

    # ------------------------------------------------------------ effects

    def _absorb(self, i: int, fx: Effects) -> None:
        n = self.nodes[i]
        n.pending.extend(fx.records)
        n.held.extend(fx.messages)
        if fx.snapshot is not None:
            n.pending_snapshot = fx.snapshot
        for a in fx.applied:
            self._check_apply(i, a.slot, a.value)
        if fx.applied or fx.snapshot is not None:
            assert n.core is not None
            self._check_state(i, n.core.applied)
        for env in fx.early:
            self._transmit(i, env)
        if fx.messages and not n.pending and n.pending_snapshot is None:
            self._release(i)

    def _sync(self, i: int, *, release: bool = True) -> None:
        n = self.nodes[i]
        assert n.core is not None
        marker = n.core.sync_marker()
        n.disk.records.extend(n.pending)
        n.pending = []
        if n.pending_snapshot is not None:
            n.disk.snapshot = n.pending_snapshot
            n.disk.records = n.core.durable_records()
            n.pending_snapshot = None
        if release:
            self._release(i)
            self._absorb(i, n.core.durable(marker, self.now_ms))

    def _release(self, i: int) -> None:
        n = self.nodes[i]
        for env in n.held:
            self._transmit(i, env)
        n.held = []

    def _transmit(self, src: int, env: Envelope) -> None:
        self._observe(src, env.msg)
        net = self.net
        if (src, env.dst) in net.blocked or self.rng.random() < net.loss:
            return
        copies = 2 if self.rng.random() < net.duplicate else 1
        for _ in range(copies):
            at = self.now_ms + self.rng.randint(*net.delay_ms)
            self._seq += 1
            heapq.heappush(self._queue, (at, self._seq, env.dst, env.msg))

    # ------------------------------------------------------------ invariants

    def _observe(self, src: int, msg: Message) -> None:
        """Track what is *chosen* by definition, from the messages that leave
        nodes (before any loss): a value is chosen in a slot once a majority
        sent ``Accepted`` for it at one ballot. Independent of what any node
        learned, so it also catches a choice nobody has noticed yet."""
        if isinstance(msg, Accept):
            for slot, value in msg.entries:
                prev = self.proposed.setdefault((slot, msg.ballot), value)
                if prev != value:
                    raise InvariantViolation(
                        f"ballot {msg.ballot} proposed {prev!r} and {value!r} for slot {slot}"
                    )
        elif isinstance(msg, Accepted):
            majority = len(self.ids) // 2 + 1
            for slot in msg.slots:
                key = (slot, msg.ballot)
                voters = self.votes.setdefault(key, set())
                voters.add(src)
                if len(voters) == majority and key in self.proposed:
                    value = self.proposed[key]
                    prev = self.chosen_by_votes.setdefault(slot, value)
                    if prev != value:
                        raise InvariantViolation(
                            f"t={self.now_ms} slot {slot}: {prev!r} and {value!r} both chosen"
                        )

    def _check_apply(self, i: int, slot: int, value: Value) -> None:
        prev = self.chosen.setdefault(slot, value)
        if prev != value:
            raise InvariantViolation(
                f"t={self.now_ms} slot {slot} applied as {prev!r} and as {value!r} (node {i})"
            )
        for cmd in value:
            where = self.command_slot.setdefault(cmd, slot)
            if where != slot:
                raise InvariantViolation(f"command {cmd!r} chosen in slots {where} and {slot}")

    def _check_state(self, i: int, slot: int) -> None:
        state = self.nodes[i].machine.snapshot()
        prev = self.state_at.setdefault(slot, state)
        if prev != state:
            raise InvariantViolation(
                f"t={self.now_ms} node {i} state after slot {slot} is {state}, others {prev}"
            )

    # ------------------------------------------------------------ driving

    def leaders(self) -> list[int]:
        """Live nodes that believe they lead."""
        return [
            i for i, n in self.nodes.items() if n.core is not None and n.core.role is Role.LEADER
        ]

    def submit(self, command: Any) -> bool:
        """Give ``command`` to a node that believes it leads; False if none does."""
        leaders = self.leaders()
        if not leaders:
            return False
        i = self.rng.choice(leaders)
        core = self.nodes[i].core
        assert core is not None
        try:
            fx = core.propose([command], self.now_ms)
        except NotLeader:
            return False
        self.submitted += 1
        self._absorb(i, fx)
        return True

    def step(self) -> None:
        """Advance the clock by one step and run everything due."""
        self.now_ms += self.step_ms
        while (
            self._fault_index < len(self.faults)
            and self.faults[self._fault_index].at_ms <= self.now_ms
        ):
            self._apply_fault(self.faults[self._fault_index])
            self._fault_index += 1
        while self._queue and self._queue[0][0] <= self.now_ms:
            _, _, dst, msg = heapq.heappop(self._queue)
            core = self.nodes[dst].core
            if core is not None:
                self._absorb(dst, core.handle(msg, self.now_ms))
        for i, n in self.nodes.items():
            if n.core is not None:
                self._absorb(i, n.core.tick(self.now_ms))
        for i, n in self.nodes.items():
            busy = n.core is not None and (n.pending or n.pending_snapshot or n.held)
            if busy and self.rng.random() < self.fsync_probability:
                self._sync(i)

    def _apply_fault(self, f: FaultEvent) -> None:
        if f.kind == "crash":
            self.crash(f.node, lose_unsynced=f.lose_unsynced)
        elif f.kind == "restart":
            self.restart(f.node)
        elif f.kind == "partition":
            self.partition(f.group)
        elif f.kind == "heal":
            self.heal()
        elif f.kind == "net":
            self.net.loss, self.net.duplicate = f.loss, f.duplicate
        else:
            raise ValueError(f"unknown fault kind {f.kind!r}")

    def run(self, until_ms: int, *, client_every_ms: int = 0) -> None:
        """Step until ``until_ms``; with ``client_every_ms``, submit a fresh
        command that often (when some node leads)."""
        next_client = self.now_ms
        while self.now_ms < until_ms:
            if client_every_ms and self.now_ms >= next_client:
                self.submit(f"c{self.submitted}")
                next_client = self.now_ms + client_every_ms
            self.step()

    def wait_for(self, command: Any, *, timeout_ms: int) -> bool:
        """Keep (re)submitting ``command`` until every live node applied it.

        Resubmission is what a client does after a leader change; the check
        that no command is chosen twice is suspended for it by using fresh
        command values per attempt (``(command, attempt)``).
        """
        deadline = self.now_ms + timeout_ms
        attempt = 0
        tried: list[Any] = []
        resubmit_at = self.now_ms
        while self.now_ms < deadline:
            live = [i for i, n in self.nodes.items() if n.core is not None]
            done = [c for c in tried if c in self.command_slot]
            if done:
                slot = self.command_slot[done[0]]
                if all(self._applied(i) >= slot for i in live):
                    return True
            elif self.now_ms >= resubmit_at:
                cmd = (command, attempt)
                if self.submit(cmd):
                    tried.append(cmd)
                    attempt += 1
                    resubmit_at = self.now_ms + 1000
            self.step()
        return False

    def _applied(self, i: int) -> int:
        core = self.nodes[i].core
        return core.applied if core is not None else -1
