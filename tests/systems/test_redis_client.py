"""The Redis adapter's client is redis-py with its Sentinel support; these tests pin
how its outcomes are classified and that failover is redis-py's, against scripted
servers (a Sentinel and two Redis servers speaking just enough RESP2).

Jepsen's rule: ``fail`` only when the operation certainly did not happen, ``info``
when it may have. redis-py reports both as ``ConnectionError``/``TimeoutError``;
what tells them apart is whether the command was sent, which the client counts.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.client import Outcome
from harness.cluster.local import free_port
from harness.system import Address
from harness.systems.redis_client import MASTER, RedisQueueClient

#: a scripted answer: RESP bytes, CLOSE (drop the connection), or HANG (never answer)
CLOSE, HANG = b"<close>", b"<hang>"
Script = Callable[[list[str]], bytes]


def _bulk(items: list[str]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(
        b"$%d\r\n%s\r\n" % (len(x.encode()), x.encode()) for x in items)


def _map(items: list[str]) -> bytes:
    """A RESP3 map of the flat key, value list (redis-py speaks RESP3 by default)."""
    return b"%%%d\r\n" % (len(items) // 2) + _bulk(items).split(b"\r\n", 1)[1]


#: the answer to redis-py's handshake, ``HELLO 3``: a RESP3 map with the protocol
HELLO_3 = _map(["server", "redis", "version", "7.0.15"]).replace(b"%2", b"%3", 1) \
    + b"$5\r\nproto\r\n:3\r\n"


def _commands(buf: bytes) -> tuple[list[list[str]], bytes]:
    """Complete RESP arrays of bulk strings in ``buf``, and the rest."""
    out: list[list[str]] = []
    while buf.startswith(b"*") and b"\r\n" in buf:
        head, rest = buf.split(b"\r\n", 1)
        args: list[str] = []
        for _ in range(int(head[1:])):
            if b"\r\n" not in rest:
                return out, buf
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line[1:])
            if len(rest) < size + 2:
                return out, buf
            args.append(rest[:size].decode())
            rest = rest[size + 2:]
        out.append(args)
        buf = rest
    return out, buf


class FakeServer:
    """Answers each command with ``script(args)``; the handshake (CLIENT ...) is OK."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[list[str]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while data := conn.recv(65536):
                cmds, buf = _commands(buf + data)
                for args in cmds:
                    self.received.append(args)
                    if args[0].upper() == "HELLO":
                        reply = HELLO_3
                    elif args[0].upper() == "CLIENT":
                        reply = b"+OK\r\n"
                    else:
                        reply = self.script(args)
                    if reply == CLOSE:
                        return
                    if reply == HANG:
                        time.sleep(3)
                        return
                    conn.sendall(reply)

    def commands(self, name: str) -> list[list[str]]:
        return [a for a in self.received if a[0].upper() == name]

    def close(self) -> None:
        self.sock.close()


def sentinel_naming(primary: list[str]) -> Script:
    """A Sentinel whose SENTINEL MASTERS names ``primary[0]`` (change it to fail over)."""

    def script(args: list[str]) -> bytes:
        assert args[:2] == ["SENTINEL", "MASTERS"], args
        state = ["name", MASTER, "ip", primary[0], "port", "6379", "flags", "master",
                 "num-other-sentinels", "2", "quorum", "2"]
        return b"*1\r\n" + _map(state)

    return script


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    made: list[FakeServer] = []
    yield made
    for s in made:
        s.close()


def client(servers: list[FakeServer], primary: list[str], n1: Script, n2: Script | None = None,
           **kwargs: Any) -> tuple[RedisQueueClient, FakeServer]:
    sentinel = FakeServer(sentinel_naming(primary))
    r1 = FakeServer(n1)
    servers += [sentinel, r1]
    nodes = {"n1": {"redis": r1.address, "sentinel": sentinel.address}}
    if n2 is not None:
        r2 = FakeServer(n2)
        servers.append(r2)
        nodes["n2"] = {"redis": r2.address, "sentinel": sentinel.address}
    return RedisQueueClient("n1", nodes, worker="w1", timeout_s=0.5, **kwargs), r1


def kind(o: Outcome) -> str:
    return o.type


def answers(*replies: bytes) -> Script:
    queue = list(replies)
    return lambda args: queue.pop(0)


def test_enqueue_claim_and_read_through_the_primary_the_sentinel_names(
        servers: list[FakeServer]) -> None:
    c, r1 = client(servers, ["n1"], answers(
        b":1\r\n", b"*2\r\n$2\r\ni1\r\n:7\r\n",
        _map(["state", "processing", "attempts", "1", "token", "7"])))
    assert kind(c.invoke("enqueue", {"id": "i1", "payload": 1})) == "ok"
    assert c.invoke("claim", None).value == {"id": "i1", "token": 7}
    got = c.invoke("read-item", {"id": "i1"}).value
    assert got == {"id": "i1", "state": "processing", "attempts": 1, "token": 7}
    assert [a[0] for a in r1.received if a[0] not in ("CLIENT", "HELLO")] == [
        "EVAL", "EVAL", "HGETALL"]
    c.close()


