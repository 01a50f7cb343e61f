"""What a system under test tells the harness: how to run it and how it is wired.

A system is any object with these attributes and methods (a
``typing.Protocol``: no subclassing needed). The harness puts a proxy on
every link it draws, so a system says which *roles* of port each node
listens on (peer traffic, client traffic) and takes, for each node, the
addresses it must *use* to reach its peers: those are proxy addresses, and a
toxic on one proxy acts on exactly one directed link.

Optional abilities (leader discovery, a load balancer, log files, reading a
replica's applied state, stating its election timeout) are
separate protocols, checked with ``isinstance`` at run time, so a minimal
adapter stays minimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import HarnessError
from harness.generator import DEFAULT_ELECTION_TIMEOUT_S

__all__ = [
    "PEER_ADDRESSING",
    "Address",
    "CheckReady",
    "CpuBound",
    "HasLeader",
    "HasLease",
    "HasLogFiles",
    "HasReplicaState",
    "HealthCheck",
    "LoadBalanced",
    "NodeContext",
    "NodeLaunch",
    "PromisesAvailability",
    "PromisesCpuBound",
    "PromisesStableLeader",
    "ReadsReplicaAt",
    "StatesTimeouts",
    "System",
    "TakesHostileInput",
    "availability_promise",
    "election_timeout_s",
    "peer_addressing",
]

#: How a node reaches its peers (a system's optional ``peer_addressing``):
#:
#: * ``"proxied"`` (the default): :attr:`NodeContext.peers` gives, for each
#:   peer, the address of the proxy of that directed link. Cheapest, and works
#:   in every backend, but a node sees a *different* address for the same peer
#:   than its neighbours do.
#: * ``"named"``: peers are addressed by node name and the role's own port
#:   (``Address("n2", 2380)``), the same string on every node. Systems that
#:   exchange peer addresses need this: etcd derives member ids from the peer
#:   URLs every member lists, Redis replicas and Sentinels announce the
#:   addresses others must dial. The backend still sends every such connection
#:   through its link's proxy, out of the system's sight (the Docker backend
#:   resolves each peer name to a placeholder address and rewrites connections
#:   to it with a NAT rule inside the node's network namespace). Only the
#:   Docker backend offers it; the image needs ``iptables``.
PEER_ADDRESSING = ("proxied", "named")


@dataclass(frozen=True)
class Address:
    """A host and a port, as the *connecting* side must dial them."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeContext:
    """Everything a system needs to write one node's command line.

    ``listen`` gives, per port role, where the node binds; ``peers`` gives,
    for every other node, the address of each of its roles *as this node must
    dial it* (through the proxy of that directed link). ``index`` is the
    node's 0-based position, for systems that number their nodes.
    """

    name: str
    index: int
    nodes: tuple[str, ...]
    listen: Mapping[str, Address]
    peers: Mapping[str, Mapping[str, Address]]
    data_dir: str
    env: Mapping[str, str] = field(default_factory=dict)
    #: "local" (a process on this machine) or "docker" (inside the system's image)
    backend: str = "local"


@dataclass(frozen=True)
class NodeLaunch:
    """The command that runs one node, with its environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    """How a load balancer decides a node may serve: an HTTP GET that must answer 2xx."""

    path: str = "/health"
    interval_ms: int = 250
    fall: int = 2
    rise: int = 2
    timeout_ms: int = 500


@runtime_checkable
class System(Protocol):
    """The minimum every system provides (plain attributes satisfy these properties)."""

    @property
    def name(self) -> str: ...

    @property
    def ports(self) -> Mapping[str, int]:
        """Port roles and the port each listens on inside a container, e.g.
        ``{"peer": 7000, "client": 8080}``; the local backend assigns its own."""
        ...

    @property
    def peer_roles(self) -> Sequence[str]:
        """Which port roles are node-to-node links (proxied per directed pair)."""
        ...

    @property
    def client_role(self) -> str:
        """The port role clients use."""
        ...

    @property
    def workloads(self) -> Sequence[str]: ...

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        """The command (and environment) that runs the node described by ``ctx``."""
        ...

    def image(self) -> object:
        """The container image recipe (:class:`harness.cluster.image.ImageSpec`) or a tag."""
        ...

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float,
               nodes: Mapping[str, Mapping[str, Address]]) -> Any:
        """A :class:`harness.client.Client` for one worker of ``workload``.

        ``address`` is where this worker should go (the load balancer, or the
        node it is pinned to); ``nodes`` gives every node's address per port
        role as the harness reaches it, for clients that follow a redirect or
        ask a node which peer leads (a Sentinel names the primary by node
        name). ``timeout_s`` is the per-operation timeout.
        """
        ...


@runtime_checkable
class LoadBalanced(Protocol):
    """A system that is served through a load balancer with health checks."""

    @property
    def health_check(self) -> HealthCheck: ...


@runtime_checkable
class HasLeader(Protocol):
    """A system that can say which node leads, so a nemesis can target the leader."""

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float) -> str | None:
        """The current leader's node name, or None when nobody knows."""
        ...


