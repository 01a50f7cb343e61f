"""The node's HTTP request parser under hostile heads (Hypothesis).

Two conflicting ``Content-Length`` lines once made the node wait for a body
until its 75 s idle timeout. Whatever head a client sends (random header
lines, repeated, conflicting or malformed ``Content-Length``,
``Transfer-Encoding``), the server must answer within a short time, with a
4xx or a valid answer, and serve the next client. The body sent is as long
as the *smallest* length stated, so a server that believes a larger one
hangs and fails the test.

The parser is the node's (aiohttp's, wrapped by ``api.start_http_server``), behind a stub handler
that echoes the body it was given, so thousands of heads run in seconds; the
node-level test in ``test_node_api.py`` sends the conflicting pair to a real
node.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_system.api import Request, Response, json_response, start_http_server

ANSWER_WITHIN_S = 3.0


async def _echo(request: Request) -> Response:
    return json_response(200, {"length": len(request.body), "path": request.path})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """The parser on an event loop of its own thread, for the whole module."""
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    started = threading.Event()

    async def serve() -> asyncio.Server:
        server = await start_http_server(_echo, "127.0.0.1", 0, idle_timeout_s=75.0)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        return server

    server = loop.run_until_complete(serve())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(_end_tasks())  # aiohttp keeps a task per connection
        loop.close()


async def _end_tasks() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _length(reply: bytes) -> int:
    """How long the response in ``reply`` is, head and body, once its head is in."""
    head, _, _ = reply.partition(b"\r\n\r\n")
    stated = re.search(rb"(?im)^content-length: *(\d+)", head)
    return len(head) + 4 + (int(stated.group(1)) if stated else 0)


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, return the first response (or b"" on a reset/close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as sock:
        try:
            sock.sendall(data)
            reply = b""
            while True:
                while re.match(rb"HTTP/1\.[01] 1\d\d [^\r]*\r\n\r\n", reply):
                    reply = reply.split(b"\r\n\r\n", 1)[1]  # "100 Continue": not the answer
                if b"\r\n\r\n" in reply and len(reply) >= _length(reply):
                    break
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except ConnectionResetError:
            return b""
        except TimeoutError:
            pytest.fail(f"no answer within {ANSWER_WITHIN_S} s to {data[:300]!r}")
    return reply


def _still_serves(port: int) -> None:
    reply = _exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 "), reply


_names = st.sampled_from(
    ["Host", "X-Any", "Connection", "Expect", "Content-Type", "Accept", "content-length",
     "Content-Length", "CONTENT-LENGTH", "Transfer-Encoding", "Content-Length ", " X",
     "X Y", ""]
)
_lengths = st.one_of(
    st.integers(0, 64).map(str),
    st.sampled_from(["-1", "+5", "5_0", " 7", "0x10", "1e3", "", "5, 5", "5, 6", "٣",
                     "99999999999999999999999", "3 3", "07"]),
)
_values = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    st.sampled_from(["chunked", "close", "keep-alive", "100-continue", "identity, chunked"]),
)
_header = st.one_of(
    st.tuples(st.just("Content-Length"), _lengths),
    st.tuples(st.sampled_from(["Transfer-Encoding", "transfer-encoding"]), _values),
    st.tuples(_names, _values),
)


def _smallest_stated(lines: list[tuple[str, str]]) -> int:
    stated = [
        int(item)
        for name, value in lines
        if name.strip().lower() == "content-length"
        for item in re.findall(r"\d+", value)
        if len(item) < 6
    ]
    return min(stated, default=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_header, max_size=6),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    continuation=st.booleans(),
)
def test_any_head_gets_an_answer_and_the_server_keeps_serving(
    port: int, lines: list[tuple[str, str]], method: str, continuation: bool
) -> None:
    head = f"{method} /echo HTTP/1.1\r\n"
    head += "".join(f"{name}:{' ' if continuation else ''}{value}\r\n" for name, value in lines)
    if continuation and lines:
        head += " folded\r\n"  # an obsolete line folding
    body = b"b" * _smallest_stated(lines)
    data = head.encode("utf-8") + b"\r\n" + body
    reply = _exchange(port, data)
    if reply:
        status = int(reply.split(b" ", 2)[1])
        assert status == 200 or 400 <= status < 500, reply
    _still_serves(port)


def _status(reply: bytes) -> int:
    """The status of a response head; aiohttp answers a head it cannot parse as
    HTTP/1.0 (it never learnt the request's version), so either minor version."""
    assert re.match(rb"HTTP/1\.[01] \d{3} ", reply), reply
    return int(reply.split(b" ", 2)[1])


# Repeated equal lengths ("3" twice, "3, 3") were once accepted; llhttp refuses
# every repeated Content-Length, which RFC 9112 6.3 allows ("MAY reject").
@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        (["0", "5"], 400),
        (["5", "0"], 400),
        (["3", "3"], 400),
        (["3, 3"], 400),
        (["3"], 200),
        (["3, 4"], 400),
        (["+3"], 400),
        (["3_0"], 400),
        (["-1"], 400),
    ],
)
def test_content_length_must_be_one_number(port: int, lengths: list[str], status: int) -> None:
    head = "POST /echo HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"Content-Length: {value}\r\n" for value in lengths
    )
    reply = _exchange(port, head.encode() + b"\r\nabc")
    assert _status(reply) == status, reply
    answer = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    if status == 200:
        assert answer["length"] == 3
    else:  # the harness reads every error as JSON: refused, so certainly no effect
        assert answer["error"] == "bad_request" and answer["definite"] is True
    _still_serves(port)


def test_whitespace_before_the_colon_is_refused(port: int) -> None:
    reply = _exchange(port, b"POST /echo HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc")
    assert _status(reply) == 400, reply
    _still_serves(port)