def test_refused_before_sending_is_a_definite_fail(servers: list[FakeServer]) -> None:
    sentinel = FakeServer(sentinel_naming(["n1"]))
    servers.append(sentinel)
    closed = Address("127.0.0.1", free_port())
    c = RedisQueueClient("n1", {"n1": {"redis": closed, "sentinel": sentinel.address}},
                         worker="w1", timeout_s=0.5)
    assert kind(c.invoke("enqueue", {"id": "i1"})) == "fail"
    c.close()


def test_no_sentinel_answering_is_a_definite_fail() -> None:
    closed = Address("127.0.0.1", free_port())
    c = RedisQueueClient("n1", {"n1": {"redis": closed, "sentinel": closed}}, worker="w1",
                         timeout_s=0.5)
    o = c.invoke("enqueue", {"id": "i1"})
    assert kind(o) == "fail" and "master" in str(o.error).lower()
    c.close()


@pytest.mark.parametrize("reply", [CLOSE, HANG], ids=["connection-lost", "timeout"])
def test_lost_or_timed_out_after_sending_is_info_for_writes_and_fail_for_reads(
        servers: list[FakeServer], reply: bytes) -> None:
    c, r1 = client(servers, ["n1"], lambda args: reply)
    assert kind(c.invoke("enqueue", {"id": "i1"})) == "info"
    assert kind(c.invoke("complete", {"id": "i1", "token": 3})) == "info"
    assert kind(c.invoke("read-item", {"id": "i1"})) == "fail"
    assert len(r1.commands("EVAL")) == 2  # redis-py's default resends nothing
    c.close()


def test_error_replies_that_mean_not_run_are_fail_others_info(
        servers: list[FakeServer]) -> None:
    c, _ = client(servers, ["n1"], answers(
        b"-LOADING Redis is loading the dataset in memory\r\n",
        b"-MASTERDOWN Link with MASTER is down\r\n",
        b"-MISCONF Errors writing to disk\r\n",
        b"-ERR something odd\r\n"))
    for i in range(3):
        assert kind(c.invoke("enqueue", {"id": f"i{i}"})) == "fail", i
    assert kind(c.invoke("enqueue", {"id": "i3"})) == "info"
    c.close()


def test_a_demoted_primary_is_left_for_the_one_the_sentinel_names_now(
        servers: list[FakeServer]) -> None:
    """Failover as redis-py does it: READONLY makes it drop the connection and ask the
    Sentinel again; the refused script did not run, so the operation is a fail."""
    primary = ["n1"]
    readonly = b"-READONLY You can't write against a read only replica.\r\n"
    c, r1 = client(servers, primary, answers(b":1\r\n", readonly), answers(b":1\r\n"))
    assert kind(c.invoke("enqueue", {"id": "i1"})) == "ok"
    primary[0] = "n2"  # the Sentinels promoted n2; the client does not know yet
    assert kind(c.invoke("enqueue", {"id": "i2"})) == "fail"
    assert kind(c.invoke("enqueue", {"id": "i3"})) == "ok"
    assert [a[3] for a in r1.commands("EVAL")] == ["i1", "i2"]
    c.close()


def test_an_old_primary_that_still_answers_keeps_the_writes(servers: list[FakeServer]) -> None:
    """redis-py asks the Sentinel only when it connects: while the old primary's
    connection works, writes go there even after the Sentinel names another node.
    This is how Redis users' clients behave, and part of why acked items get lost."""
    primary = ["n1"]
    c, r1 = client(servers, primary, lambda args: b":1\r\n", lambda args: b":1\r\n")
    assert kind(c.invoke("enqueue", {"id": "i1"})) == "ok"
    primary[0] = "n2"
    assert kind(c.invoke("enqueue", {"id": "i2"})) == "ok"
    assert len(r1.commands("EVAL")) == 2
    c.close()


def test_with_retries_a_no_after_a_resend_may_be_our_own_first_attempt(
        servers: list[FakeServer]) -> None:
    """With redis-py's Retry on, the first EVAL may have run before its connection
    dropped; "id exists" or "stale token" on the resend then proves nothing."""
    c, r1 = client(servers, ["n1"], answers(CLOSE, b":0\r\n", CLOSE, b":0\r\n"), retries=1)
    assert kind(c.invoke("enqueue", {"id": "i1"})) == "info"
    assert kind(c.invoke("complete", {"id": "i1", "token": 2})) == "info"
    assert len(r1.commands("EVAL")) == 4
    c.close()
