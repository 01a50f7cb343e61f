"""etcd 3.4 (Debian's ``etcd-server``) as a plug-in system: three members in containers.

A plain use of the public :class:`harness.system.System` protocol. etcd
derives member and cluster ids from the peer URLs every member lists in
``--initial-cluster``, so all members must name a peer by the same URL: the
adapter asks for *named* peer addressing (``http://n2:2380`` everywhere) and
the Docker backend routes each member's connections to that URL through the
proxy of the directed link. Clients are pinned to members (etcd has no load
balancer of its own); a follower forwards writes to the leader and serves
linearizable reads through a read index, so every member serves every
operation. See :mod:`harness.systems.etcd_client` for the operations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.cluster.image import BaseSpec, ImageSpec
from harness.errors import HarnessError
from harness.system import Address, NodeContext, NodeLaunch
from harness.systems.etcd_client import EtcdClient, EtcdError, b64, gateway_call, unb64
from harness.systems.http import HttpJson

__all__ = ["READ_MODES", "Etcd", "replica_dump"]

#: python3 and haproxy let the proxy container reuse this base (one debootstrap)
#: the ``reads`` option's values
READ_MODES = ("linearizable", "serializable")

BASE_PACKAGES = ("etcd-server", "iptables", "tini", "python3", "haproxy", "iproute2",
                 "procps")


@dataclass
class Etcd:
    """Adapter for etcd; timings in ms are etcd's own flags (faster than its defaults,
    so a campaign sees elections within seconds)."""

    heartbeat_ms: int = 50
    #: the nodes' own flag, also how the random nemesis sizes its recipes (StatesTimeouts)
    election_timeout_ms: int = 500
    #: the work queue's lease (a client-side protocol: see etcd_client)
    lease_ms: float = 2000.0
    #: takeover is client-side here: the next claim after a lease's deadline takes
    #: the item, so the grace covers only a final drain's pause between claims
    takeover_grace_ms: float = 2000.0
    name: str = "etcd"
    ports: Mapping[str, int] = field(default_factory=lambda: {"peer": 2380, "client": 2379})
    peer_roles: tuple[str, ...] = ("peer",)
    client_role: str = "client"
    peer_addressing: str = "named"
    workloads: tuple[str, ...] = ("register", "queue")
    #: how the register's reads and the final item reads are served (etcd's own
    #: choice per request): "linearizable" (etcd's default: a read index through
    #: the leader) or "serializable" (the member's local store, which may lag or,
    #: on a member cut off from the leader, be stale; etcd documents this)
    reads: str = "linearizable"

    def __post_init__(self) -> None:
        if self.reads not in READ_MODES:
            raise ValueError(f"reads must be one of {', '.join(READ_MODES)}, not {self.reads!r}")

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        peer, client = self.ports["peer"], self.ports["client"]
        members = ",".join(f"{n}=http://{n}:{peer}" for n in ctx.nodes)
        argv = (
            "etcd",
            "--name", ctx.name,
            "--data-dir", f"{ctx.data_dir}/etcd",
            "--listen-peer-urls", f"http://0.0.0.0:{ctx.listen['peer'].port}",
            "--initial-advertise-peer-urls", f"http://{ctx.name}:{peer}",
            "--listen-client-urls", f"http://0.0.0.0:{ctx.listen['client'].port}",
            "--advertise-client-urls", f"http://{ctx.name}:{client}",
            "--initial-cluster", members,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "harness",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_timeout_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        )
        return NodeLaunch(argv, dict(ctx.env))

    def image(self) -> ImageSpec:
        return ImageSpec(name="harness-etcd", base=BaseSpec(packages=BASE_PACKAGES),
                         dockerfile='ENTRYPOINT ["/usr/bin/tini", "--"]\n')

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> EtcdClient:
        return EtcdClient(address, worker=worker, timeout_s=timeout_s, lease_ms=self.lease_ms,
                          serializable=self.reads == "serializable")

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float = 1.0
              ) -> bool:
        """A leader that a majority of members name."""
        return self.leader({n: r["client"] for n, r in nodes.items()},
                           timeout_s=timeout_s) is not None

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float = 5.0) -> dict[str, Any]:
        """That member's whole keyspace as its own store holds it.

        A *serializable* range is answered from the member's local store, with
        no read index through the leader (a linearizable one would show the
        leader's state on every member); its header's revision is the revision
        the member has applied, so members are compared at equal revisions.
        """
        http = HttpJson(addresses[self.client_role], timeout_s=timeout_s)
        try:
            answer = gateway_call(http, "/v3/kv/range", {
                "key": b64("\0"), "range_end": b64("\0"), "serializable": True})
        except EtcdError as e:
            raise HarnessError(f"{node}: serializable range failed: {e}") from e
        finally:
            http.close()
        return replica_dump(answer)

    def replica_state_at(self, node: str, addresses: Mapping[str, Address], at: int, *,
                         timeout_s: float = 5.0) -> dict[str, Any]:
        """That member's keyspace as its own store held it at revision ``at``
        (:class:`~harness.system.ReadsReplicaAt`): etcd keeps every revision until
        compaction, and a serializable range with ``revision`` reads the member's
        own MVCC store there. ``now`` is the member's current revision (the header's).
        """
        http = HttpJson(addresses[self.client_role], timeout_s=timeout_s)
        try:
            answer = gateway_call(http, "/v3/kv/range", {
                "key": b64("\0"), "range_end": b64("\0"), "serializable": True,
                "revision": str(int(at))})
        except EtcdError as e:
            raise HarnessError(f"{node}: serializable range at revision {at} failed: {e}"
                               ) from e
        finally:
            http.close()
        dump = replica_dump(answer)
        return {**dump, "applied": int(at), "now": dump["applied"]}

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """The member a majority of members name as leader, by name."""
        votes: dict[str, int] = {}
        for addr in client_addresses.values():
            http = HttpJson(addr, timeout_s=timeout_s)
            try:
                status = gateway_call(http, "/v3/maintenance/status", {})
                members = gateway_call(http, "/v3/cluster/member/list", {}).get("members") or []
            except EtcdError:
                continue
            finally:
                http.close()
            names = {str(m.get("ID")): m.get("name") for m in members}
            name = names.get(str(status.get("leader")))
            if name:
                votes[name] = votes.get(name, 0) + 1
        for name, n in votes.items():
            if n > len(client_addresses) // 2:
                return name
        return None


def replica_dump(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A range answer as :meth:`Etcd.replica_state` gives it.

    ``state`` holds every key but the queue's item records, which go to
    ``items`` (the record, plus its ``mod_revision`` as ``token``: the fencing
    token the queue uses). The digest covers each key's value *and* its
    revisions, so two members that hold equal values written at different
    revisions still differ (the dump lists only values; the checker then
    names the digest).
    """
    header = answer.get("header") or {}
    applied = int(header.get("revision", 0))
    state: dict[str, Any] = {}
    items: dict[str, Any] = {}
    rows = []
    for kv in answer.get("kvs") or []:
        key = unb64(kv.get("key")) or ""
        value = unb64(kv.get("value", "")) or ""
        mod = int(kv.get("mod_revision", 0))
        rows.append([key, value, int(kv.get("create_revision", 0)), mod,
                     int(kv.get("version", 0))])
        if key.startswith("q/item/"):
            try:
                rec = json.loads(value)
            except ValueError:
                rec = {"raw": value}
            items[key.removeprefix("q/item/")] = {
                **(rec if isinstance(rec, dict) else {"raw": rec}), "token": mod}
        else:
            state[key] = value
    rows.sort()
    text = json.dumps(rows, separators=(",", ":"))
    return {"applied": applied, "digest": hashlib.sha256(text.encode()).hexdigest(),
            "state": state, "items": items}