@runtime_checkable
class HasLease(Protocol):
    """A work queue that promises takeover: a held item's lease runs out and
    another worker gets it.

    The harness uses the two figures to tell a slow system from a broken one.
    An item read ``processing`` under one fencing token for longer than
    ``lease_ms + takeover_grace_ms`` at the end of a run is *stuck* (the
    takeover promise broke), while one read ``processing`` for less is merely
    *unfinished*. The grace is the system's own: how long after a lease runs
    out it may still take to hand the item over (a new leader that must first
    lead for a lease, an expiry timer's tick, a worker's poll interval).
    """

    @property
    def lease_ms(self) -> float: ...

    @property
    def takeover_grace_ms(self) -> float: ...


@runtime_checkable
class CheckReady(Protocol):
    """A system that can say when a fresh cluster is ready for a run.

    Listening is not ready: replicas may still be syncing, a leader not yet
    elected. A run that starts early records failures that are the setup's,
    not the system's. Backends poll this in ``wait_ready`` (after every node
    listens) until it is true or the timeout passes.
    """

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float) -> bool:
        """Whether the cluster serves every workload now; ``nodes`` as in ``client``."""
        ...


@runtime_checkable
class HasLogFiles(Protocol):
    """A system whose nodes write logs to files, not (only) to their output.

    Backends always keep each node's output; these files are copied beside it
    at teardown, as ``logs/<node>.<file name>``, so a report can quote them.
    """

    def log_files(self, node: str) -> Sequence[str]:
        """The node's log files, as paths relative to its data directory."""
        ...


@runtime_checkable
class HasReplicaState(Protocol):
    """A system that can read one node's applied state from that node alone.

    Clients see a replicated system through its leader (or a quorum), so a
    replica whose applied state diverged goes unseen until it leads and a
    client happens to read the divergent key. After the final phase the runner
    reads every node this way and records what it got, and the convergence
    checker compares them at equal applied positions.
    """

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float) -> Mapping[str, Any]:
        """The applied state of ``node``, read from that node without consensus.

        ``addresses`` gives that node's address per port role, as the harness
        reaches it. The answer is a JSON-ready mapping:

        * ``applied``: the position the state is at (a log index, a revision, a
          replication offset), comparable between nodes of one system; two
          nodes' states are compared only when their ``applied`` are equal;
        * ``digest``: a string equal for equal states (the system's own, or the
          adapter's over the dump);
        * ``state``: key-value contents, ``{key: value}``;
        * ``items``: work items, ``{id: {"state": ..., "token": ..., ...}}``.

        ``state`` and ``items`` may be omitted when the system has none. Raise
        (any exception) when the node cannot be read: the runner records a
        ``fail`` and the checker says "unknown" for that node, never "invalid".
        """
        ...


@runtime_checkable
class ReadsReplicaAt(Protocol):
    """A system whose nodes can show their applied state as it was at an earlier
    position (a multi-version store: etcd's ranges at a ``revision``).

    Without it, nodes at different positions are never compared (their states
    may legitimately differ), so a node that stays behind leaves the run's
    convergence unknown. With it, the runner reads every node at the lowest
    position they all reached and the checker compares them there.
    """

    def replica_state_at(self, node: str, addresses: Mapping[str, Address], at: int, *,
                         timeout_s: float) -> Mapping[str, Any]:
        """``node``'s applied state at position ``at`` (not past its own), read from it
        alone, in :meth:`HasReplicaState.replica_state`'s form with ``applied`` equal to
        ``at`` and ``now`` the node's current position. Raise when it cannot be read (a
        compacted revision, say)."""
        ...


