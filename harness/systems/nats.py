"""NATS JetStream 2.9 (Debian's ``nats-server``) as a plug-in system: three clustered servers.

Each node runs one ``nats-server`` with JetStream on; the three form one
cluster through routes. Routes name their peers (``nats-route://n2:6222``),
so the adapter asks for *named* peer addressing and the Docker backend sends
every route through the proxy of its directed link: a partition cuts exactly
the routes it names. ``no_advertise`` keeps servers from gossiping their
in-container addresses to clients (the harness pins each client to one node).

Two workloads (see :mod:`harness.systems.nats_client`):

* ``queue``: a stream of 3 replicas with *WorkQueue* retention and one
  durable pull consumer shared by all workers. Enqueue is a publish answered
  by a PubAck, a claim is a fetch of one message, the consumer's ``AckWait``
  is the lease (so the system states it: :class:`harness.system.HasLease`),
  a completion is a synchronous ack, takeover is redelivery after AckWait.
  Each publish carries ``Nats-Msg-Id`` (the item id), so a resend inside the
  stream's duplicate window is stored once: the client's ``idempotency`` is
  ``"request-id"``.

  Where the model does not fit: JetStream has no fencing token. The claim's
  token is the message's delivery count, which grows with every redelivery,
  but nothing stops the holder of an earlier delivery from acking the item
  after it was redelivered; the fencing checker is left on and reports what
  JetStream does, rather than being bent to pass. A renewal is
  ``+WPI`` (work in progress), which the server does not answer, so it is
  recorded ``info``. A final ``read-item`` asks the stream leader for the
  item's subject: a message still there is ``queued`` (JetStream does not say
  whether it is out for delivery); an acked message is deleted by WorkQueue
  retention, so a completed item and a lost one both read "not found" and
  only the history's acknowledged completions tell them apart.

* ``register``: a KV bucket of 3 replicas; a write is a put, a CAS is an
  update on the revision read with the expected value. ``kv_reads`` picks how
  a get is served: ``"leader"`` (the stream leader answers) or ``"direct"``
  (the bucket has ``allow_direct`` and any replica may answer from its own
  copy, which NATS documents may lag).

Durability. JetStream 2.9 writes every message to its file store at once but
fsyncs it only on a 2-minute timer (``sync_interval``, configurable from 2.10
on; NATS documents that it relies on the stream's replicas to survive a
node's crash). The adapter states that timer (``fsync_interval_s``), so the
conformance kit's lose-unsynced section waits for it instead of asking for an
fsync at once. What it means: a crash of one node is healed from the other
replicas, but a power loss of every node within the interval loses
acknowledged messages (the ``lose-unsynced`` fault's ``"node": "all"``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.cluster.image import BaseSpec, ImageSpec
from harness.system import Address, NodeContext, NodeLaunch
from harness.systems.nats_client import (
    STREAM,
    NatsKvClient,
    NatsLoop,
    NatsQueueClient,
    ensure_bucket,
    ensure_stream,
    stream_leader,
)

__all__ = ["KV_READS", "NatsJetStream"]

#: python3 and haproxy let the proxy container reuse this base (one debootstrap)
BASE_PACKAGES = ("nats-server", "iptables", "tini", "python3", "haproxy", "iproute2",
                 "procps")

#: the ``kv_reads`` option's values
KV_READS = ("leader", "direct")


@dataclass
class NatsJetStream:
    """Adapter for NATS JetStream; ``lease_ms`` is the consumer's AckWait."""

    #: the pull consumer's AckWait: how long a fetched message stays with its holder
    #: (long enough that a worker's ordinary backlog of held items rarely outlives it
    #: in a run without faults: nothing fences a holder whose AckWait ran out)
    lease_ms: float = 5000.0
    #: JetStream's consumer delivery is at-least-once (a message whose AckWait ran
    #: out is delivered again, and either holder may ack it): duplicates are counted
    delivery: ClassVar[str] = "at-least-once"
    #: JetStream 2.9 fsyncs its file store on a timer, every 2 minutes, not before a
    #: PubAck (the ``sync_interval`` that 2.10 made configurable; fixed in 2.9): NATS
    #: relies on the stream's replicas for durability. The conformance kit's
    #: lose-unsynced section waits this long for the node's first fsync
    fsync_interval_s: ClassVar[float] = 120.0
    #: redelivery happens when the consumer leader's AckWait timer checks; a
    #: consumer leader change in between restarts its clock
    takeover_grace_ms: float = 4000.0
    #: how register reads are served (see the module docstring)
    kv_reads: str = "leader"
    #: the stream's duplicate window for ``Nats-Msg-Id``, longer than any campaign
    duplicate_window_s: float = 600.0
    name: str = "nats"
    ports: Mapping[str, int] = field(default_factory=lambda: {"cluster": 6222, "client": 4222})
    peer_roles: tuple[str, ...] = ("cluster",)
    client_role: str = "client"
    peer_addressing: str = "named"
    workloads: tuple[str, ...] = ("queue", "register")

    def __post_init__(self) -> None:
        if self.kv_reads not in KV_READS:
            raise ValueError(f"kv_reads must be one of {', '.join(KV_READS)}, "
                             f"not {self.kv_reads!r}")
        if not self.lease_ms >= 100:
            raise ValueError(f"lease_ms must be at least 100, not {self.lease_ms!r}")

    @property
    def election_timeout_ms(self) -> float:
        """NATS's Raft groups start an election after 4 to 9 s without a leader
        (fixed in the server, not configurable): :class:`StatesTimeouts`."""
        return 4000.0

    def config(self, ctx: NodeContext) -> str:
        cluster = self.ports["cluster"]
        routes = ", ".join(f'"nats-route://{n}:{cluster}"' for n in ctx.nodes if n != ctx.name)
        return "\n".join([
            f"server_name: {ctx.name}",
            f"listen: 0.0.0.0:{ctx.listen['client'].port}",
            "jetstream {",
            f"  store_dir: {ctx.data_dir}/js",
            "  max_memory_store: 64MB",
            "  max_file_store: 1GB",
            "}",
            "cluster {",
            "  name: harness",
            f"  listen: 0.0.0.0:{ctx.listen['cluster'].port}",
            f"  advertise: {ctx.name}:{cluster}",
            "  no_advertise: true",
            f"  routes: [{routes}]",
            "}",
            "",
        ])

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        path = f"{ctx.data_dir}/nats.conf"
        script = (f"printf %s {shlex.quote(self.config(ctx))} > {path} && "
                  f"exec nats-server -c {path}")
        return NodeLaunch(("/bin/sh", "-c", script), dict(ctx.env))

    def image(self) -> ImageSpec:
        return ImageSpec(name="harness-nats", base=BaseSpec(packages=BASE_PACKAGES),
                         dockerfile='ENTRYPOINT ["/usr/bin/tini", "--"]\n')

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> Any:
        if workload == "register":
            return NatsKvClient(address, worker=worker, timeout_s=timeout_s,
                                direct=self.kv_reads == "direct")
        return NatsQueueClient(address, worker=worker, timeout_s=timeout_s)

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float = 1.0
              ) -> bool:
        """The stream, its consumer and the KV bucket exist with 3 replicas, each with a
        leader and every replica current (creating them on the first call)."""
        addrs = [roles[self.client_role] for roles in nodes.values()]
        with NatsLoop() as loop:
            try:
                ok = loop.run(ensure_stream(addrs[0], replicas=len(addrs),
                                            ack_wait_s=self.lease_ms / 1000.0,
                                            duplicate_window_s=self.duplicate_window_s,
                                            timeout_s=max(timeout_s, 2.0)),
                              timeout_s=max(timeout_s, 2.0) * 4)
                ok = ok and loop.run(ensure_bucket(addrs[0], replicas=len(addrs),
                                                   direct=self.kv_reads == "direct",
                                                   timeout_s=max(timeout_s, 2.0)),
                                     timeout_s=max(timeout_s, 2.0) * 4)
            except Exception:
                return False
        return bool(ok)

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """The work stream's leader, as a majority of the servers name it (the
        consumer's and the bucket's leaders may be elsewhere)."""
        votes: dict[str, int] = {}
        with NatsLoop() as loop:
            for addr in client_addresses.values():
                try:
                    name = loop.run(stream_leader(addr, STREAM, timeout_s=timeout_s),
                                    timeout_s=timeout_s * 3)
                except Exception:
                    continue
                if name:
                    votes[name] = votes.get(name, 0) + 1
        return next((n for n, v in votes.items() if v > len(client_addresses) // 2), None)

