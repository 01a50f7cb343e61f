"""The asyncio node: drives the sans-IO replica with real time, disk and TCP.

Run one per machine or container::

    python -m reference_system.node --id 1 \\
        --peer-listen 127.0.0.1:7001 \\
        --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 \\
        --http 127.0.0.1:8001 --data-dir /var/lib/refsys/1 [--worker]

``--peers`` gives how *this* node reaches each other node (through a proxy, if
the harness interposes one); the membership is this node plus those peers.

The driver loop (why it is shaped like this):

* Every input (peer message, tick, client command) is one call into the
  replica on the event-loop thread; its effects are queued.
* One flusher task writes all queued records and does *one* fsync (group
  commit) in a single I/O thread, writes a snapshot if one is due, and only
  then sends the messages and answers the clients queued with them. A message
  from a step that wrote nothing still waits for earlier unsynced records: it
  may depend on them (a re-sent promise).
* An fsync or write error stops the node (exit status 2): after a failed
  fsync the page cache cannot be trusted.

Followers forward client commands to the leader over the peer link (not
HTTP), so a partition between nodes cuts forwarding exactly as it cuts the
protocol, and the client gets the leader's answer unchanged. When no leader
is known, or the link to it is down, nothing was sent: a definite 503.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
import signal
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_system.api import start_http_server
from reference_system.bugs import bugs_from_env
from reference_system.codec import CodecError, decode_message, encode_message
from reference_system.leases import LeaseTracker
from reference_system.messages import Effects, Envelope, Record, Snapshot
from reference_system.peers import PeerTransport, encode_frame
from reference_system.replica import Config, NotLeader, Replica, Role
from reference_system.state_machine import WorkQueueMachine
from reference_system.storage import Storage, StorageFailed

__all__ = ["Node", "NodeConfig", "main", "parse_args", "status_for"]

log = logging.getLogger("refsys.node")

_DROPPED = object()

STATUS_FOR_ERROR = {
    "unknown": 404,
    "stale": 409,
    "not_processing": 409,
    "exists": 409,
    "mismatch": 409,
    "bad_command": 400,
}


def status_for(result: Any) -> int:
    """The HTTP status of a state-machine result."""
    if isinstance(result, dict) and "error" in result:
        return STATUS_FOR_ERROR.get(result["error"], 400)
    return 200


def _definite(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "definite": True, "message": message, **extra}


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs; times in the unit their name ends with."""

    node_id: int
    peer_listen: tuple[str, int]
    peers: dict[int, tuple[str, int]]
    http: tuple[str, int]
    data_dir: Path
    lease_ms: float = 5000.0
    max_attempts: int = 5
    request_timeout_s: float = 5.0
    tick_ms: float = 10.0
    worker: bool = False
    work_ms: float = 100.0
    worker_poll_ms: float = 100.0
    health_lag_slots: int = 64
    max_body_bytes: int = 1 << 20
    paxos: Config = field(default_factory=Config)
    bugs: frozenset[str] = frozenset()