@runtime_checkable
class PromisesAvailability(Protocol):
    """A system that promises to serve every request while all its nodes are up and
    connected, and says how to tell a refusal on the merits from a failure to serve.

    Safety checkers pass a system that refuses everything: a definite failure
    changes nothing, so nothing is lost or stale. A healthy cluster that turns
    requests away (a follower that rejects what it should forward, a leader
    that never steps down after losing its quorum) is a real bug all the same,
    and only a promise of availability makes it one. The runner records the
    promise in the history (a nemesis op ``promises``), and the availability
    checker judges the requests made while no fault was in force, after the
    system's recovery grace (see :mod:`harness.checker.availability`); the
    idempotency checker uses the refusals to tell a resend the system judged
    anew from one it turned away without looking.
    """

    def refusals(self) -> Mapping[str, Sequence[str]]:
        """Per operation ``f``, the errors that are the system's answer on the merits
        (a CAS whose expected value differs, a completion under a stale token):
        the request was served. Every other failure, and every indeterminate
        outcome, is a request the system did not serve."""
        ...

    @property
    def recovery_grace_ms(self) -> float:
        """How long after a fault ends the system may still fail to serve (an
        election, a restarted node's start and catch-up)."""
        ...

    # Optional, read with getattr: ``failover_grace_ms``, a promise that a majority
    # up and connected keeps serving once this long has passed since a node died,
    # froze or was cut off (an election, the load balancer dropping the node). A
    # system that states it is judged in those windows too.


@runtime_checkable
class PromisesStableLeader(Protocol):
    """A system that promises its leader keeps office while it stays up and connected
    to a majority, and can show each node's view of who leads.

    Pre-vote and leader stickiness (Raft's PreVote and CheckQuorum, the
    reference system's pre-vote round) exist for this: a node that was cut off
    or restarted must not depose a healthy leader when it comes back. Without
    them the node's term (ballot) ran ahead while it was alone, and its first
    message forces an election: the cluster stops serving for an election's
    length after every heal, and a flapping link takes it down repeatedly (the
    2020 Cloudflare outage, a Raft cluster whose one partially cut-off node kept
    deposing the leader). Safety checkers pass it; clients see only a hiccup
    that a recovery grace forgives. The runner polls every node's view while the
    run lasts (:mod:`harness.leadership`) and the ``leadership`` checker names a
    leader deposed right after a fault that spared it ended. The same views
    judge election safety: a node's term that went down while it ran, or two
    nodes leading at one term, makes the verdict invalid.
    """

    def leadership(self, node: str, addresses: Mapping[str, Address], *,
                   timeout_s: float) -> tuple[str | None, int | None]:
        """``node``'s own view, read from it alone: the node it knows as leader
        (itself when it leads; None when it knows none) and its term: a number
        that never goes down while the node runs, grows with every election, and
        that at most one node ever leads at. A Raft node's current term; a Paxos
        acceptor's promised ballot as one number (its round alone is not one:
        two proposers may use one round). Raise when the node cannot be read."""
        ...


@runtime_checkable
class TakesHostileInput(Protocol):
    """A system whose API documents what it refuses, so the harness can send it
    malformed requests while it runs and judge the answers.

    A node that crashes, hangs or answers 5xx on input it should refuse, or that
    accepts such input, is a bug of its own class (a "query of death"), and the
    worst of them is distributed: a value the first node accepts is replicated,
    and every replica fails on it when it applies or re-encodes it. Client
    workloads send only well-formed requests, so they never find it. The
    runner sends requests drawn from :meth:`hostile_request` alongside the
    workload, through the load balancer and to each node in turn, records
    them as ops of the process :data:`harness.hostile.HOSTILE`, and the
    ``robustness`` checker judges the answers (see :mod:`harness.hostile`); the
    availability and convergence checkers see what they did to the cluster.
    """

    def hostile_request(self, rng: Any) -> Mapping[str, Any]:
        """One request the system's API documents as malformed, drawn from ``rng``
        (a :class:`random.Random`; the same draws give the same request): a JSON-ready
        mapping the adapter alone interprets, with a short ``why`` saying what is wrong
        with it (it goes into the report)."""
        ...

    def send_hostile(self, request: Mapping[str, Any], address: Address, *,
                     timeout_s: float) -> tuple[str, str]:
        """Send ``request`` to ``address`` and classify the answer: ``(answer,
        detail)`` with ``answer`` one of :data:`harness.hostile.ANSWERS`:

        * ``refused``: the system's own definite refusal (a 4xx, or a refusal that
          came before looking, such as "no leader");
        * ``accepted``: the system took it (a 2xx): its validation has a hole;
        * ``error``: the system itself answered that it failed (a 5xx in the system's
          own error format): a node raised on input it should have refused;
        * ``dropped``: the whole request went out and the other end closed the
          connection without an answer (not a timeout, not a refused connection): a
          node that hangs up on input instead of refusing it;
        * ``no-answer``: no answer from the system (a timeout, a refused connection, a
          load balancer's or proxy's own error page): judged by nothing but what follows.

        ``detail`` is a short text for the report (the status and error code). Never
        raise: an exception counts as ``no-answer``."""
        ...


