"""A Sentinel-aware client of a Redis work queue: the reliable-list-queue pattern.

Before each operation the client asks a Sentinel where the primary is (the
Sentinel of the node it is pinned to first, then the others, as Sentinel
clients do with their list of Sentinels), then sends the operation to that
primary as one Lua script, so each step is atomic on the server:

* ``q:ready``: the list of queued item ids (enqueue pushes on the left, a
  claim pops from the right);
* ``q:item:<id>``: a hash with the item's ``state``, ``attempts``,
  ``token`` and ``payload``;
* ``q:leases``: a sorted set of held ids scored by their lease deadline
  (wall-clock seconds); a claim that finds no queued item takes one whose
  deadline has passed;
* ``q:token``: a counter; every claim takes the next value as its fencing
  token, and completions and renewals are refused unless they carry the
  item's current token.

Classification: a connection that was refused, or an error reply that
means the script never ran (``READONLY`` from a replica, ``LOADING``,
``MASTERDOWN``...), is a definite ``fail``; a command that was sent and
got no reply is ``info``; reads that fail are ``fail``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address
from harness.systems.resp import Resp, RespConnectionError, RespError

__all__ = ["MASTER", "RedisQueueClient", "primary_of", "role_vote"]

#: the name the Sentinels monitor the primary under
MASTER = "primary"
READS = frozenset({"read-item"})
OPS = frozenset({"enqueue", "claim", "complete", "renew", "read-item"})
#: error replies that mean the command did not run at all
NOT_RUN = frozenset({"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "BUSY",
                     "NOSCRIPT", "MISCONF"})

ENQUEUE = """
local key = 'q:item:' .. ARGV[1]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'state', 'queued', 'attempts', 0, 'payload', ARGV[2])
redis.call('LPUSH', 'q:ready', ARGV[1])
return 1
"""

CLAIM = """
local id = redis.call('RPOP', 'q:ready')
if not id then
  local expired = redis.call('ZRANGEBYSCORE', 'q:leases', '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #expired == 0 then return false end
  id = expired[1]
end
local key = 'q:item:' .. id
local token = redis.call('INCR', 'q:token')
redis.call('HSET', key, 'state', 'processing', 'token', token)
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('ZADD', 'q:leases', ARGV[2], id)
return {id, token}
"""

COMPLETE = """
local key = 'q:item:' .. ARGV[1]
if redis.call('HGET', key, 'state') ~= 'processing'
   or redis.call('HGET', key, 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'state', 'completed', 'result', ARGV[3])
redis.call('ZREM', 'q:leases', ARGV[1])
return 1
"""

RENEW = """
local key = 'q:item:' .. ARGV[1]
if redis.call('HGET', key, 'state') ~= 'processing'
   or redis.call('HGET', key, 'token') ~= ARGV[2] then return 0 end
redis.call('ZADD', 'q:leases', ARGV[3], ARGV[1])
return 1
"""


def primary_of(sentinel: Resp) -> str | None:
    """The node a Sentinel names as the primary (None when it does not answer)."""
    try:
        got = sentinel.command("SENTINEL", "get-master-addr-by-name", MASTER)
    except RespConnectionError:
        return None
    if isinstance(got, list) and got and isinstance(got[0], str):
        return got[0]
    return None


def role_vote(conn: Resp, node: str) -> str | None:
    """Which node ``node`` takes for the primary: itself if it is one, else the one it
    replicates (``ROLE``); None when it does not answer."""
    try:
        role = conn.command("ROLE")
    except RespConnectionError:
        return None
    if not isinstance(role, list) or not role:
        return None
    if role[0] == "master":
        return node
    if role[0] == "slave" and len(role) > 1 and isinstance(role[1], str):
        return role[1]
    return None


class RedisQueueClient:
    """One worker's client, pinned to a node whose Sentinel it asks first."""

    #: Redis keeps no request ids: a resend is a new script call. The enqueue
    #: script refuses an existing id and a completion is checked against the
    #: token, so nothing is applied twice, but the resend's answer does not speak
    #: for the first attempt
    idempotency: str = "none"

    def __init__(self, pinned: str, nodes: Mapping[str, Mapping[str, Address]], *,
                 worker: str, timeout_s: float = 5.0, lease_ms: float = 2000.0) -> None:
        self.nodes = nodes
        self.worker = worker
        self.timeout_s = timeout_s
        self.lease_s = lease_ms / 1000.0
        order = [pinned] + [n for n in nodes if n != pinned]
        self.sentinels = [Resp(nodes[n]["sentinel"], timeout_s=min(timeout_s, 1.0))
                          for n in order]
        self.conns: dict[str, Resp] = {}
        self.held: list[dict[str, Any]] = []

    def close(self) -> None:
        for c in [*self.sentinels, *self.conns.values()]:
            c.close()

    def _primary(self) -> Resp | None:
        for s in self.sentinels:
            name = primary_of(s)
            if name is not None and name in self.nodes:
                if name not in self.conns:
                    self.conns[name] = Resp(self.nodes[name]["redis"], timeout_s=self.timeout_s)
                return self.conns[name]
        return None

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def retry(self, f: str, value: Any) -> Outcome:
        """Resend: the system has no request ids, so it is simply sent again."""
        return self.invoke(f, value)

    def invoke(self, f: str, value: Any) -> Outcome:
        if f not in OPS:
            return fail(f"unsupported operation {f!r}")
        conn = self._primary()
        if conn is None:
            return fail("no-sentinel-answer")
        try:
            reply = self._send(conn, f, value)
        except RespConnectionError as e:
            if f in READS or not e.sent:
                return fail(str(e))
            return info(str(e))
        if isinstance(reply, RespError):
            if f in READS or reply.kind in NOT_RUN:
                return fail(str(reply))
            return info(str(reply))
        return self._outcome(f, value, reply)

    def _send(self, conn: Resp, f: str, value: Any) -> Any:
        now = time.time()
        if f == "enqueue":
            return conn.command("EVAL", ENQUEUE, 0, value["id"], str(value.get("payload")))
        if f == "claim":
            return conn.command("EVAL", CLAIM, 0, repr(now), repr(now + self.lease_s))
        if f == "complete":
            return conn.command("EVAL", COMPLETE, 0, value["id"], str(value["token"]),
                                str(value.get("result")))
        if f == "renew":
            return conn.command("EVAL", RENEW, 0, value["id"], str(value["token"]),
                                repr(now + self.lease_s))
        return conn.command("HGETALL", f"q:item:{value['id']}")

    def _outcome(self, f: str, value: Any, reply: Any) -> Outcome:
        if f == "enqueue":
            return ok(value) if reply == 1 else fail("duplicate-id")
        if f == "claim":
            if reply is None:
                return ok(None)
            got = {"id": reply[0], "token": int(reply[1])}
            self.held.append(got)
            return ok(got)
        if f in ("complete", "renew"):
            if reply == 1:
                return ok(value)
            if f == "renew":
                self.held = [h for h in self.held if h["id"] != value["id"]]
            return fail("stale-token")
        fields = dict(zip(reply[::2], reply[1::2], strict=True)) if reply else {}
        if not fields:
            return ok({"id": value["id"], "state": None})
        state = fields.get("state")
        token = fields.get("token")
        return ok({"id": value["id"], "state": state,
                   "attempts": int(fields.get("attempts", 0)),
                   "token": int(token) if token and state == "processing" else None})