class Node:
    """One running replica with its HTTP API, peer links, lease expiry and worker."""

    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.id = cfg.node_id
        self.machine = WorkQueueMachine(max_attempts=cfg.max_attempts, bugs=cfg.bugs)
        self.storage = Storage(cfg.data_dir, bugs=cfg.bugs)
        self.leases = LeaseTracker(lease_ms=cfg.lease_ms, bugs=cfg.bugs)
        self.core: Replica | None = None
        self.transport: PeerTransport | None = None
        self.http: asyncio.Server | None = None
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self._io = ThreadPoolExecutor(1, thread_name_prefix=f"refsys-io-{self.id}")
        self._unsynced: list[Record] = []
        self._snapshot: Snapshot | None = None
        self._held: list[Envelope] = []
        self._to_propose: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._forwards: dict[int, asyncio.Future[tuple[int, Any]]] = {}
        self._expiring: set[tuple[str, int, int]] = set()
        self._cids = itertools.count()
        self._fids = itertools.count()
        self._incarnation = uuid.uuid4().hex[:12]
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.worker: Any = None

    # ------------------------------------------------------------ lifecycle

    @staticmethod
    def now_ms() -> float:
        """The node's monotonic clock."""
        return time.monotonic() * 1000.0

    async def start(self) -> None:
        """Recover from disk, then serve peers and clients."""
        from reference_system.api import Api  # the API and worker use the node
        from reference_system.worker import Worker

        loop = asyncio.get_running_loop()
        snap, records = await loop.run_in_executor(self._io, self.storage.recover)
        nodes = [self.id, *self.cfg.peers]
        self.core = Replica(
            self.id,
            nodes,
            self.machine,
            now_ms=self.now_ms(),
            rng=random.Random(),
            config=self.cfg.paxos,
            snapshot=snap,
            records=records,
            bugs=self.cfg.bugs,
        )
        self.transport = PeerTransport(self.id, self.cfg.peer_listen, self.cfg.peers,
                                       self._on_peer, on_closed=self._on_peer_closed)
        await self.transport.start()
        api = Api(self)
        host, port = self.cfg.http
        self.http = await start_http_server(
            api.handle, host, port, max_body_bytes=self.cfg.max_body_bytes
        )
        self._tasks = [
            asyncio.create_task(self._ticker(), name="ticker"),
            asyncio.create_task(self._flusher(), name="flusher"),
            asyncio.create_task(self._expiry(), name="expiry"),
        ]
        for t in self._tasks:
            t.add_done_callback(self._task_ended)
        if self.cfg.worker:
            self.worker = Worker(self, work_ms=self.cfg.work_ms, poll_ms=self.cfg.worker_poll_ms)
            self._tasks.append(asyncio.create_task(self.worker.run(), name="worker"))
        log.info(
            "node %s serving http on %s:%s, bugs=%s", self.id, host, port, sorted(self.cfg.bugs)
        )

    async def stop(self) -> None:
        """Stop serving and close everything (also after a fatal error)."""
        for t in [*self._tasks, *self._background]:
            t.cancel()
        for t in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.http is not None:
            self.http.close()
        if self.transport is not None:
            await self.transport.stop()
        self._io.shutdown(wait=True)
        self.storage.close()

    def _fail(self, exc: BaseException) -> None:
        """Fail-stop: a bug in the core or a storage error leaves state we
        cannot trust, so the node exits instead of limping on."""
        if self.fatal is None:
            log.critical("stopping after a fatal error", exc_info=exc)
            self.fatal = exc
        self.stopped.set()

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ driving the core

    def _absorb(self, fx: Effects) -> None:
        if fx.empty():
            return
        self._unsynced.extend(fx.records)
        if fx.snapshot is not None:
            self._snapshot = fx.snapshot
        self._held.extend(fx.messages)
        if fx.early:
            self._send(fx.early)
        for a in fx.applied:  # chosen means durable on a quorum: answer now
            self._resolve(zip(a.value, a.results, strict=True))
        self._resolve((c, _DROPPED) for c in fx.dropped)
        if fx.records or fx.messages or fx.snapshot is not None:
            self._wake.set()

    def _send(self, envelopes: list[Envelope]) -> None:
        assert self.transport is not None
        frames: dict[int, bytes] = {}
        for env in envelopes:
            key = id(env.msg)
            if key not in frames:
                frames[key] = encode_frame(encode_message(env.msg))
            self.transport.send(env.dst, frames[key])

    def _resolve(self, outcomes: Iterable[tuple[Any, Any]]) -> None:
        for cmd, res in outcomes:
            cid = cmd.get("cid") if isinstance(cmd, dict) else None
            fut = self._waiters.get(cid) if isinstance(cid, str) else None
            if fut is not None and not fut.done():
                fut.set_result(res)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.tick_ms / 1000.0)
            assert self.core is not None
            self._absorb(self.core.tick(self.now_ms()))

    def _persist(self, records: list[Record], snap: Snapshot | None, state: list[Record]) -> None:
        if records:
            self.storage.append(records)
            self.storage.sync()
        if snap is not None:
            self.storage.install_snapshot(snap, state)

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            core = self.core
            assert core is not None
            if self._to_propose:
                cmds, self._to_propose = self._to_propose, []
                try:
                    self._absorb(core.propose(cmds, self.now_ms()))
                except NotLeader:
                    self._resolve((c, _DROPPED) for c in cmds)
            self._wake.clear()
            records, self._unsynced = self._unsynced, []
            snap, self._snapshot = self._snapshot, None
            held, self._held = self._held, []
            marker = core.sync_marker()
            if records or snap is not None:
                state = core.durable_records() if snap is not None else []
                try:
                    await loop.run_in_executor(self._io, self._persist, records, snap, state)
                except (StorageFailed, OSError) as e:
                    self._fail(e)
                    return
            self._send(held)
            self._absorb(core.durable(marker, self.now_ms()))

    def _on_peer(self, src: int, obj: Any) -> None:
        assert self.core is not None
        t = obj.get("t") if isinstance(obj, dict) else None
        if t == "fwd":
            self._spawn(self._serve_forward(src, obj))
            return
        if t == "fwd_reply":
            fut = self._forwards.get(obj.get("fid"))
            if fut is not None and not fut.done():
                fut.set_result((int(obj.get("status", 504)), obj.get("body")))
            return
        try:
            msg = decode_message(obj)
        except CodecError as e:
            log.warning("bad message from %s: %s", src, e)
            return
        if msg.src != src:
            log.warning("message claims src %s on the link from %s", msg.src, src)
            return
        try:
            self._absorb(self.core.handle(msg, self.now_ms()))
        except Exception as e:
            self._fail(e)

    def _on_peer_closed(self, src: int) -> None:
        """The link from ``src`` closed: if it was the leader's, failover starts sooner."""
        assert self.core is not None
        try:
            self._absorb(self.core.link_lost(src, self.now_ms()))
        except Exception as e:
            self._fail(e)

    # ------------------------------------------------------------ client commands

    async def execute(self, command: dict[str, Any]) -> tuple[int, Any]:
        """Run a state-machine command through the log: (HTTP status, body)."""
        core = self.core
        assert core is not None and self.transport is not None
        if self.fatal is not None:
            return 503, _definite("unavailable", "the node is stopping")
        if core.role is Role.LEADER:
            return await self._propose(command)
        leader = core.leader_id if core.leader_known(self.now_ms()) else None
        if leader is None or leader == self.id:
            return 503, _definite("no_leader", "no leader is known; nothing was proposed")
        if not self.transport.connected(leader):
            return 503, _definite(
                "no_leader", "the leader is unreachable; nothing was proposed", leader=leader
            )
        return await self._forward(leader, command)

    async def _propose(self, command: dict[str, Any]) -> tuple[int, Any]:
        """Queue a command for the flusher, which proposes everything queued
        during one fsync as one batch (one slot), then wait for its result."""
        core = self.core
        assert core is not None
        if core.role is not Role.LEADER:
            return 503, _definite(
                "not_leader", "not the leader; nothing was proposed", leader=core.leader_id
            )
        cid = f"{self.id}:{self._incarnation}:{next(self._cids)}"
        cmd = {**command, "cid": cid, "ts": int(time.time() * 1000)}
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[cid] = fut
        self._to_propose.append(cmd)
        self._wake.set()
        if "ack_before_quorum" in self.cfg.bugs and cmd.get("op") in ("write", "enqueue"):
            # Bug "ack_before_quorum": answer before any quorum accepted the command.
            self._waiters.pop(cid, None)
            early = {"ok": True, "id": cmd.get("id")} if cmd["op"] == "enqueue" else {"ok": True}
            return 200, early
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                res = await fut
        except TimeoutError:
            return 504, {
                "error": "timeout",
                "definite": False,
                "message": "proposed but not known to be chosen in time",
            }
        finally:
            self._waiters.pop(cid, None)
        if res is _DROPPED:
            return 503, _definite("not_leader", "leadership lost before proposing; not proposed")
        return status_for(res), res

    async def _forward(self, leader: int, command: dict[str, Any]) -> tuple[int, Any]:
        assert self.transport is not None
        fid = next(self._fids)
        fut: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._forwards[fid] = fut
        self.transport.send(
            leader, encode_frame({"t": "fwd", "src": self.id, "fid": fid, "cmd": command})
        )
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                return await fut
        except TimeoutError:
            return 504, {
                "error": "timeout",
                "definite": False,
                "message": "forwarded to the leader; no answer in time",
            }
        finally:
            self._forwards.pop(fid, None)

    async def _serve_forward(self, src: int, obj: dict[str, Any]) -> None:
        assert self.core is not None and self.transport is not None
        cmd = obj.get("cmd")
        if not isinstance(cmd, dict):
            status, body = 400, _definite("bad_request", "forwarded command is not an object")
        elif self.core.role is not Role.LEADER:
            status, body = (
                503,
                _definite(
                    "not_leader", "not the leader; nothing was proposed", leader=self.core.leader_id
                ),
            )
        else:
            status, body = await self._propose(cmd)
        self.transport.send(
            src,
            encode_frame({"t": "fwd_reply", "fid": obj.get("fid"), "status": status, "body": body}),
        )

    # ------------------------------------------------------------ leases

    async def _expiry(self) -> None:
        period_s = min(self.cfg.lease_ms / 10.0, 100.0) / 1000.0
        while True:
            await asyncio.sleep(period_s)
            core = self.core
            assert core is not None
            now = self.now_ms()
            processing = self.machine.processing()
            self.leases.observe(processing, now)
            current = {(i, t, r) for i, (t, r) in processing.items()}
            self._expiring &= current
            if core.role is not Role.LEADER:
                continue
            for key in self.leases.due(now, core.leader_since_ms):
                if key not in self._expiring:
                    self._expiring.add(key)
                    self._spawn(self._expire(key))

    async def _expire(self, key: tuple[str, int, int]) -> None:
        item_id, token, renewals = key
        status, body = await self._propose(
            {"op": "expire", "id": item_id, "token": token, "renewals": renewals}
        )
        if status != 200:
            self._expiring.discard(key)
        else:
            log.info("expired %s (token %s): %s", item_id, token, body)

    # ------------------------------------------------------------ introspection

    def status(self, *, brief: bool = False) -> dict[str, Any]:
        """What /status shows; ``brief`` leaves out what costs O(items)."""
        core = self.core
        assert core is not None
        now = self.now_ms()
        out: dict[str, Any] = {
            "id": self.id,
            "role": core.role.value,
            "leader": core.leader_id if core.leader_known(now) else None,
            "ballot": list(core.promised),
            "commit": core.leader_commit,
            "applied": core.applied,
            "snapshot": core.snapshot_slot,
            "healthy": self.healthy(),
        }
        if not brief:
            out["items"] = self.machine.counts()
            out["bugs"] = sorted(self.cfg.bugs)
            out["fsyncs"] = self.storage.fsyncs
            out["worker"] = self.worker.stats() if self.worker is not None else None
        return out

    def replica_state(self) -> dict[str, Any]:
        """This node's applied index and state machine contents, read locally.

        Deliberately not through the log: the point is to see what *this*
        replica applied, divergent or behind, not what the cluster agrees on.
        Taken in one step on the event loop, so index and contents match.
        """
        core = self.core
        assert core is not None
        return {"node": self.id, "applied": core.applied, **self.machine.contents()}

    def leads(self) -> bool:
        """This node is the leader now (what a load balancer that prefers it asks)."""
        core = self.core
        return core is not None and self.fatal is None and core.role is Role.LEADER

    def healthy(self) -> bool:
        """Serving-ready: a live leader is known and this node is caught up."""
        core = self.core
        if core is None or self.fatal is not None:
            return False
        return (
            core.leader_known(self.now_ms())
            and core.leader_commit - core.applied <= self.cfg.health_lag_slots
        )


