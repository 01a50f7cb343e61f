"""Redis 7 with Sentinel (Debian's ``redis-server``, ``redis-sentinel``) as a plug-in system.

Each node runs a Redis server and a Sentinel: ``n1`` starts as the primary,
the others as its replicas, and three Sentinels (quorum 2) watch the primary
and promote a replica when a majority of them cannot reach it. This is the
deployment Jepsen tested in 2013: replication is asynchronous and nothing
stops a primary cut off from the Sentinels from acknowledging writes, which
are thrown away when it comes back as a replica of the promoted one. A
campaign with a partition that isolates the primary together with the
clients pinned to it must find acknowledged items lost.

Replicas and Sentinels announce addresses to each other, so the adapter asks
for *named* peer addressing: every node reaches ``n2:6379`` by that name and
the Docker backend routes it through the link's proxy. The configuration
files are written on the node's data volume at its first start only, so the
rewrites Redis and Sentinel make when the roles change survive a restart, as
they would on a real machine.

The client (:mod:`harness.systems.redis_client`) is redis-py with its Sentinel
support, asking the Sentinel of the node it is pinned to first where the primary
is; ``client_retries`` sets redis-py's ``Retry`` (None: redis-py's default, which
for a Sentinel pool resends nothing). The adapter's own probes (``ready``,
``leader``, replica reads) use redis-py clients too.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from harness.cluster.image import BaseSpec, ImageSpec
from harness.errors import HarnessError
from harness.system import Address, NodeContext, NodeLaunch
from harness.systems.redis_client import (
    MASTER,
    RedisQueueClient,
    primary_of,
    raw_client,
    role_vote,
)

__all__ = ["RedisSentinel", "read_replica"]

#: python3 and haproxy let the proxy container reuse this base (one debootstrap)
BASE_PACKAGES = ("redis-server", "redis-sentinel", "iptables", "tini", "python3", "haproxy",
                 "iproute2", "procps")


@dataclass
class RedisSentinel:
    """Adapter for Redis + Sentinel; the timings are Sentinel's own settings, in ms."""

    down_after_ms: int = 1500
    failover_timeout_ms: int = 3000
    #: the work queue's lease (a client-side protocol: see redis_client)
    lease_ms: float = 2000.0
    #: takeover is client-side here: the next claim after a lease's deadline takes
    #: the item, so the grace covers only a final drain's pause between claims
    takeover_grace_ms: float = 2000.0
    #: Redis's ``appendfsync``: "always" makes a kill lose nothing it acked
    appendfsync: str = "everysec"
    #: redis-py's resends of a failed command (``Retry``); None keeps redis-py's default
    client_retries: int | None = None
    name: str = "redis"
    ports: Mapping[str, int] = field(
        default_factory=lambda: {"redis": 6379, "sentinel": 26379})
    peer_roles: tuple[str, ...] = ("redis", "sentinel")
    client_role: str = "redis"
    peer_addressing: str = "named"
    workloads: tuple[str, ...] = ("queue",)

    @property
    def election_timeout_ms(self) -> float:
        """Sentinels start a failover once the primary was silent this long (``StatesTimeouts``)."""
        return float(self.down_after_ms)

    def redis_conf(self, ctx: NodeContext) -> list[str]:
        primary = ctx.nodes[0]
        lines = [
            "bind 0.0.0.0", "protected-mode no", f"port {ctx.listen['redis'].port}",
            f"dir {ctx.data_dir}", "appendonly yes", f"appendfsync {self.appendfsync}",
            f"replica-announce-ip {ctx.name}", f"replica-announce-port {self.ports['redis']}",
            "repl-diskless-sync-delay 0", f"logfile {ctx.data_dir}/redis.log",
        ]
        if ctx.name != primary:
            lines.append(f"replicaof {primary} {self.ports['redis']}")
        return lines

    def sentinel_conf(self, ctx: NodeContext) -> list[str]:
        quorum = len(ctx.nodes) // 2 + 1
        return [
            f"port {ctx.listen['sentinel'].port}", "protected-mode no", f"dir {ctx.data_dir}",
            "sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
            f"sentinel announce-ip {ctx.name}",
            f"sentinel announce-port {self.ports['sentinel']}",
            f"sentinel monitor {MASTER} {ctx.nodes[0]} {self.ports['redis']} {quorum}",
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {MASTER} 1",
            'logfile ""',
        ]

    def launch(self, ctx: NodeContext) -> NodeLaunch:
        d = ctx.data_dir

        def write_once(path: str, lines: list[str]) -> str:
            body = "".join(f"{ln}\n" for ln in lines)
            return f"[ -f {path} ] || printf %s {shlex.quote(body)} > {path}"

        script = "\n".join([
            "set -e",
            write_once(f"{d}/redis.conf", self.redis_conf(ctx)),
            write_once(f"{d}/sentinel.conf", self.sentinel_conf(ctx)),
            f"redis-server {d}/redis.conf &",
            f"exec redis-sentinel {d}/sentinel.conf",
        ])
        return NodeLaunch(("/bin/sh", "-c", script), dict(ctx.env))

    def log_files(self, node: str) -> tuple[str, ...]:
        """The Redis server logs to a file (the node's output is its Sentinel's)."""
        return ("redis.log",)

    def image(self) -> ImageSpec:
        return ImageSpec(name="harness-redis", base=BaseSpec(packages=BASE_PACKAGES),
                         dockerfile='ENTRYPOINT ["/usr/bin/tini", "--"]\n')

    def client(self, workload: str, address: Address, *, worker: str, timeout_s: float = 5.0,
               nodes: Mapping[str, Mapping[str, Address]] | None = None) -> RedisQueueClient:
        if not nodes:
            raise ValueError("the Redis client needs every node's addresses")
        pinned = next((n for n, roles in nodes.items() if roles.get("redis") == address),
                      next(iter(nodes)))
        return RedisQueueClient(pinned, nodes, worker=worker, timeout_s=timeout_s,
                                lease_ms=self.lease_ms, retries=self.client_retries)

    def ready(self, nodes: Mapping[str, Mapping[str, Address]], *, timeout_s: float = 1.0
              ) -> bool:
        """One primary that every node agrees on, every replica's link to it up, and
        every Sentinel naming it and knowing all replicas and all other Sentinels."""
        n = len(nodes)
        primary = self.leader({k: v["redis"] for k, v in nodes.items()}, timeout_s=timeout_s)
        if primary is None:
            return False
        for node, roles in nodes.items():
            conn, sentinel = raw_client(roles["redis"], timeout_s=timeout_s), \
                raw_client(roles["sentinel"], timeout_s=timeout_s)
            try:
                if role_vote(conn, node) != primary:
                    return False
                if node != primary and "master_link_status:up" not in str(
                        conn.execute_command("INFO", "replication")):
                    return False
                if primary_of(sentinel) != primary:
                    return False
                for what in ("replicas", "sentinels"):
                    known = sentinel.execute_command("SENTINEL", what, MASTER)
                    if not isinstance(known, list) or len(known) != n - 1:
                        return False
            except RedisError:
                return False
            finally:
                conn.close()
                sentinel.close()
        return True

    def replica_state(self, node: str, addresses: Mapping[str, Address], *,
                      timeout_s: float = 5.0) -> dict[str, Any]:
        """That server's own queue keys (replicas answer reads from their own data).

        Replication is asynchronous, so replicas that still differ from the
        primary after the heal and the catch-up wait are a finding about
        Redis, not an adapter error.
        """
        conn = raw_client(addresses[self.client_role], timeout_s=timeout_s)
        try:
            return read_replica(conn)
        finally:
            conn.close()

    def leader(self, client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0
               ) -> str | None:
        """The primary by a majority of the nodes' own ``ROLE`` answers (a replica names
        the primary it follows), so a nemesis can isolate it."""
        votes: dict[str, int] = {}
        for node, addr in client_addresses.items():
            conn = raw_client(addr, timeout_s=timeout_s)
            try:
                name = role_vote(conn, node)
            finally:
                conn.close()
            if name:
                votes[name] = votes.get(name, 0) + 1
        return next((n for n, v in votes.items() if v > len(client_addresses) // 2), None)


def read_replica(conn: Any, *, attempts: int = 3) -> dict[str, Any]:
    """One Redis server's queue keys, at the replication offset it has processed.

    ``conn`` is a :func:`~harness.systems.redis_client.raw_client` (unparsed
    replies, through ``execute_command``).

    ``applied`` is ``[offset, replication id]``: offsets count bytes of one
    replication stream, so they are comparable only under the same id (a
    replica in sync shares its primary's). The server keeps applying what its
    primary streams, so the offset is read before and after the keys, and the
    read is repeated when it moved. There is no server digest (``DEBUG
    DIGEST`` is off by default), so the checker hashes the dump.
    """
    for _ in range(attempts):
        before = _replication_position(conn)
        items: dict[str, Any] = {}
        state: dict[str, Any] = {}
        keys = conn.execute_command("KEYS", "q:*")
        if not isinstance(keys, list):
            raise HarnessError(f"KEYS answered {keys!r}")
        for key in sorted(keys):
            value = _read_key(conn, key)
            if key.startswith("q:item:") and isinstance(value, dict):
                items[key.removeprefix("q:item:")] = value
            else:
                state[key] = value
        if _replication_position(conn) == before:
            return {"applied": before, "state": state, "items": items}
    raise HarnessError(f"the replication offset kept moving over {attempts} reads")


def _replication_position(conn: Any) -> list[Any]:
    info = conn.execute_command("INFO", "replication")
    if not isinstance(info, str):
        raise HarnessError(f"INFO replication answered {info!r}")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return [int(fields.get("master_repl_offset", "0")), fields.get("master_replid", "")]


def _read_key(conn: Any, key: str) -> Any:
    """A key's value by its type (a hash as a dict, a sorted set as [member, score] pairs)."""
    kind = conn.execute_command("TYPE", key)
    if kind == "hash":
        flat = conn.execute_command("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2], strict=True))
    if kind == "list":
        return conn.execute_command("LRANGE", key, 0, -1)
    if kind == "zset":
        flat = conn.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
        return [list(p) for p in zip(flat[::2], flat[1::2], strict=True)]
    if kind == "set":
        return sorted(conn.execute_command("SMEMBERS", key))
    if kind == "none":
        return None  # deleted between KEYS and now: the offset check sees the move
    return conn.execute_command("GET", key)
