"""The RESP2 client: every reply type, and the one distinction the Redis adapter's
verdicts rest on: a command that certainly never left (``sent=False``, a definite
fail) versus one that may have run (``sent=True``, indeterminate)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from harness.cluster.local import free_port
from harness.system import Address
from harness.systems.resp import Resp, RespConnectionError, RespError


class FakeServer:
    """Answers each command with the next canned bytes; None closes the connection."""

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = list(replies)
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while self.replies:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received.append(data)
                    reply = self.replies.pop(0)
                    if reply is None:
                        break
                    # split the reply so the client must reassemble it
                    for i in range(0, len(reply), 3):
                        conn.sendall(reply[i:i + 3])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    s = FakeServer(request.param)
    yield s
    s.close()


@pytest.mark.parametrize("server", [[
    b"+OK\r\n", b"-READONLY You can't write against a read only replica.\r\n", b":42\r\n",
    b"$5\r\nhello\r\n", b"$-1\r\n", b"*2\r\n$2\r\nn2\r\n:6379\r\n", b"*-1\r\n",
    b"*2\r\n*1\r\n+a\r\n$0\r\n\r\n",
]], indirect=True)
def test_every_reply_type(server: FakeServer) -> None:
    r = Resp(server.address, timeout_s=2)
    assert r.command("SET", "k", "v") == "OK"
    err = r.command("SET", "k", "v")
    assert isinstance(err, RespError) and err.kind == "READONLY"
    assert r.command("INCR", "k") == 42
    assert r.command("GET", "k") == "hello"
    assert r.command("GET", "nope") is None
    assert r.command("SENTINEL", "get-master-addr-by-name", "primary") == ["n2", 6379]
    assert r.command("BLPOP", "q", 1) is None
    assert r.command("X") == [["a"], ""]
    r.close()
    assert server.received[0] == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"


def test_refused_connection_was_not_sent() -> None:
    r = Resp(Address("127.0.0.1", free_port()), timeout_s=1)
    with pytest.raises(RespConnectionError) as e:
        r.command("PING")
    assert e.value.sent is False


@pytest.mark.parametrize("server", [[None, b"+PONG\r\n"]], indirect=True)
def test_dropped_after_send_may_have_run_then_reconnects(server: FakeServer) -> None:
    r = Resp(server.address, timeout_s=2)
    with pytest.raises(RespConnectionError) as e:
        r.command("INCR", "k")
    assert e.value.sent is True
    assert r.command("PING") == "PONG"  # a new connection after the failure


@pytest.mark.parametrize("server", [[b"?garbage\r\n"]], indirect=True)
def test_garbage_reply_is_a_transport_error(server: FakeServer) -> None:
    r = Resp(server.address, timeout_s=2)
    with pytest.raises(RespConnectionError) as e:
        r.command("PING")
    assert e.value.sent is True


@pytest.mark.parametrize("server", [[b""]], indirect=True)
def test_closed_without_reply_may_have_run(server: FakeServer) -> None:
    r = Resp(server.address, timeout_s=2)
    with pytest.raises(RespConnectionError) as e:
        r.command("PING")
    assert e.value.sent is True
