"""The NATS JetStream clients: a work queue over a WorkQueue stream, registers over KV.

nats-py is asyncio-only and the harness calls clients from plain threads, so
each client owns a :class:`NatsLoop`: an event loop on a thread of its own,
to which every operation is submitted and waited for.

Classification, by Jepsen's rule: an operation is ``fail`` only when the
server certainly did nothing with it: the connection could not be made, so
nothing was sent; the server answered "no responders" (nobody took the
request); a CAS whose expected value or revision did not match. nats-py
buffers what is published while it reconnects and sends it afterwards, so a
timeout or a dropped connection after sending is ``info``. Reads change
nothing: a failed read is a ``fail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address

__all__ = ["BUCKET", "CONSUMER", "STREAM", "NatsKvClient", "NatsLoop", "NatsQueueClient",
           "ensure_bucket", "ensure_stream", "stream_leader"]

STREAM = "WORK"
SUBJECT_PREFIX = "q.items."
CONSUMER = "workers"
BUCKET = "registers"

T = TypeVar("T")


class NatsLoop:
    """An asyncio event loop on its own daemon thread, for one synchronous caller."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, timeout_s: float) -> T:
        """Run ``coro`` on the loop; TimeoutError (and the coroutine cancelled) past
        ``timeout_s``."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout=timeout_s)
        except TimeoutError:
            fut.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> NatsLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _quiet(*_: Any) -> None:
    """nats-py's callbacks log every disconnect; the outcomes already say it."""


async def connect(address: Address, *, timeout_s: float, name: str = "harness") -> Any:
    """A connection to one server that keeps reconnecting to it (and only it)."""
    import nats

    # once connected, reconnect for ever; the first connection gets one timeout
    return await asyncio.wait_for(nats.connect(
        servers=[f"nats://{address}"], name=name, connect_timeout=timeout_s,
        allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.25,
        dont_randomize=True, error_cb=_quiet, disconnected_cb=_quiet, reconnected_cb=_quiet,
        closed_cb=_quiet), timeout_s)


async def ensure_stream(address: Address, *, replicas: int, ack_wait_s: float,
                        duplicate_window_s: float, timeout_s: float) -> bool:
    """Create the work stream and its consumer if absent; whether both have a leader
    and every replica is current."""
    from nats.js import api
    from nats.js.errors import NotFoundError

    nc = await connect(address, timeout_s=timeout_s)
    try:
        js = nc.jetstream(timeout=timeout_s)
        try:
            si = await js.stream_info(STREAM)
        except NotFoundError:
            si = await js.add_stream(api.StreamConfig(
                name=STREAM, subjects=[f"{SUBJECT_PREFIX}>"],
                retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
                num_replicas=replicas, duplicate_window=duplicate_window_s))
        try:
            ci = await js.consumer_info(STREAM, CONSUMER)
        except NotFoundError:
            ci = await js.add_consumer(STREAM, api.ConsumerConfig(
                durable_name=CONSUMER, ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=ack_wait_s, max_deliver=-1, max_ack_pending=10000,
                max_waiting=512))
        si = await js.stream_info(STREAM)
        ci = await js.consumer_info(STREAM, CONSUMER)
        return _all_current(si.cluster, replicas) and _all_current(ci.cluster, replicas)
    finally:
        await nc.close()


async def ensure_bucket(address: Address, *, replicas: int, direct: bool,
                        timeout_s: float) -> bool:
    """Create the register bucket if absent; whether its stream has a leader and
    every replica is current."""
    from nats.js.errors import BucketNotFoundError, NotFoundError

    nc = await connect(address, timeout_s=timeout_s)
    try:
        js = nc.jetstream(timeout=timeout_s)
        try:
            await js.key_value(BUCKET)
        except (BucketNotFoundError, NotFoundError):
            await js.create_key_value(bucket=BUCKET, history=1, replicas=replicas,
                                      direct=direct)
        si = await js.stream_info(f"KV_{BUCKET}")
        return _all_current(si.cluster, replicas)
    finally:
        await nc.close()


