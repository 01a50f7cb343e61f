"""The HTTP API of a running 3-node cluster (real processes on loopback):
the queue rules end to end, the key-value map, idempotent retries, and bad
input that must get a clear 4xx while the node keeps serving."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from refsys_helpers import NODE_ARGS, until

from reference_system.local import LocalCluster, free_base_port, http_json

FAST = NODE_ARGS


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d: Path = tmp_path_factory.mktemp("api")
    with LocalCluster(
        3,
        base_port=free_base_port(),
        data_dir=d,
        node_args=(*FAST, "--max-attempts", "2"),
        haproxy=False,
    ) as cluster:
        yield cluster


def follower(c: LocalCluster) -> int:
    leader = c.wait_for_leader()
    return next(i for i in c.ids if i != leader)


def call(c: LocalCluster, node: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return http_json(c.http_port(node), method, path, body)


def test_item_lifecycle_through_a_follower(c: LocalCluster) -> None:
    f = follower(c)
    code, r = call(c, f, "POST", "/enqueue", {"id": "life", "payload": {"n": 1}})
    assert (code, r) == (200, {"ok": True, "id": "life"})
    assert call(c, f, "POST", "/enqueue", {"id": "life"})[0] == 409
    code, r = call(c, f, "POST", "/claim", {"worker": "w1"})
    assert code == 200 and r["item"]["id"] == "life" and r["item"]["payload"] == {"n": 1}
    token = r["item"]["token"]
    assert call(c, f, "POST", "/renew", {"id": "life", "token": token})[0] == 200
    code, r = call(c, f, "GET", "/items/life")
    assert code == 200 and r["state"] == "processing" and r["token"] == token
    assert r["attempts"] == 1
    code, r = call(c, f, "POST", "/complete", {"id": "life", "token": token - 1, "result": "x"})
    assert code == 409 and r["error"] == "stale" and r["definite"] is True
    code, r = call(c, f, "POST", "/complete", {"id": "life", "token": token, "result": "R"})
    assert (code, r["result"]) == (200, "R")
    code, r = call(c, f, "POST", "/complete", {"id": "life", "token": token, "result": "other"})
    assert (code, r["result"]) == (200, "R")  # a repeat returns the stored result
    assert call(c, f, "GET", "/items/life")[1]["state"] == "completed"


def test_claim_on_empty_queue_and_tokens_increase(c: LocalCluster) -> None:
    leader = c.wait_for_leader()
    tokens = []
    for k in range(3):
        call(c, leader, "POST", "/enqueue", {"id": f"inc{k}"})
    for _ in range(3):
        _, r = call(c, leader, "POST", "/claim", {"worker": "w"})
        tokens.append(r["item"]["token"])
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    for k, t in enumerate(tokens):
        call(c, leader, "POST", "/complete", {"id": f"inc{k}", "token": t})
    assert call(c, leader, "POST", "/claim", {"worker": "w"}) == (200, {"ok": True, "item": None})


def test_fail_requeues_then_dead_letters(c: LocalCluster) -> None:
    f = follower(c)
    call(c, f, "POST", "/enqueue", {"id": "flaky"})
    for expected in ["queued", "dead"]:
        r = call(c, f, "POST", "/claim", {"worker": "w"})[1]
        assert r["item"]["id"] == "flaky"
        code, r = call(c, f, "POST", "/fail", {"id": "flaky", "token": r["item"]["token"]})
        assert (code, r["state"]) == (200, expected)
    assert call(c, f, "GET", "/items/flaky")[1]["state"] == "dead"


def test_kv_read_write_cas(c: LocalCluster) -> None:
    f = follower(c)
    assert call(c, f, "GET", "/kv/reg") == (200, {"ok": True, "value": None})
    assert call(c, f, "POST", "/kv/reg", {"value": 1})[0] == 200
    assert call(c, f, "GET", "/kv/reg")[1]["value"] == 1
    code, r = call(c, f, "POST", "/kv/reg/cas", {"from": 7, "to": 8})
    assert code == 409 and r["error"] == "mismatch" and r["value"] == 1
    assert call(c, f, "POST", "/kv/reg/cas", {"from": 1, "to": 2})[0] == 200
    assert call(c, c.wait_for_leader(), "GET", "/kv/reg")[1]["value"] == 2
    assert call(c, f, "POST", "/kv/a%2Fb", {"value": "slash"})[0] == 200
    assert call(c, f, "GET", "/kv/a%2Fb")[1]["value"] == "slash"


def test_request_ids_make_retries_idempotent(c: LocalCluster) -> None:
    f = follower(c)
    leader = c.wait_for_leader()
    first = call(c, f, "POST", "/enqueue", {"payload": 1, "request_id": "rq-enq"})
    again = call(c, leader, "POST", "/enqueue", {"payload": 1, "request_id": "rq-enq"})
    assert first == again and first[0] == 200
    claim1 = call(c, f, "POST", "/claim", {"worker": "w", "request_id": "rq-claim"})
    claim2 = call(c, leader, "POST", "/claim", {"worker": "w", "request_id": "rq-claim"})
    assert claim1 == claim2
    w1 = call(c, f, "POST", "/kv/idem", {"value": 1, "request_id": "rq-w1"})
    call(c, f, "POST", "/kv/idem", {"value": 2})
    assert call(c, f, "POST", "/kv/idem", {"value": 1, "request_id": "rq-w1"}) == w1
    assert call(c, f, "GET", "/kv/idem")[1]["value"] == 2  # the retry did not write again


@pytest.mark.parametrize(
    ("method", "path", "raw", "status"),
    [
        ("POST", "/enqueue", b"{not json", 400),
        ("POST", "/enqueue", b"[1,2]", 400),
        ("POST", "/enqueue", b'{"id": 5}', 400),
        ("POST", "/claim", b"{}", 400),
        ("POST", "/claim", b'{"worker": ["x"]}', 400),
        ("POST", "/renew", b'{"id": "x", "token": "7"}', 400),
        ("POST", "/complete", b'{"id": "x", "token": true}', 400),
        ("POST", "/complete", b'{"id": "nope", "token": 1}', 404),
        ("POST", "/kv/k", b"{}", 400),
        ("POST", "/kv/k/cas", b'{"from": 1}', 400),
        ("GET", "/items/nope", None, 404),
        ("GET", "/nowhere", None, 404),
        ("GET", "/enqueue", None, 405),
        ("DELETE", "/kv/k", None, 405),
        ("POST", "/enqueue", b"\xff\xfe", 400),
    ],
)
def test_bad_input_gets_a_definite_4xx(
    c: LocalCluster, method: str, path: str, raw: bytes | None, status: int
) -> None:
    f = follower(c)
    code, r = http_json(c.http_port(f), method, path, raw=raw)
    assert code == status
    assert r["definite"] is True and r["error"]


def test_oversize_body_and_garbage_do_not_hurt_the_node(c: LocalCluster) -> None:
    f = follower(c)
    code, r = http_json(c.http_port(f), "POST", "/enqueue", raw=b"x" * (2 << 20))
    assert code == 413 and r["error"] == "too_large"
    for junk in [
        b"\x00\x01garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9\r\n\r\n",
        b"POST /enqueue HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /enqueue HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        # Conflicting lengths: once a wait for 5 bytes until the 75 s idle timeout.
        b"POST /enqueue HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
        b"GET /status HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n",
    ]:
        with socket.create_connection(("127.0.0.1", c.http_port(f)), timeout=5) as s:
            try:
                s.sendall(junk)
                reply = s.recv(100)
            except ConnectionResetError:
                reply = b"HTTP/1.1 4"
            # aiohttp answers a head it cannot parse as HTTP/1.0
            assert re.match(rb"HTTP/1\.[01] 4", reply), reply
    assert call(c, f, "GET", "/status")[0] == 200


def test_keep_alive_serves_many_requests_on_one_connection(c: LocalCluster) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", c.http_port(follower(c)), timeout=5)
    try:
        for k in range(5):
            conn.request("POST", "/kv/ka", body=f'{{"value": {k}}}')
            assert conn.getresponse().read() == b'{"ok":true}'
        conn.request("GET", "/kv/ka")
        assert b'"value":4' in conn.getresponse().read()
    finally:
        conn.close()


def test_status_and_health(c: LocalCluster) -> None:
    leader = c.wait_for_leader()
    for i in c.ids:
        code, s = call(c, i, "GET", "/status")
        assert code == 200
        assert s["leader"] == leader and s["role"] == ("leader" if i == leader else "follower")
        assert {"ballot", "commit", "applied", "snapshot", "healthy", "items"} <= s.keys()
        assert call(c, i, "GET", "/health")[0] == 200


def test_every_node_reads_its_own_replica_state_and_they_agree(c: LocalCluster) -> None:
    f = follower(c)
    assert call(c, f, "POST", "/kv/conv", {"value": "same"})[0] == 200
    assert call(c, f, "POST", "/enqueue", {"id": "conv-item", "payload": 7})[0] == 200

    def caught_up() -> list[dict[str, Any]] | None:
        states = [call(c, i, "GET", "/replica")[1] for i in c.ids]
        return states if len({s["applied"] for s in states}) == 1 else None

    states = until(caught_up, 10, "every node at one applied index")
    assert [s["node"] for s in states] == list(c.ids)  # each answered for itself
    assert len({s["digest"] for s in states}) == 1
    for s in states:
        assert s["kv"]["conv"] == "same"
        assert s["items"]["conv-item"]["state"] == "queued"
        assert s["items"]["conv-item"]["payload"] == 7


def test_expect_100_continue_is_honoured(c: LocalCluster) -> None:
    body = b'{"value": "' + b"x" * 2000 + b'"}'
    head = (
        f"POST /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", c.http_port(follower(c))), timeout=5) as s:
        s.sendall(head)
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK")
