"""The reference system (a Multi-Paxos work queue behind HAProxy) as a plug-in system.

It is an ordinary adapter of the public :class:`harness.system.System`
protocol: nothing in the harness knows it specially.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import sockets
from harness.cluster.image import BaseSpec, ImageSpec
from harness.errors import HarnessError
from harness.system import (
    Address,
    CpuBound,
    HealthCheck,
    NodeContext,
    NodeLaunch,
    project_root,
)
from harness.systems import refsys_hostile
from harness.systems.refsys_client import RefsysClient

__all__ = ["BALLOT_NODES", "ReferenceSystem", "ballot_term", "find_leader"]

#: the CPU bound each idle node promises, and the idle window (ReferenceSystem.cpu_bound)
CPU_IDLE_CORES = 0.2
CPU_WINDOW_S = 0.5

BASE_PACKAGES = ("python3", "python3-aiohttp", "haproxy", "tini", "iproute2", "procps", "faketime")


BALLOT_NODES = 1000
"""A ballot ``(round, node)`` as one term: ``round * BALLOT_NODES + node`` (node ids are
small: one per cluster member)."""


def ballot_term(ballot: Any) -> int | None:
    """A node's ``/health`` ballot ``[round, node]`` as the term the leadership promise
    reads (ordered as ballots are, one proposer per term), or None when it is not one.
    The zero ballot ``[0, -1]`` (nothing promised yet) is -1."""
    if not isinstance(ballot, list) or len(ballot) != 2 \
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in ballot):
        return None
    rnd, node = ballot
    if rnd < 0 or not -1 <= node < BALLOT_NODES:
        return None
    return rnd * BALLOT_NODES + node


@dataclass
class ReferenceSystem:
    """Adapter for ``reference_system``; ``bug`` selects a seeded bug (``REFSYS_BUG``)."""

    bug: str | None = None
    worker: bool = False
    work_ms: float = 100.0
    lease_ms: float = 2000.0
    heartbeat_ms: float = 50.0
    #: the nodes' own flag, also how the random nemesis sizes its recipes (StatesTimeouts)
    election_timeout_ms: float = 300.0
    extra_args: tuple[str, ...] = ()
    name: str = "refsys"
    ports: Mapping[str, int] = field(default_factory=lambda: {"peer": 7000, "client": 8080})
    peer_roles: tuple[str, ...] = ("peer",)
    client_role: str = "client"
    workloads: tuple[str, ...] = ("register", "queue", "takeover")
    health_check: HealthCheck = field(default_factory=HealthCheck)
    #: The LB retries only connections that failed (the request reached no node).
    #: Resending a request that reached a node is unsafe for the *client's*
    #: reading of the answer even with request ids: the first attempt may commit
    #: through the leader while the resent one gets a definite "no leader" 503
    #: from a cut-off node, and the client would record a fail for a write that
    #: happened (a campaign found exactly that).
    lb_retry_on: str = "conn-failure"
    #: the nodes read time through libc, so a preloaded libfaketime moves their wall
    #: clock (harness.clock; the ``clock`` fault kind)
    clock_control: str = "faketime"
    #: a claim holds its item for ``lease_ms`` from the claim's sending (leases.py): the
    #: queue workload states it, so every run's lease checker judges exclusivity
    states_claim_lease: bool = True

    def __post_init__(self) -> None:
        from reference_system.bugs import BUGS

        for name in filter(None, (self.bug or "").split(",")):
            if name.strip() not in BUGS:
                raise HarnessError(
                    f"unknown seeded bug {name!r}; known: {', '.join(sorted(BUGS))}")

    def refusals(self) -> Mapping[str, Sequence[str]]:
        """The state machine's answers on the merits (:class:`PromisesAvailability`):
        a CAS on another value, an enqueue of an id that exists, a completion,
        renewal or give-up under a stale token, of an unknown item, or of one
        not processing. Everything else (no leader, not leader, timeouts, a bad
        request from a correct client) is a request the cluster did not serve."""
        stale = ("stale", "unknown", "not_processing")
        return {"cas": ("mismatch",), "enqueue": ("exists",), "complete": stale,
                "renew": stale, "fail": stale}

    @property
    def recovery_grace_ms(self) -> float:
        """After a fault ends: a restarted node's start (about a second on a busy
        machine), its catch-up, and a few elections."""
        return 3000.0 + 5 * self.election_timeout_ms

    @property
    def failover_grace_ms(self) -> float:
        """With a minority down or cut off: the load balancer's health checks drop the
        node (``fall`` checks), the others time out and elect (pre-vote, then a
        ballot; a few timeouts when votes split), and a busy machine's second."""
        hc = self.health_check
        return 1000.0 + 5 * self.election_timeout_ms + hc.fall * hc.interval_ms

    @property
    def takeover_grace_ms(self) -> float:
        """After a lease runs out, a leader expires the item only once it has led
        for a whole lease (a new leader after a fault waits that long), then an
        election or two may pass, then a worker's poll picks it up."""
        return self.lease_ms + 4 * self.election_timeout_ms + 1000.0

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        python = sys.executable if ctx.backend == "local" else "python3"
        ids = {n: i + 1 for i, n in enumerate(ctx.nodes)}
        peers = ",".join(f"{ids[o]}={addr['peer']}" for o, addr in ctx.peers.items())
        argv = [
            python, "-m", "reference_system.node",
            "--id", str(ids[ctx.name]),
            "--peer-listen", str(ctx.listen["peer"]),
            "--peers", peers,
            "--http", str(ctx.listen["client"]),
            "--data-dir", ctx.data_dir,
            "--lease-ms", str(self.lease_ms),
            "--work-ms", str(self.work_ms),
            "--heartbeat-ms", str(self.heartbeat_ms),
            "--election-timeout-ms", str(self.election_timeout_ms),
        ]
        if self.worker:
            argv.append("--worker")
        argv += list(self.extra_args)
        env = dict(ctx.env)
        if self.bug:
            env["REFSYS_BUG"] = self.bug
        env.setdefault("PYTHONUNBUFFERED", "1")
        return NodeLaunch(tuple(argv), env)

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> RefsysClient:
        """The same client serves every workload: the operations' names differ; every
        node can serve any request (followers forward), so ``nodes`` is not needed."""
        return RefsysClient(address, worker=worker, timeout_s=timeout_s)

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """Node names are ``n1..nN`` in id order, so node id ``k`` is ``n{k}``."""
        return find_leader(client_addresses, timeout_s=timeout_s)

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float = 5.0) -> dict[str, Any]:
        """``GET /replica`` of that node: what it applied, read from it alone (no log)."""
        addr = addresses[self.client_role]
        status, _, raw = sockets.http_get(addr.host, addr.port, "/replica", timeout=timeout_s)
        if status != 200:
            raise HarnessError(f"{node}: /replica answered HTTP {status}: {raw[:200]!r}")
        body = json.loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("applied"), int):
            raise HarnessError(f"{node}: /replica answered {str(body)[:200]}")
        return {"applied": body["applied"], "digest": body.get("digest"),
                "state": body.get("kv", {}), "items": body.get("items", {}),
                "queue": body.get("queue", [])}

    def cpu_bound(self) -> CpuBound:
        """An idle node uses at most a fifth of a core (:class:`PromisesCpuBound`).

        An idle node ticks every 10 ms and the leader sends a heartbeat every
        50 ms: a few percent of a core (measured: see docs/architecture.md); a
        node whose loop spins takes whatever the machine gives it."""
        return CpuBound(idle_cores=CPU_IDLE_CORES, window_s=CPU_WINDOW_S)

    def leadership(self, node: str, addresses: Mapping[str, Address], *,
                   timeout_s: float = 0.5) -> tuple[str | None, int | None]:
        """``GET /health`` of that node (cheap, answered whatever its health): the leader
        it knows (``n{id}``; None past an election timeout without contact) and the ballot
        it promised, which is its leader's ballot, as one number: ``round * 1000 + node id``
        (:data:`BALLOT_NODES`), so a term names its proposer as the promise requires
        (two nodes may campaign in one round; a round alone would be shared).
        :class:`PromisesStableLeader`: pre-vote and stickiness keep a rejoining node from
        deposing a live leader."""
        addr = addresses[self.client_role]
        # any status: a 503 (not healthy) still says who leads
        _, _, raw = sockets.http_get(addr.host, addr.port, "/health", timeout=timeout_s)
        body = json.loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("ballot"), list):
            raise HarnessError(f"{node}: /health answered {str(body)[:200]}")
        leader = body.get("leader")
        ballot = body["ballot"]
        return (f"n{leader}" if isinstance(leader, int) else None), ballot_term(ballot)

    def hostile_request(self, rng: random.Random) -> dict[str, Any]:
        """A request the API documents as malformed (:class:`TakesHostileInput`; see
        :mod:`harness.systems.refsys_hostile`)."""
        return refsys_hostile.hostile_request(rng)

    def send_hostile(self, request: Mapping[str, Any], address: Address, *,
                     timeout_s: float) -> tuple[str, str]:
        """Send one malformed request and classify the answer; never raises."""
        return refsys_hostile.send_hostile(request, address, timeout_s=timeout_s)

    def image(self) -> ImageSpec:
        return ImageSpec(
            name="harness-refsys",
            base=BaseSpec(packages=BASE_PACKAGES),
            files={"app/reference_system": project_root() / "reference_system"},
            dockerfile=(
                "COPY app /opt/app\n"
                "WORKDIR /opt/app\n"
                "ENV PYTHONPATH=/opt/app PYTHONUNBUFFERED=1\n"
                'ENTRYPOINT ["/usr/bin/tini", "--"]\n'
            ),
        )


def _status(addr: Address, timeout_s: float) -> dict[str, Any] | None:
    try:
        status, _, raw = sockets.http_get(addr.host, addr.port, "/status", timeout=timeout_s)
        body = json.loads(raw) if status == 200 else None
        return body if isinstance(body, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None


def find_leader(client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
                ) -> str | None:
    """The node a majority of the asked nodes name as leader (None if no majority agrees).

    Node ``k`` (the ``--id``) is named ``n{k}``: the harness names nodes
    ``n1..nN`` and the adapter numbers them in that order.
    """
    votes: dict[str, int] = {}
    for addr in client_addresses.values():
        st = _status(addr, timeout_s)
        if st and isinstance(st.get("leader"), int):
            name = f"n{st['leader']}"
            votes[name] = votes.get(name, 0) + 1
    for name, n in votes.items():
        if n > len(client_addresses) // 2:
            return name
    return None
