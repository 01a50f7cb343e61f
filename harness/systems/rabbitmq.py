"""RabbitMQ 3.10 (Debian's ``rabbitmq-server``) as a plug-in system: a three-node cluster.

Two configurations, by the ``queue`` option:

* ``quorum`` (the default): one quorum queue replicated on all three nodes
  (Raft). RabbitMQ documents it as the queue type for data safety: a
  publish is confirmed once a majority has it, so acknowledged messages
  must survive partitions, kills and pauses.
* ``mirrored``: one classic queue mirrored on every node by the policy
  ``ha-mode: all`` (``ha-sync-mode: automatic``), the configuration Jepsen
  (2014) found losing acknowledged messages under partitions. The
  ``partition_handling`` option picks the cluster's reaction to a partition
  (``pause_minority``, ``autoheal``, ``ignore``); with ``ignore`` a healed
  partition leaves a split cluster that never becomes ready again.

Wiring. Nodes are ``rabbit@n1``... and reach each other by name through
the harness's proxies (*named* peer addressing): Erlang distribution asks
the peer's ``epmd`` (port 4369) for the node's distribution port, which is
pinned to 25672, so both are peer roles with a proxy per directed link and
a partition cuts them both; ``net_ticktime`` is lowered to 8 s so that a cut
is noticed in about that long, not a minute. All nodes share one Erlang
cookie. ``n1`` starts alone; the others, on their first start, join it
(``join_cluster``), one at a time; every start checks membership again
(:func:`member_eval`). The management plugin's HTTP API (port 15672) serves
readiness, the queue's declaration and leader discovery. Only the Docker
backend runs it (named peer addressing needs it).

What RabbitMQ documents about faults, and what the adapter does with it:

* a node frozen (``pause``) longer than ``net_ticktime`` can come back split
  from the others (when it is reconnected before it hears they dropped it),
  and ``pause_minority`` never heals that: the frozen node never saw the
  others vanish, so it never paused (the partitions guide:
  pause_minority "will do nothing to defend against partitions caused by
  cluster nodes being suspended"). The documented recovery is to restart the
  nodes outside the trusted side; the adapter states it for the conformance
  kit (:attr:`RabbitMQ.restart_after`). Any suspend longer than the tick
  does this, so ``net_ticktime`` stays 8 s: short enough that a 10 s
  partition makes ``pause_minority`` act;
* RabbitMQ fsyncs files (its Raft log, before it confirms) but never, in
  any run here, a directory. Under the lose-unsynced layer's strict rule (a
  name is durable once its directory is fsynced) a crash takes every name it
  created: the node comes back blank. The adapter then does what an
  operator does for a node whose disk was lost (forget it on a peer, drop it
  from the quorum queues, rejoin, add it back: :func:`member_eval`), so one
  node's crash is healed from the others; a power loss of every node loses
  every confirmed message not yet consumed, a finding the campaigns report
  (a file system that journals names every few seconds, as ext4 does,
  narrows it to that window).

The work-queue mapping is in :mod:`harness.systems.rabbitmq_client`. What
it means for the checkers: RabbitMQ hands out no fencing token and no
lease. A held message goes to another worker only when the holder's
channel or connection is gone, and a stale holder cannot acknowledge it
(its delivery tag died with its channel), so ``fencing`` and ``lease``
have nothing to judge: claims carry ``token: None`` and the adapter does
not state a lease (no ``HasLease``). ``queue`` applies in full: an
acknowledged publish never delivered and not in the queue is *lost*, and
an item whose acknowledgement was taken twice is *duplicated*. RabbitMQ
promises at-least-once delivery, so a redelivery is by design: the adapter
says so (``delivery = "at-least-once"``, recorded in the history's
``promises`` op), and the queue checker then counts and lists duplicates
without calling them anomalies (its ``allow_duplicates`` mode, the same as
``harness check --allow-duplicates``); losses stay anomalies.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import shlex
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness import sockets
from harness.cluster.image import BaseSpec, ImageSpec
from harness.system import Address, NodeContext, NodeLaunch
from harness.systems.rabbitmq_client import QUEUE, RabbitQueueClient, connect

__all__ = ["PARTITION_HANDLING", "QUEUE_TYPES", "RabbitMQ", "management"]

#: python3 and haproxy let the proxy container reuse this base (one debootstrap)
BASE_PACKAGES = ("rabbitmq-server", "iptables", "tini", "python3", "haproxy", "iproute2",
                 "procps")
QUEUE_TYPES = ("quorum", "mirrored")
PARTITION_HANDLING = ("pause_minority", "autoheal", "ignore")
COOKIE = "HARNESSRABBITCOOKIE"
RMQ_BIN = "/usr/lib/rabbitmq/bin"
QUEUE_INFO_TIMEOUT_S = 4.0


def management(address: Address, method: str, path: str, body: Any = None, *,
               timeout_s: float = 2.0) -> tuple[int, Any]:
    """One call to the management HTTP API as ``guest``; status 0 when nothing answered."""
    conn = sockets.HTTPConnection(address.host, address.port, timeout=timeout_s)
    auth = base64.b64encode(b"guest:guest").decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as e:
        return 0, f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")[:200]


def member_eval(name: str, nodes: Sequence[str], marker: str) -> str:
    """The Erlang the CLI runs on every start of node ``name`` so that it ends up a member
    of the cluster of ``nodes`` (seeded by the first), in one CLI call (each call starts
    a CLI VM: seconds apiece on a loaded machine).

    * Already clustered: an ordinary restart, nothing to do.
    * Alone, and no peer lists it (the first node, the seed: and its ``marker``,
      written and fsynced once it was a member, is missing): the node's first
      start, or a power loss that blanked every node. The first node seeds the
      cluster; the
      others join it (what ``stop_app``, ``reset``, ``join_cluster`` and
      ``start_app`` call), the joins one at a time in node order (the stops
      before them overlap): two nodes joining at once can abort Mnesia's
      schema merge (``combine_error``, seen in one formation), which leaves
      the second one down for good.
    * Alone although a peer still lists it as a member (the seed also needs its
      marker; the others need none: one killed after joining and before writing
      its marker would otherwise look new and be refused): the node lost its data
      (RabbitMQ fsyncs no directory, so a crash that loses what was not
      synced takes every name it created; see the module docstring). What an
      operator does for a node whose disk was lost: on a peer that still lists
      it, ``forget_cluster_node`` and drop it from the quorum queues
      (``rabbitmq-queues shrink``); then reset, join, and add it back to the
      quorum queues (``rabbitmq-queues grow``), where it catches up from the
      leader. Without this the blank node booted as a cluster of its own
      while the others kept listing it: never ready again.
    """
    me = f"rabbit@{name}"
    peers = ", ".join(f"'rabbit@{n}'" for n in nodes if n != name)
    earlier = ", ".join(f"'rabbit@{n}'" for n in nodes[:nodes.index(name)])
    return (
        f"Me = '{me}', First = 'rabbit@{nodes[0]}', Peers = [{peers}], "
        f"Earlier = [{earlier}], "
        "Lists = fun(P) -> case rpc:call(P, rabbit_mnesia, cluster_nodes, [all], 5000) of "
        "L when is_list(L) -> lists:member(Me, L); _ -> false end end, "
        # alone while a peer still lists it: the node lost its data. Only the seed asks
        # its marker too (a peer that joined it is listed here by then anyway)
        f"Stale = case (Me =/= First) orelse filelib:is_file(\"{marker}\") of "
        "true -> [P || P <- Peers, Lists(P)]; false -> [] end, "
        # read after asking the peers: a peer that joined us meanwhile is then listed here
        "Alone = rabbit_mnesia:cluster_nodes(all) =:= [Me], "
        "case {Alone, Stale, Me =:= First} of "
        "{false, _, _} -> ok; "
        "{true, [], true} -> ok; "
        "{true, _, _} -> "
        "To = case Stale of [S | _] -> S; [] -> First end, "
        "ok = rabbit:stop(), ok = rabbit_mnesia:reset(), "
        "case Stale of [] -> ok; _ -> "
        "ok = rpc:call(To, rabbit_mnesia, forget_cluster_node, [Me, false], 30000) end, "
        "_ = rpc:call(To, rabbit_quorum_queue, shrink_all, [Me], 30000), "
        # a first join waits until the nodes before it are in the schema (their merge
        # is done; their start need not be); the stops above overlap. Past 60 s the
        # eval fails and the shell retries
        "Joined = fun() -> case rpc:call(To, rabbit_mnesia, cluster_nodes, [all], 5000) of "
        "R when is_list(R) -> lists:all(fun(N) -> lists:member(N, R) end, Earlier); "
        "_ -> false end end, "
        "WaitEarlier = fun W(0) -> error(earlier_nodes_not_joined); "
        "W(K) -> case Joined() of true -> ok; false -> timer:sleep(500), W(K - 1) end end, "
        "ok = case Stale of [] -> WaitEarlier(120); _ -> ok end, "
        "case rabbit_mnesia:join_cluster(To, disc) of "
        "ok -> ok; {ok, already_member} -> ok end, "
        "ok = rabbit:start(), "
        "_ = rabbit_quorum_queue:grow(Me, <<\"/\">>, <<\".*\">>, all), ok end."
    )


@dataclass
class RabbitMQ:
    """Adapter for a RabbitMQ cluster; see the module docstring for the options."""

    #: RabbitMQ's documented delivery guarantee: a message may be delivered (and
    #: acknowledged) twice, so the queue checker counts duplicates, not anomalies
    delivery: ClassVar[str] = "at-least-once"
    queue: str = "quorum"
    partition_handling: str = "pause_minority"
    #: Erlang's net_ticktime: a silent peer is declared down after 0.75-1.25 of it
    net_ticktime_s: int = 8

    @property
    def restart_after(self) -> tuple[str, ...]:
        """The faults after which RabbitMQ documents that the node they hit stays split
        from the others until an operator restarts it ("Recovering from a split-brain"
        in its partitions guide), for the conformance kit.

        * ``pause_minority``: a pause longer than ``net_ticktime``. The frozen node
          never sees the others vanish; on resume it races them: if it hears first
          that they closed its connections, it pauses itself and rejoins, but if it
          is reconnected first, Mnesia reports a partition that nothing heals (2 of
          4 tries here).
          The guide says so: pause_minority "will do nothing to defend against
          partitions caused by cluster nodes being suspended". A partition, by
          contrast, is healed: the cut-off node sees itself in a minority, pauses,
          and starts again once the others are back.
        * ``ignore``: pauses and partitions alike (nothing heals a split).
        * ``autoheal``: nothing; it restarts the losing side itself.
        """
        return {"pause_minority": ("pause",), "ignore": ("pause", "partition")}.get(
            self.partition_handling, ())
    name: str = "rabbitmq"
    ports: Mapping[str, int] = field(default_factory=lambda: {
        "epmd": 4369, "dist": 25672, "amqp": 5672, "http": 15672})
    peer_roles: tuple[str, ...] = ("epmd", "dist")
    #: the role the harness hands out per node is the management API's, because
    #: leader discovery reads the queue's leader there; a client finds its node's
    #: AMQP port beside it in ``nodes``
    client_role: str = "http"
    peer_addressing: str = "named"
    workloads: tuple[str, ...] = ("queue",)

    def __post_init__(self) -> None:
        if self.queue not in QUEUE_TYPES:
            raise ValueError(f"queue must be one of {', '.join(QUEUE_TYPES)}, "
                             f"not {self.queue!r}")
        if self.partition_handling not in PARTITION_HANDLING:
            raise ValueError(f"partition_handling must be one of "
                             f"{', '.join(PARTITION_HANDLING)}, not {self.partition_handling!r}")
        self.net_ticktime_s = int(self.net_ticktime_s)
        if self.net_ticktime_s < 2:
            raise ValueError(f"net_ticktime_s must be at least 2, not {self.net_ticktime_s}")

    @property
    def election_timeout_ms(self) -> float:
        """How long a cut-off peer goes unnoticed (the lower end of Erlang's tick window);
        quorum queues' Raft elections follow the node-down it brings."""
        return 0.75 * self.net_ticktime_s * 1000

    def conf(self, ctx: NodeContext) -> list[str]:
        return [
            "loopback_users = none",
            f"listeners.tcp.default = {self.ports['amqp']}",
            f"management.tcp.port = {self.ports['http']}",
            f"cluster_partition_handling = {self.partition_handling}",
            "collect_statistics_interval = 1000",
            "log.console = true",
            "log.console.level = info",
            "log.file = false",
        ]

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        d = ctx.data_dir
        env = {
            **ctx.env,
            "HOME": d,
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_DIST_PORT": str(self.ports["dist"]),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel net_ticktime {self.net_ticktime_s}",
            "PATH": f"{RMQ_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        conf = "".join(f"{ln}\n" for ln in self.conf(ctx))
        lines = [
            "set -e",
            f"export RABBITMQ_NODENAME=rabbit@{ctx.name}",
            f"printf %s '{COOKIE}' > {d}/.erlang.cookie",
            f"chmod 400 {d}/.erlang.cookie",
            f"cat > {d}/rabbitmq.conf <<'EOF'\n{conf}EOF",
            f"echo '[rabbitmq_management].' > {d}/enabled_plugins",
            f"mkdir -p {d}/log",
        ]
        # Every node boots at once, then makes sure it is a member (member_eval: the
        # first seeds, the others join it; a node that lost its data rejoins). Peer
        # discovery at boot raced the first node's own first boot. The marker is the
        # adapter's own record that the node was a member, fsynced with its directory
        # so that it outlives a crash that loses what RabbitMQ did not sync.
        marker = f"{d}/joined"
        lines += [
            "rabbitmq-server &",
            "pid=$!",
            "until rabbitmqctl -q wait --timeout 60 --pid $pid; do kill -0 $pid; done",
            f"until rabbitmqctl -q eval {shlex.quote(member_eval(ctx.name, ctx.nodes, marker))}"
            "; do kill -0 $pid; sleep 1; done",
            f"touch {marker}",
            f"sync {marker} {d}",
            "wait $pid",
        ]
        return NodeLaunch(("/bin/sh", "-c", "\n".join(lines)), env)

    def image(self) -> ImageSpec:
        return ImageSpec(name="harness-rabbitmq", base=BaseSpec(packages=BASE_PACKAGES),
                         dockerfile='ENTRYPOINT ["/usr/bin/tini", "--"]\n')

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> RabbitQueueClient:
        if not nodes:
            raise ValueError("the RabbitMQ client needs every node's addresses")
        roles = next((r for r in nodes.values() if r.get(self.client_role) == address), None)
        if roles is None:
            raise ValueError(f"{address} is no node's {self.client_role} address")
        return RabbitQueueClient(roles["amqp"], worker=worker, timeout_s=timeout_s)

    # -- readiness and discovery -----------------------------------------------------

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float = 1.0
              ) -> bool:
        """Every node running in one cluster, the queue declared and replicated on all.

        The queue is declared here, once every node has joined: a quorum
        queue's members are the cluster's nodes at declaration time.
        """
        want = {f"rabbit@{n}" for n in nodes}
        for roles in nodes.values():
            status, body = management(roles["http"], "GET", "/api/nodes?columns=name,running",
                                      timeout_s=timeout_s)
            if status != 200 or not isinstance(body, list):
                return False
            if {b.get("name") for b in body if b.get("running")} != want:
                return False
        first = next(iter(nodes.values()))
        if not self._declare(first, timeout_s=max(timeout_s, 5.0)):
            return False
        for roles in nodes.values():
            if self._replicas(roles["http"], timeout_s=timeout_s) != want:
                return False
        return True

    def _declare(self, roles: Mapping[str, Address], *, timeout_s: float) -> bool:
        if self.queue == "mirrored":
            status, _ = management(roles["http"], "PUT", "/api/policies/%2F/ha-all", {
                "pattern": f"^{QUEUE}$", "apply-to": "queues",
                "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},
                timeout_s=timeout_s)
            if status not in (201, 204):
                return False
        args = ({"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}
                if self.queue == "quorum" else {})
        try:
            conn = connect(roles["amqp"], timeout_s=timeout_s)
        except Exception:
            return False
        try:
            conn.channel().queue_declare(QUEUE, durable=True, arguments=args)
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _queue_info(self, http: Address, *, timeout_s: float) -> dict[str, Any] | None:
        """The queue as one node's management API shows it. With a member down, a
        quorum queue's answer waits about 2 s on that member (measured), so the
        call gets at least QUEUE_INFO_TIMEOUT_S whatever the caller asked."""
        status, body = management(http, "GET", f"/api/queues/%2F/{urllib.parse.quote(QUEUE)}",
                                  timeout_s=max(timeout_s, QUEUE_INFO_TIMEOUT_S))
        return body if status == 200 and isinstance(body, dict) else None

    def _replicas(self, http: Address, *, timeout_s: float) -> set[str] | None:
        """The nodes holding an in-sync replica of the queue, as one node reports them."""
        q = self._queue_info(http, timeout_s=timeout_s)
        if q is None:
            return None
        if self.queue == "quorum":
            return set(q.get("online") or [])
        node = q.get("node")
        return {node, *(q.get("synchronised_slave_nodes") or [])} if node else None

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """The node that leads the queue (quorum leader, or mirrored master) by a
        majority of the nodes' answers, so a nemesis can isolate it."""
        votes: dict[str, int] = {}
        for addr in client_addresses.values():
            q = self._queue_info(addr, timeout_s=timeout_s)
            if q is None:
                continue
            node = q.get("leader") if self.queue == "quorum" else q.get("node")
            if isinstance(node, str) and node.startswith("rabbit@"):
                name = node.removeprefix("rabbit@")
                votes[name] = votes.get(name, 0) + 1
        return next((n for n, v in votes.items() if v > len(client_addresses) // 2), None)