# ---------------------------------------------------------------- command line


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _peers(text: str) -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    for part in filter(None, text.split(",")):
        ident, sep, addr = part.partition("=")
        if not sep or not ident.isdigit():
            raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, got {part!r}")
        out[int(ident)] = _addr(addr)
    return out


def parse_args(argv: list[str] | None = None) -> NodeConfig:
    """The node's configuration from the command line and ``REFSYS_BUG``."""
    p = argparse.ArgumentParser(
        prog="python -m reference_system.node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--id", type=int, required=True, help="this node's id (an integer)")
    p.add_argument("--peer-listen", type=_addr, required=True, help="HOST:PORT for peer RPC")
    p.add_argument(
        "--peers",
        type=_peers,
        required=True,
        help="the other nodes: ID=HOST:PORT,... (how this node reaches them)",
    )
    p.add_argument("--http", type=_addr, required=True, help="HOST:PORT for the client API")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--lease-ms", type=float, default=5000.0)
    p.add_argument("--max-attempts", type=int, default=5)
    p.add_argument("--request-timeout-s", type=float, default=5.0)
    p.add_argument("--worker", action="store_true", help="run the worker loop")
    p.add_argument("--work-ms", type=float, default=100.0, help="simulated processing time")
    p.add_argument("--heartbeat-ms", type=float, default=50.0)
    p.add_argument("--election-timeout-ms", type=float, default=300.0)
    p.add_argument("--snapshot-every-slots", type=int, default=2000)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    if a.id in a.peers:
        p.error("--peers must not include this node's own id")
    logging.basicConfig(
        level=a.log_level.upper(),
        format=f"%(asctime)s node{a.id} %(levelname)s %(name)s: %(message)s",
    )
    return NodeConfig(
        node_id=a.id,
        peer_listen=a.peer_listen,
        peers=a.peers,
        http=a.http,
        data_dir=a.data_dir,
        lease_ms=a.lease_ms,
        max_attempts=a.max_attempts,
        request_timeout_s=a.request_timeout_s,
        worker=a.worker,
        work_ms=a.work_ms,
        paxos=Config(
            heartbeat_ms=a.heartbeat_ms,
            election_timeout_ms=a.election_timeout_ms,
            snapshot_every_slots=a.snapshot_every_slots,
        ),
        bugs=bugs_from_env(),
    )


async def run(cfg: NodeConfig) -> int:
    """Run a node until SIGTERM/SIGINT or a fatal storage error."""
    node = Node(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, node.stopped.set)
    await node.start()
    await node.stopped.wait()
    await node.stop()
    return 2 if node.fatal is not None else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m reference_system.node``."""
    cfg = parse_args(argv)
    return asyncio.run(run(cfg))


if __name__ == "__main__":
    sys.exit(main())