def _all_current(cluster: Any, replicas: int) -> bool:
    if cluster is None or not cluster.leader:
        return False
    peers = cluster.replicas or []
    return len(peers) == replicas - 1 and all(p.current and not p.offline for p in peers)


async def stream_leader(address: Address, stream: str, *, timeout_s: float) -> str | None:
    """The server name of ``stream``'s leader, as the server at ``address`` reports it."""
    nc = await connect(address, timeout_s=timeout_s)
    try:
        si = await nc.jetstream(timeout=timeout_s).stream_info(stream)
        return si.cluster.leader if si.cluster else None
    finally:
        await nc.close()


class _Base:
    """A connection to one server, opened lazily and kept."""

    def __init__(self, address: Address, *, worker: str, timeout_s: float) -> None:
        self.address = address
        self.worker = worker
        self.timeout_s = timeout_s
        self.loop = NatsLoop()
        self.nc: Any = None
        self.js: Any = None
        self._sent = False  # whether the current operation reached the wire

    async def _connect(self) -> None:
        if self.nc is None or self.nc.is_closed:
            self.nc = await connect(self.address, timeout_s=self.timeout_s, name=self.worker)
            self.js = self.nc.jetstream(timeout=self.timeout_s)
            await self._opened()

    async def _opened(self) -> None:
        """Set up what the client needs on a fresh connection."""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        # the loop's own guard: a little past the operation's timeout
        return self.loop.run(coro, timeout_s=self.timeout_s * 2 + 1)

    def close(self) -> None:
        if self.nc is not None:
            # closing a dead connection: nothing left to release but the loop
            with contextlib.suppress(Exception):
                self._run(self.nc.close())
        self.loop.close()

    def _classify(self, f: str, e: BaseException, reads: Sequence[str]) -> Outcome:
        from nats.errors import NoRespondersError
        from nats.js.errors import NoStreamResponseError

        msg = f"{type(e).__name__}: {e}".strip().rstrip(":")
        # "no responders" (a JetStream publish's NoStreamResponseError is the same
        # answer) comes from the server: nothing had the subject, nothing took it
        if f in reads or not self._sent or isinstance(e, NoRespondersError
                                                      | NoStreamResponseError):
            return fail(msg)
        return info(msg)


