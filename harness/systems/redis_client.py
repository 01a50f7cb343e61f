"""A Sentinel-aware client of a Redis work queue on redis-py: the reliable-list-queue pattern.

The client is redis-py's own Sentinel support, as Redis users run it:
:class:`redis.sentinel.Sentinel` asks the Sentinels (the one of the node the
client is pinned to first, then the others) where the primary is, and its
connection pool keeps using that primary until a connection fails or the
primary answers ``READONLY`` (it was demoted); then it asks again. Failover is
therefore redis-py's, not ours: an old primary that still answers keeps
getting the writes, which is what users get too. Each operation is one Lua
script, so each step is atomic on the server:

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

Classification, from redis-py's exception types and what was sent: an error
before any byte of the command left (connection refused, connect timeout, no
Sentinel naming a primary: redis-py raises ``ConnectionError``/``TimeoutError``
from ``connect``) is a definite ``fail``, as is an error reply that means the
script never ran (``READONLY`` from a demoted primary, ``LOADING``,
``MASTERDOWN``...); a timeout or lost connection after the command was sent is
``info``; reads that fail are ``fail``. redis-py may resend a command itself
(its ``Retry`` setting; none by default for Sentinel pools): then a "no"
(id exists, stale token) may answer our own earlier attempt, so it is ``info``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address

__all__ = ["MASTER", "RedisQueueClient", "primary_of", "raw_client", "role_vote"]

#: the name the Sentinels monitor the primary under
MASTER = "primary"
READS = frozenset({"read-item"})
OPS = frozenset({"enqueue", "claim", "complete", "renew", "read-item"})
#: error replies that mean the command did not run at all (redis-py names some by class)
NOT_RUN = frozenset({"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "BUSY",
                     "NOSCRIPT", "MISCONF"})
NOT_RUN_TYPES = (ReadOnlyError, BusyLoadingError, NoScriptError, MasterDownError,
                 OutOfMemoryError)

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


def raw_client(address: Address, *, timeout_s: float) -> Redis:
    """A redis-py client to one server that returns replies unparsed (``INFO`` as its
    text, ``HGETALL`` as a flat list), for the adapter's probes and replica reads.

    RESP2, whose replies are flat (RESP3, redis-py's default, answers maps), and no
    retries: a probe that fails says so, and the caller decides.
    """
    r = Redis(host=address.host, port=address.port, socket_timeout=timeout_s,
              socket_connect_timeout=timeout_s, decode_responses=True, protocol=2,
              retry=Retry(ExponentialWithJitterBackoff(), 0))
    r.response_callbacks.clear()  # raw RESP values, as read_replica compares them
    return r


def primary_of(sentinel: Redis) -> str | None:
    """The node a Sentinel names as the primary (None when it does not answer)."""
    try:
        got = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
    except RedisError:
        return None
    if isinstance(got, list) and got and isinstance(got[0], str):
        return got[0]
    return None


def role_vote(conn: Redis, node: str) -> str | None:
    """Which node ``node`` takes for the primary: itself if it is one, else the one it
    replicates (``ROLE``); None when it does not answer."""
    try:
        role = conn.execute_command("ROLE")
    except RedisError:
        return None
    if not isinstance(role, list) or not role:
        return None
    if role[0] == "master":
        return node
    if role[0] == "slave" and len(role) > 1 and isinstance(role[1], str):
        return role[1]
    return None


class _Attempts(threading.local):
    """Per thread (one client per worker thread): how many sends of the current
    command may have run on a server. redis-py's ``Retry`` can resend inside one
    call, so one flag is not enough."""

    may_have_run = 0


_ATTEMPTS = _Attempts()


class _CountedConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, counting sends: an error raised before the
    first send (in ``connect``: refused, connect timeout, no primary named) means
    nothing left, and a ``READONLY`` answer means that send did not run."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # raises before anything is sent
        _ATTEMPTS.may_have_run += 1
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ConnectionError as e:
            # redis-py turns a demoted primary's READONLY into a ConnectionError
            # (and rediscovers): the script did not run there
            if isinstance(e.__context__, ReadOnlyError):
                _ATTEMPTS.may_have_run -= 1
            raise


class _NamedSentinel(Sentinel):
    """redis-py's Sentinel, with the node *names* Sentinels announce mapped to the
    addresses this client reaches them at (published ports on the host)."""

    def __init__(self, sentinels: list[tuple[str, int]],
                 nodes: Mapping[str, Mapping[str, Address]], **kwargs: Any) -> None:
        super().__init__(sentinels, **kwargs)
        self.nodes = nodes

    def discover_master(self, service_name: str) -> tuple[str, int]:
        name, _port = super().discover_master(service_name)
        if name not in self.nodes:
            raise MasterNotFoundError(f"the Sentinels name an unknown primary {name!r}")
        addr = self.nodes[name]["redis"]
        return addr.host, addr.port


class RedisQueueClient:
    """One worker's client, pinned to a node whose Sentinel it asks first."""

    #: Redis keeps no request ids: a resend is a new script call. The enqueue
    #: script refuses an existing id and a completion is checked against the
    #: token, so nothing is applied twice, but the resend's answer does not speak
    #: for the first attempt
    idempotency: str = "none"

    def __init__(self, pinned: str, nodes: Mapping[str, Mapping[str, Address]], *,
                 worker: str, timeout_s: float = 5.0, lease_ms: float = 2000.0,
                 retries: int | None = None) -> None:
        self.nodes = nodes
        self.worker = worker
        self.timeout_s = timeout_s
        self.lease_s = lease_ms / 1000.0
        order = [pinned] + [n for n in nodes if n != pinned]
        sentinel_timeout = min(timeout_s, 1.0)
        self.sentinel = _NamedSentinel(
            [(nodes[n]["sentinel"].host, nodes[n]["sentinel"].port) for n in order], nodes,
            sentinel_kwargs={"socket_timeout": sentinel_timeout,
                             "socket_connect_timeout": sentinel_timeout})
        kwargs: dict[str, Any] = {}
        if retries is not None:  # None: redis-py's own default (no resend)
            kwargs["retry"] = Retry(ExponentialWithJitterBackoff(), retries)
        self.redis: Redis = self.sentinel.master_for(
            MASTER, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            decode_responses=True, connection_class=_CountedConnection, **kwargs)
        self.held: list[dict[str, Any]] = []

    def close(self) -> None:
        self.redis.close()
        self.redis.connection_pool.disconnect()
        for s in self.sentinel.sentinels:
            s.close()

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def retry(self, f: str, value: Any) -> Outcome:
        """Resend: the system has no request ids, so it is simply sent again."""
        return self.invoke(f, value)

    def invoke(self, f: str, value: Any) -> Outcome:
        if f not in OPS:
            return fail(f"unsupported operation {f!r}")
        _ATTEMPTS.may_have_run = 0
        try:
            reply = self._send(f, value)
        except NOT_RUN_TYPES as e:  # BusyLoadingError is a ConnectionError in redis-py
            return fail(f"{type(e).__name__}: {e}")
        except (ConnectionError, TimeoutError) as e:
            why = f"{type(e).__name__}: {e}"
            if f in READS or _ATTEMPTS.may_have_run <= 0:
                return fail(why)
            return info(why)
        except ResponseError as e:
            why = f"{type(e).__name__}: {e}"
            if f in READS or str(e).split(" ", 1)[0] in NOT_RUN:
                return fail(why)
            return info(why)
        return self._outcome(f, value, reply, resent=_ATTEMPTS.may_have_run > 1)

    def _send(self, f: str, value: Any) -> Any:
        r, now = self.redis, time.time()
        if f == "enqueue":
            return r.eval(ENQUEUE, 0, value["id"], str(value.get("payload")))
        if f == "claim":
            return r.eval(CLAIM, 0, repr(now), repr(now + self.lease_s))
        if f == "complete":
            return r.eval(COMPLETE, 0, value["id"], str(value["token"]),
                          str(value.get("result")))
        if f == "renew":
            return r.eval(RENEW, 0, value["id"], str(value["token"]),
                          repr(now + self.lease_s))
        return r.hgetall(f"q:item:{value['id']}")

    def _outcome(self, f: str, value: Any, reply: Any, *, resent: bool = False) -> Outcome:
        if f == "enqueue":
            if reply == 1:
                return ok(value)
            return info("id exists after a resend") if resent else fail("duplicate-id")
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
            if resent and f == "complete":
                return info("stale token after a resend")  # maybe our first attempt won
            return fail("stale-token")
        fields = reply or {}
        if not fields:
            return ok({"id": value["id"], "state": None})
        state = fields.get("state")
        token = fields.get("token")
        return ok({"id": value["id"], "state": state,
                   "attempts": int(fields.get("attempts", 0)),
                   "token": int(token) if token and state == "processing" else None})
