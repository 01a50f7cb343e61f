"""A work-queue client of RabbitMQ over AMQP 0-9-1 (``pika``), one connection per worker.

The mapping of the harness's queue operations:

* ``enqueue``: a persistent, *mandatory* publish to the default exchange,
  on a channel in *publisher confirms* mode. A ``basic.ack`` confirm is
  ``ok``, a ``basic.nack`` is ``fail`` (the broker says it did not take the
  message), no confirm within the operation timeout is ``info``. A
  connection that could not be opened sent nothing: ``fail``. RabbitMQ also
  *acks* a message that routed to no queue (its confirms guide: the ack comes
  once the exchange finds no queue); only ``mandatory`` makes it say so, with a
  ``basic.return`` before that ack, so a returned publish is ``fail``
  (``unroutable``: nothing was stored). Without it, a node that came back
  blank from a lose-unsynced crash, and had not rejoined yet, acked publishes
  into a queue it did not have: 8 items "lost" in one run, none stored.
* ``claim``: ``basic.get`` with manual acknowledgement. The message stays
  *unacknowledged* on this worker's channel: that is the hold. There is no
  lease and no fencing token (the answer's ``token`` is ``None``): the
  broker gives the message to someone else only once this channel or
  connection is gone. The message's ``redelivered`` flag is recorded.
* ``complete``: ``basic.ack`` of the delivery tag. AMQP 0-9-1 has no answer
  to an ack, so the client follows it with a synchronous ``basic.qos`` on
  the same channel: the broker handles a channel's methods in order, so
  ``qos-ok`` proves the channel took the ack (``ok``); no answer is
  ``info``. An item whose channel was lost before the ack can no longer be
  acknowledged (delivery tags belong to a channel): ``fail``, and the
  broker redelivers it.
* ``read-item``: RabbitMQ cannot look an item up by id. A read *browses*
  the queue: on a channel of its own it takes ready messages without
  acknowledging them until it meets the item or the queue answers empty,
  then puts them all back (``basic.nack`` with requeue: they are marked
  redelivered). An item seen is ``queued``; one not seen is "not
  found" (``None``). Messages held unacknowledged by another live
  connection are invisible to a browse, so a read is only meaningful once
  every other worker's connection is closed: the harness closes them all
  before its final reads.

Pika's blocking adapter waits for a confirm or a ``get-ok`` without a time
limit, so every wait here goes through the underlying channel's callbacks
and ``process_data_events`` with a deadline. After any error or timeout the
connection is dropped (which returns every message it held to the queue)
and the next operation opens a new one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address

__all__ = ["QUEUE", "RabbitQueueClient", "connect"]

#: the one queue every worker uses
QUEUE = "jobs"
OPS = frozenset({"enqueue", "claim", "complete", "renew", "read-item"})
#: a browse takes at most this many messages (a read of a bigger queue fails)
BROWSE_MAX = 20000


class _Timeout(Exception):
    """No answer within the operation's time limit."""


class _Closed(Exception):
    """The broker closed the channel (a channel error: the method was refused)."""


def connect(address: Address, *, timeout_s: float) -> Any:
    """A blocking pika connection to one node (raises pika's errors when it cannot)."""
    import pika

    params = pika.ConnectionParameters(
        host=address.host, port=address.port,
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=timeout_s, stack_timeout=timeout_s,
        blocked_connection_timeout=timeout_s, heartbeat=5)
    return pika.BlockingConnection(params)