class NatsQueueClient(_Base):
    """One worker of the work queue over the WorkQueue stream and its pull consumer."""

    #: each publish carries ``Nats-Msg-Id`` = the item id, and the stream stores a
    #: resend inside its duplicate window once, answering with the first PubAck's
    #: sequence; an ack is idempotent (a second ack of an acked message does nothing)
    idempotency: str = "request-id"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0) -> None:
        super().__init__(address, worker=worker, timeout_s=timeout_s)
        self.psub: Any = None
        self.held: list[dict[str, Any]] = []
        self.msgs: dict[tuple[str, int], Any] = {}

    async def _opened(self) -> None:
        self.psub = await self.js.pull_subscribe_bind(durable=CONSUMER, stream=STREAM)

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def retry(self, f: str, value: Any) -> Outcome:
        """The same publish (same ``Nats-Msg-Id``) or the same ack, sent again."""
        return self.invoke(f, value)

    def invoke(self, f: str, value: Any) -> Outcome:
        self._sent = False
        try:
            return self._run(self._invoke(f, value))
        except Exception as e:
            return self._classify(f, e, ("read-item",))

    async def _invoke(self, f: str, value: Any) -> Outcome:
        await self._connect()
        if f == "enqueue":
            iid = str(value["id"])
            self._sent = True
            await self.js.publish(f"{SUBJECT_PREFIX}{iid}",
                                  json.dumps(value.get("payload")).encode(),
                                  timeout=self.timeout_s, stream=STREAM,
                                  headers={"Nats-Msg-Id": iid})
            return ok(value)
        if f == "claim":
            return await self._claim()
        if f == "complete":
            key = (str(value["id"]), int(value["token"]))
            msg = self.msgs.get(key)
            if msg is None:
                return fail("not-held")
            self._sent = True
            await self.nc.request(msg.reply, b"", timeout=self.timeout_s)
            self.msgs.pop(key, None)
            return ok(value)
        if f == "renew":
            msg = self.msgs.get((str(value["id"]), int(value["token"])))
            if msg is None:
                return fail("not-held")
            self._sent = True
            await msg.in_progress()
            return info("unanswered: the server does not acknowledge +WPI")
        if f == "read-item":
            return await self._read_item(str(value["id"]))
        return fail(f"unsupported operation {f!r}")

    async def _claim(self) -> Outcome:
        """Fetch one message; ok(None) when none came within the wait.

        A fetch that waited in vain is not proof that nothing was handed out:
        a message the server sent that never arrived stays with this consumer
        until its AckWait runs out, then is redelivered. Nothing is lost, and
        no claim names it, so no lease is claimed for it.
        """
        from nats.errors import TimeoutError as NatsTimeout

        self._sent = True
        try:
            msgs = await self.psub.fetch(1, timeout=min(1.0, self.timeout_s))
        except NatsTimeout:
            return ok(None)
        msg = msgs[0]
        iid = msg.subject.removeprefix(SUBJECT_PREFIX)
        token = int(msg.metadata.num_delivered)
        self.msgs[(iid, token)] = msg
        got = {"id": iid, "token": token, "seq": int(msg.metadata.sequence.stream)}
        self.held.append({"id": iid, "token": token})
        return ok(got)

    async def _read_item(self, iid: str) -> Outcome:
        """The stream leader's copy of the item's subject: present means ``queued``
        (delivered or not), absent means acked and removed, or never stored."""
        from nats.js.errors import NotFoundError

        try:
            m = await self.js.get_last_msg(STREAM, f"{SUBJECT_PREFIX}{iid}")
        except NotFoundError:
            return ok({"id": iid, "state": None})
        return ok({"id": iid, "state": "queued", "seq": int(m.seq or 0)})


class NatsKvClient(_Base):
    """One client of the register workload over the KV bucket."""

    #: a KV put carries no request id: a resend is a second write
    idempotency: str = "none"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0,
                 direct: bool = False) -> None:
        super().__init__(address, worker=worker, timeout_s=timeout_s)
        self.direct = direct
        self.kv: Any = None

    async def _opened(self) -> None:
        self.kv = await self.js.key_value(BUCKET)
        # the bucket's allow_direct decides the read path; the option says which we test
        self.kv._direct = self.direct

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def invoke(self, f: str, value: Any) -> Outcome:
        self._sent = False
        try:
            return self._run(self._invoke(f, value))
        except _CompareFailed as e:
            return fail(str(e))
        except Exception as e:
            return self._classify(f, e, ("read",))

    async def _get(self, key: str) -> tuple[Any, int]:
        """(value, revision); (None, 0) when the key holds nothing."""
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, 0
        if entry.value is None:
            return None, int(entry.revision or 0)
        return json.loads(entry.value), int(entry.revision or 0)

    async def _invoke(self, f: str, value: Any) -> Outcome:
        await self._connect()
        key = value[0]
        k = f"k.{key}"
        if f == "read":
            v, _ = await self._get(k)
            return ok([key, v])
        if f == "write":
            self._sent = True
            await self.kv.put(k, json.dumps(value[1]).encode())
            return ok(value)
        if f == "cas":
            from nats.js.errors import KeyWrongLastSequenceError

            old, new = value[1]
            current, rev = await self._get(k)
            if rev == 0 or current != old:
                raise _CompareFailed("value-mismatch")
            self._sent = True
            try:
                await self.kv.update(k, json.dumps(new).encode(), last=rev)
            except KeyWrongLastSequenceError:
                raise _CompareFailed("revision-changed") from None
            return ok(value)
        return fail(f"unsupported operation {f!r}")


class _CompareFailed(Exception):
    """A CAS that certainly wrote nothing (the value or revision did not match)."""