@runtime_checkable
class StatesTimeouts(Protocol):
    """A system that states how long its followers wait for a silent leader.

    The random nemesis sizes its window-stretching recipes from it
    (:data:`harness.generator.RECIPES`): a leader paused or cut off for less
    than an election is merely a hiccup, and the bugs of recovery and fencing
    show only once the others have moved on to a new leader. A plain
    ``election_timeout_ms`` attribute satisfies it (the reference system and
    etcd pass theirs to the nodes; Redis Sentinel's is its
    ``down-after-milliseconds``).
    """

    @property
    def election_timeout_ms(self) -> float:
        """How long a follower hears nothing from its leader before it starts
        replacing it, in ms (the lower end, if the system draws it at random)."""
        ...


def election_timeout_s(system: object) -> float:
    """The system's stated election timeout in seconds (:class:`StatesTimeouts`), or
    :data:`~harness.generator.DEFAULT_ELECTION_TIMEOUT_S` when it states none."""
    if isinstance(system, StatesTimeouts):
        ms = float(system.election_timeout_ms)
        if ms > 0:
            return ms / 1000
    return DEFAULT_ELECTION_TIMEOUT_S


def availability_promise(system: object) -> dict[str, Any] | None:
    """The system's :class:`PromisesAvailability`, JSON-ready for the history, or None."""
    if not isinstance(system, PromisesAvailability):
        return None
    out: dict[str, Any] = {"refusals": {str(f): [str(e) for e in errs]
                                        for f, errs in system.refusals().items()},
                           "recovery_grace_ms": float(system.recovery_grace_ms)}
    failover = getattr(system, "failover_grace_ms", None)
    if isinstance(failover, int | float) and not isinstance(failover, bool) and failover >= 0:
        out["failover_grace_ms"] = float(failover)
    return out


def peer_addressing(system: object) -> str:
    """The system's :data:`PEER_ADDRESSING` mode (``"proxied"`` when it says none)."""
    mode = getattr(system, "peer_addressing", "proxied")
    if mode not in PEER_ADDRESSING:
        raise HarnessError(f"system {getattr(system, 'name', system)!r}: peer_addressing "
                           f"{mode!r} is not one of {', '.join(PEER_ADDRESSING)}")
    return str(mode)


def project_root() -> Path:
    """The folder holding ``harness/`` and ``reference_system/`` (for image recipes)."""
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CpuBound:
    """At most ``idle_cores`` of CPU per node over ``window_s`` seconds of an idle cluster
    (faults healed, no client requests)."""

    idle_cores: float
    window_s: float


@runtime_checkable
class PromisesCpuBound(Protocol):
    """A system that promises each node uses little CPU when there is nothing to do.

    A node that spins breaks no safety promise and may serve every request: a
    tick loop that never sleeps, a timer whose deadline is always past, a resend
    of what was already acknowledged, a retry with no backoff. It burns a core
    for as long as it runs, takes that core from its neighbours on a shared
    host, and pages someone in production. Under load no bound fits every
    workload (a run without a rate limit takes all the CPU its leader can get),
    so the runner measures each node over ``window_s`` of idle cluster at the
    end of the run (a backend with :class:`harness.cluster.backend.MeasuresCpu`)
    and the ``resources`` checker names a node above ``idle_cores``
    (``cpu-runaway``). A healthy node then only keeps time and exchanges
    heartbeats.
    """

    def cpu_bound(self) -> CpuBound:
        """The bound each idle node keeps."""
        ...
