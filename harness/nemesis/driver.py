"""The fault driver: applies a schedule's faults at their times, and records each.

It used to live in the runner; the kinds it applies live in
:mod:`harness.nemesis.kinds` (found through :mod:`harness.nemesis.registry`),
so the driver only keeps time, resolves node rules (``leader``, ``follower``,
...) and tracks what the faults in force hold. It is the
:class:`~harness.nemesis.registry.FaultContext` the kinds start and end through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import HarnessError
from harness.generator import NODE_RULES, Fault, FaultSchedule
from harness.nemesis import registry
from harness.nemesis.faults import Nemesis
from harness.system import HasLeader

if TYPE_CHECKING:
    from harness.cluster.backend import Cluster, Link
    from harness.system import System

__all__ = ["FaultDriver", "NemesisRecorder"]


class NemesisRecorder(Protocol):
    """Where the driver records its operations (the runner's ``Recorder``)."""

    def nemesis(self, f: str, value: Any) -> Any: ...


class FaultDriver:
    """Applies a schedule's faults at their times, and records each start and end.

    The schedule becomes a timeline of start and end events, applied one at a
    time in time order by this one thread, so faults may overlap (some bugs
    show only then: an acceptor restarted while a partition keeps a stale
    leader apart) and a run is still one sequence of nemesis operations in the
    history, each ``start-X`` paired with its ``stop-X``. At equal times an end
    goes before a start, so back-to-back faults behave as they did when faults
    were strictly sequential; a fault's own end follows its start even when it
    lasts 0 s (a kill and immediate restart). Each end undoes its own fault
    only: a kill's end restarts that node, a network fault's end removes the
    toxics it added and no others. A process fault on a node another active
    fault holds (killed or paused) is refused and recorded as an error rather
    than silently doubling up. When the run stops, the faults still active end
    in reverse order of their starts (each recorded), as a single active fault
    always did. A slow start or end (a container restart) delays later events;
    their records say when they really happened. A start's record also names
    the recipe the fault belongs to (``recipe``, from its params), and says
    ``leader: None`` when resolving the fault asked the system who leads and
    no node was named (rule ``leader`` then falls back to the first up node),
    so a reader can tell "killed the new leader" from "killed whichever node
    was first" without replaying the run.
    """

    def __init__(self, nemesis: Nemesis, cluster: Cluster, system: System,
                 recorder: NemesisRecorder, schedule: FaultSchedule,
                 stop: threading.Event) -> None:
        self.nemesis = nemesis
        self.cluster = cluster
        self.system = system
        self.recorder = recorder
        self.schedule = schedule
        self.stop = stop
        self.active: list[str] = []
        self.errors: list[str] = []
        #: nodes held by an active kill or pause, and by which
        self._held: dict[str, str] = {}
        #: the grudge of the partition in force, if one is
        self.grudge: Mapping[str, frozenset[str]] | None = None
        #: the leader, asked at most once per event (``_leader_asked`` resets per event)
        self._leader_asked = False
        self._leader_found: str | None = None

    def _up(self) -> list[str]:
        return [str(n) for n in self.cluster.nodes if n not in self._held]

    def _leader(self) -> str | None:
        if not self._leader_asked:
            leader: str | None = None
            if isinstance(self.system, HasLeader):
                addrs = {n: self.cluster.client_address(n) for n in self._up()}
                found = self.system.leader(addrs, timeout_s=1.0)
                if found in self.cluster.nodes:
                    leader = str(found)
            self._leader_found, self._leader_asked = leader, True
        return self._leader_found

    def _talks(self, a: str, b: str) -> bool:
        """Whether a and b hear each other (both ways) under the partition in force."""
        g = self.grudge or {}
        return a == b or (b not in g.get(a, ()) and a not in g.get(b, ()))

    def _side(self, majority: bool) -> list[str]:
        """Up nodes that talk (both ways) with a majority of all nodes, themselves
        included, under the partition in force; or those that do not. Without a
        partition every node is on the majority side."""
        nodes = [str(n) for n in self.cluster.nodes]
        quorum = len(nodes) // 2 + 1
        return [n for n in self._up()
                if (sum(self._talks(n, m) for m in nodes) >= quorum) == majority]

    def node(self, want: str, exclude: Collection[str] = ()) -> str:
        """The node a fault names: a node name, or a rule resolved now.

        ``leader``: the node the system names leader (the first up node when
        none is named, as always). The other rules pick the first node, in
        name order, that is up (not held by another fault), not in
        ``exclude``, and: ``follower``, not the leader and talking with it
        (both ways) under the partition in force; ``cut-off``, not the leader
        and cut from it; ``majority`` / ``minority``, on the majority
        (minority) side of the partition in force. A schedule cannot know who
        will lead, so these rules are how it names, say, "the node kept apart
        from the leader" and "the node both can still reach". A rule that
        matches no node is an error (the fault is recorded as not applied).
        """
        up = [n for n in self._up() if n not in exclude]
        if want in self.cluster.nodes:
            return want
        if want == "leader":
            leader = self._leader()
            if leader is not None and leader not in exclude:
                return leader
            if up:
                return up[0]
            raise HarnessError("no node is up")
        if want in ("follower", "cut-off"):
            leader = self._leader()
            if leader is None:
                raise HarnessError(f"no leader is known, so no {want} node")
            found = [n for n in up if n != leader
                     and self._talks(n, leader) == (want == "follower")]
        elif want in ("majority", "minority"):
            found = [n for n in self._side(want == "majority") if n not in exclude]
        else:
            raise HarnessError(f"unknown node {want!r}: a node name or one of "
                               f"{', '.join(NODE_RULES)}")
        if not found:
            raise HarnessError(f"no up node is {want}")
        return found[0]

    def links(self, params: Mapping[str, Any]) -> list[Link]:
        """A network fault's links: every link of ``node`` ("all": every link), or with
        ``to``, only the directed links from ``node`` to ``to``."""
        node = params.get("node", "all")
        if "to" in params:
            src = self.node(node)
            dst = self.node(params["to"], exclude={src})
            return [lk for lk in self.nemesis.links_of(src) if lk.src == src and lk.dst == dst]
        return self.nemesis.links_of(None if node == "all" else self.node(node))

    def hold(self, node: str, kind: str) -> None:
        """Mark ``node`` held by a process fault of ``kind``; refuse a node another active
        fault already holds, rather than silently doubling up."""
        if node in self._held:
            raise HarnessError(f"{node} is already held by an overlapping {self._held[node]}")
        self._held[node] = kind

    def release(self, node: str) -> None:
        self._held.pop(node, None)

    def _start(self, fault: Fault) -> dict[str, Any]:
        return registry.get(fault.kind).start(self, dict(fault.params))

    def _end(self, fault: Fault, started: Mapping[str, Any]) -> dict[str, Any]:
        return registry.get(fault.kind).end(self, dict(fault.params), started)

    def timeline(self) -> list[tuple[float, int, int, bool]]:
        """(time, order, fault index, is_start), sorted: ends before starts at equal
        times, except a fault that lasts 0 s, whose end comes right after its own start."""
        events: list[tuple[float, int, int, bool]] = []
        for i, f in enumerate(self.schedule.faults):
            events.append((f.start_s, 1, i, True))
            events.append((f.end_s, 0, i, False) if f.duration_s > 0
                          else (f.start_s, 1, i, False))
        # at one (time, order, index) False sorts before True: put a start first
        return sorted(events, key=lambda e: (e[0], e[1], e[2], not e[3]))

    def _begin(self, i: int, started: dict[int, dict[str, Any]]) -> None:
        fault = self.schedule.faults[i]
        self._leader_asked = False
        tag = {"recipe": fault.params["recipe"]} if "recipe" in fault.params else {}
        try:
            started[i] = self._start(fault)
        except Exception as e:
            self.errors.append(f"{fault.kind}: {e}")
            self.recorder.nemesis(f"start-{fault.kind}", {"error": str(e), **tag})
            return
        unknown = {"leader": None} if self._leader_asked and self._leader_found is None else {}
        try:  # a record the kind cannot read names no faulty nodes: never judged
            faulty = registry.get(fault.kind).faulty_nodes(started[i], list(self.cluster.nodes))
        except Exception:
            faulty = None
        named = {} if faulty is None else {"faulty": faulty}
        self.recorder.nemesis(f"start-{fault.kind}", {**started[i], **unknown, **named, **tag})
        self.active.append(fault.kind)

    def _finish(self, i: int, started: dict[int, dict[str, Any]]) -> None:
        fault = self.schedule.faults[i]
        self._leader_asked = False
        try:
            ended = self._end(fault, started.pop(i))
        except Exception as e:
            self.errors.append(f"end {fault.kind}: {e}")
            ended = {"error": str(e)}
        self.recorder.nemesis(f"stop-{fault.kind}", ended)
        self.active.remove(fault.kind)

    def run(self, t0: float) -> None:
        started: dict[int, dict[str, Any]] = {}  # insertion order: order of starts
        for at_s, _, i, is_start in self.timeline():
            if self.stop.wait(max(0.0, t0 + at_s - time.monotonic())):
                break
            if is_start:
                self._begin(i, started)
            elif i in started:
                self._finish(i, started)
        for i in reversed(list(started)):
            self._finish(i, started)

    def heal_kinds(self) -> dict[str, Any]:
        """Each scheduled kind's own ``heal`` (what the nemesis's ``heal_all`` cannot
        undo), once the driver has stopped: {kind: what it undid or its error}, only for
        kinds that had something to say."""
        out: dict[str, Any] = {}
        for name in dict.fromkeys(f.kind for f in self.schedule.faults):
            try:
                done = registry.get(name).heal(self)
            except Exception as e:
                self.errors.append(f"heal {name}: {e}")
                done = {"error": str(e)}
            if done:
                out[name] = done
        return out