class RabbitQueueClient:
    """One worker's AMQP connection to the node it is pinned to."""

    #: RabbitMQ has no request ids and no deduplication: a resent publish is a
    #: second message, so a resend would *create* a duplicate rather than test
    #: one. The client therefore offers no ``retry`` (it is not
    #: :class:`harness.client.Retryable`): a publish whose confirm did not come
    #: stays indeterminate, as a careful publisher would leave it
    idempotency: str = "none"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0,
                 queue: str = QUEUE,
                 connector: Callable[..., Any] = connect) -> None:
        self.address = address
        self.worker = worker
        self.timeout_s = timeout_s
        self.queue = queue
        self._connector = connector
        self._conn: Any = None
        self._ch: Any = None
        self._browse_ch: Any = None
        #: bumped whenever the connection is replaced: a delivery tag is valid
        #: only on the channel that got it
        self._generation = 0
        self._tags: dict[str, tuple[int, int]] = {}
        self._confirms: dict[int, str] = {}
        #: item ids the broker returned unroutable (``basic.return``) on this channel
        self._returned: set[str] = set()
        self._published = 0
        self.held: list[dict[str, Any]] = []

    # -- connection ---------------------------------------------------------------

    def _channel(self) -> Any:
        if self._ch is not None:
            if self._ch.is_open and self._conn.is_open:
                return self._ch
            self._drop()  # the broker closed it: whatever it held went back to the queue
        self._conn = self._connector(self.address, timeout_s=self.timeout_s)
        self._generation += 1
        self._confirms = {}
        self._returned = set()
        self._published = 0
        ch = self._open_channel()
        ch.add_on_return_callback(self._on_return)
        selected: list[bool] = []
        ch.confirm_delivery(ack_nack_callback=self._on_confirm,
                            callback=lambda _frame: selected.append(True))
        self._wait(lambda: bool(selected), ch)
        self._ch = ch
        return ch

    def _open_channel(self) -> Any:
        """A channel of the connection's asynchronous core (pika's blocking channel
        keeps state that callbacks of its core would break)."""
        opened: list[Any] = []
        self._conn._impl.channel(on_open_callback=opened.append)
        self._wait(lambda: bool(opened))
        return opened[0]

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        kind = "ack" if method.NAME == "Basic.Ack" else "nack"
        tags = ([t for t in range(1, method.delivery_tag + 1) if t not in self._confirms]
                if method.multiple else [method.delivery_tag])
        for t in tags:
            self._confirms[t] = kind

    def _on_return(self, _ch: Any, _method: Any, props: Any, _body: bytes) -> None:
        """A mandatory publish routed to no queue: the broker sends it back (before its
        confirm, which is still an ack)."""
        if props is not None and props.message_id is not None:
            self._returned.add(str(props.message_id))

    def _wait(self, done: Callable[[], bool], ch: Any = None) -> None:
        """Serve the connection's I/O until ``done()``; _Timeout past the operation's
        time limit, _Closed when ``ch`` was closed (the broker refused a method)."""
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if ch is not None and (ch.is_closed or ch.is_closing):
                raise _Closed(f"channel closed: {ch}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout(f"no answer within {self.timeout_s:g}s")
            self._conn.process_data_events(time_limit=min(left, 0.002))

    def _drop(self) -> None:
        """Forget the connection; the broker returns whatever it held to the queue."""
        conn, self._conn, self._ch, self._browse_ch = self._conn, None, None, None
        self.held.clear()
        self._tags.clear()
        if conn is None:
            return
        # Through the connection's core: pika's blocking close() trips over channels
        # it did not open itself, and waits for the broker without a limit.
        impl = conn._impl
        with contextlib.suppress(Exception):
            if impl.is_open:
                impl.close(200, "bye")  # closes the channels, then the connection
            deadline = time.monotonic() + min(self.timeout_s, 1.0)
            while not impl.is_closed and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.01)
        if not impl.is_closed:
            with contextlib.suppress(Exception):
                impl._adapter_disconnect_stream()  # a silent broker: just drop the socket

    def close(self) -> None:
        self._drop()

    # -- the Client protocol ------------------------------------------------------

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def invoke(self, f: str, value: Any) -> Outcome:
        if f not in OPS:
            return fail(f"unsupported operation {f!r}")
        if f == "renew":
            # nothing to renew: a hold lasts as long as the channel
            held = any(h["id"] == value.get("id") for h in self.held)
            return ok(value) if held else fail("not-held")
        try:
            ch = self._channel()
        except _Timeout as e:
            self._drop()
            return fail(f"connect: {e}")
        except Exception as e:  # pika's connection errors, OSError
            self._drop()
            return fail(f"connect: {type(e).__name__}: {e}")
        if f == "complete" and self._tags.get(str(value.get("id")), (0, 0))[0] \
                != self._generation:
            return fail("channel-lost: the broker requeued the item")
        sent: list[bool] = []
        try:
            return self._do(ch, f, value, sent)
        except Exception as e:  # _Timeout, pika's channel/connection errors, OSError
            self._drop()
            why = f"{type(e).__name__}: {e}"
            if f == "read-item" or not sent:
                return fail(why)
            return info(why)

    def _do(self, ch: Any, f: str, value: Any, sent: list[bool]) -> Outcome:
        import pika

        if f == "enqueue":
            self._published += 1
            tag = self._published
            body = json.dumps({"id": value["id"], "payload": value.get("payload")})
            sent.append(True)
            iid = str(value["id"])
            self._returned.discard(iid)
            ch.basic_publish(
                exchange="", routing_key=self.queue, body=body.encode(), mandatory=True,
                properties=pika.BasicProperties(delivery_mode=2, message_id=iid))
            self._wait(lambda: tag in self._confirms, ch)
            confirm = self._confirms.pop(tag)
            if iid in self._returned:  # the return comes before the confirm
                self._returned.discard(iid)
                return fail("unroutable: the node has no such queue")
            if confirm == "ack":
                return ok(value)
            return fail("nack")
        if f == "claim":
            sent.append(True)
            got = self._get(ch)
            if got is None:
                return ok(None)
            method, raw = got
            iid = str(json.loads(raw)["id"])
            self._tags[iid] = (self._generation, method.delivery_tag)
            item = {"id": iid, "token": None, "redelivered": bool(method.redelivered)}
            self.held.append({"id": iid, "token": None})
            return ok(item)
        if f == "complete":
            iid = str(value["id"])
            _, tag = self._tags.pop(iid)
            sent.append(True)
            ch.basic_ack(delivery_tag=tag)
            done: list[bool] = []
            ch.basic_qos(prefetch_count=0, callback=lambda _f: done.append(True))
            self._wait(lambda: bool(done), ch)
            return ok(value)
        return self._browse(str(value["id"]))

    def _get(self, impl: Any) -> tuple[Any, bytes] | None:
        """One ``basic.get`` (manual ack) on a pika channel: (method, body), or None
        when the queue had no ready message."""
        from pika import spec

        got: list[Any] = []

        def on_ok(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
            got.append((method, body))

        def on_empty(_frame: Any) -> None:
            got.append(None)

        impl.add_callback(on_empty, [spec.Basic.GetEmpty], one_shot=True)
        impl.basic_get(self.queue, on_ok, auto_ack=False)
        self._wait(lambda: bool(got), impl)
        if got[0] is not None:
            impl.callbacks.remove(impl.channel_number, spec.Basic.GetEmpty, on_empty)
        result: tuple[Any, bytes] | None = got[0]
        return result

    def _browse(self, iid: str) -> Outcome:
        """Whether ``iid`` is among the ready messages (see the module docstring).

        The browse channel is kept: after a browse that took messages, one
        ``basic.nack`` (multiple, requeue) puts them all back, and a synchronous
        ``basic.qos`` proves the broker has done so before the read answers.
        """
        if self._browse_ch is None or not self._browse_ch.is_open:
            self._browse_ch = self._open_channel()
        ch = self._browse_ch
        seen = False
        last_tag = 0
        try:
            for _ in range(BROWSE_MAX):
                got = self._get(ch)
                if got is None:
                    break
                last_tag = got[0].delivery_tag
                if str(json.loads(got[1])["id"]) == iid:
                    seen = True
                    break
            else:
                return fail(f"more than {BROWSE_MAX} messages: browse gave up")
        finally:
            if last_tag:
                ch.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                done: list[bool] = []
                ch.basic_qos(prefetch_count=0, callback=lambda _f: done.append(True))
                self._wait(lambda: bool(done), ch)
        return ok({"id": iid, "state": "queued" if seen else None})
