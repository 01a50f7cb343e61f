"""The reference system's malformed requests (harness/systems/refsys_hostile.py):
every one drawn is refused by a real cluster (through each node and the load
balancer), which serves normal requests afterwards; the answers are classified
as the protocol says (on a stub server); and the seeded bug ``no_depth_limit``
lets a deep value in."""

from __future__ import annotations

import http.server
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hostile import ACCEPTED, DROPPED, ERROR, NO_ANSWER, REFUSED
from harness.system import Address, TakesHostileInput
from harness.systems.refsys import ReferenceSystem
from harness.systems.refsys_hostile import body_bytes, hostile_request, send_hostile
from reference_system.local import LocalCluster, free_base_port, http_json

NODE_ARGS = ("--lease-ms", "1500", "--request-timeout-s", "3",
             "--election-timeout-ms", "600", "--log-level", "WARNING")


def _targets(c: LocalCluster) -> list[Address]:
    out = [Address("127.0.0.1", c.http_port(i)) for i in c.ids]
    if c.lb_port is not None:
        out.append(Address("127.0.0.1", c.lb_port))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One correct 3-node cluster (behind HAProxy when it is installed) for the module."""
    with LocalCluster(3, base_port=free_base_port(), data_dir=tmp_path_factory.mktemp("refsys"),
                      node_args=NODE_ARGS) as c:
        yield c


def _serves(address: Address, timeout_s: float = 10.0) -> int:
    """A normal request (a read through the log) through ``address``: its status,
    retried for a while across a brief leader change."""
    deadline = time.monotonic() + timeout_s
    status = 0
    while time.monotonic() < deadline:
        try:
            status, _ = http_json(address.port, "GET", "/kv/hostile-probe", timeout_s=3)
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(0.1)
    return status


def test_the_adapter_takes_hostile_input() -> None:
    assert isinstance(ReferenceSystem(), TakesHostileInput)


def test_requests_are_json_ready_and_never_touch_the_workloads_names() -> None:
    for seed in range(3000):
        req = ReferenceSystem().hostile_request(random.Random(seed))
        assert req == json.loads(json.dumps(req))
        assert isinstance(req["why"], str) and 0 < len(req["why"]) <= 80, req["why"]
        assert req["method"] and req["path"].startswith("/")
        assert len(json.dumps(req)) < 25_000  # big bodies and headers are stored compressed
        parts = [p for p in req["path"].split("/") if p]
        if len(parts) >= 2 and parts[0] in ("kv", "items"):
            assert parts[1].startswith("hostile-"), req
        body = body_bytes(req)
        if body and req.get("encoding", "utf-8") == "utf-8" and not req.get("pad_to"):
            try:
                obj = json.loads(body)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj["id"]:
                assert obj["id"].startswith("hostile-"), req


def test_the_classes_are_all_drawn() -> None:
    rng = random.Random(7)
    whys = [hostile_request(rng)["why"] for _ in range(2000)]
    for part in ("nested", "truncated JSON", "not UTF-8", "random bytes", "not an object",
                 "is not JSON", "missing", "wrong type", "wrong method", "unknown route",
                 "chunked", "byte header", "byte body"):
        assert any(part in w for w in whys), part
    depths = {int(w.split("nested ")[1].split()[0]) for w in whys if "nested" in w}
    assert min(depths) <= 35 and max(depths) >= 3000 and any(900 < d < 1000 for d in depths)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_correct_cluster_refuses_every_drawn_request(cluster: LocalCluster, seed: int) -> None:
    system = ReferenceSystem()
    req = system.hostile_request(random.Random(seed))
    targets = _targets(cluster)
    target = targets[seed % len(targets)]
    answer, detail = system.send_hostile(req, target, timeout_s=10)
    assert answer == REFUSED, (req["why"], detail, target)
    assert detail.split()[0].startswith("4"), detail
    assert _serves(target) == 200, (req["why"], target)


# ------------------------------------------------------------------ the classifier


_ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/ok": (200, "application/json", b'{"ok":true}'),
    "/bad": (400, "application/json", b'{"error":"bad_request","definite":true}'),
    "/gone": (404, "text/plain", b"no"),
    "/internal": (500, "application/json",
                  b'{"error":"internal","definite":false,"message":"internal error"}'),
    "/timeout": (504, "application/json", b'{"error":"timeout","definite":false}'),
    "/no-leader": (503, "application/json",
                   b'{"error":"no_leader","definite":true,"message":"nothing proposed"}'),
    "/html": (503, "text/html", b"<html><body><h1>503 Service Unavailable</h1></body></html>"),
    "/lb": (502, "application/json",
            b'{"error":"lb-bad-gateway","definite":false,"source":"lb"}'),
    "/odd": (302, "text/plain", b""),
}


class _Stub(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/close":
            self.close_connection = True
            return
        if self.path == "/slow":
            time.sleep(1.0)
        status, ctype, body = _ANSWERS.get(self.path, _ANSWERS["/ok"])
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[Address]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Address("127.0.0.1", server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("path", "answer", "code"), [
    ("/ok", ACCEPTED, "200"),
    ("/bad", REFUSED, "400 bad_request"),
    ("/gone", REFUSED, "404"),
    ("/internal", ERROR, "500 internal"),
    ("/timeout", ERROR, "504 timeout"),
    ("/no-leader", REFUSED, "503 no_leader"),
    ("/html", NO_ANSWER, "503"),
    ("/lb", NO_ANSWER, "502 lb-bad-gateway"),
    ("/odd", NO_ANSWER, "302"),
    ("/close", DROPPED, "closed without an answer (RemoteDisconnected)"),
    ("/slow", NO_ANSWER, "no answer in 0.3 s"),
])
def test_answers_are_classified(stub: Address, path: str, answer: str, code: str) -> None:
    req = {"why": "test", "method": "POST", "path": path, "body": '{"x":1}'}
    got, detail = send_hostile(req, stub, timeout_s=0.3)
    assert (got, detail.startswith(code)) == (answer, True), (got, detail)


def test_no_listener_and_an_unsendable_request_are_no_answer(stub: Address) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    req = {"why": "test", "method": "GET", "path": "/ok"}
    assert send_hostile(req, Address("127.0.0.1", port), timeout_s=1) == (
        NO_ANSWER, "connection refused")
    bad = {"why": "test", "method": "POST", "path": "/ok", "body": "x", "encoding": "base64"}
    assert send_hostile(bad, stub, timeout_s=1)[0] == NO_ANSWER


# ------------------------------------------------------------------ the seeded bug


def _deep_write(depth: int) -> dict[str, Any]:
    value = "[" * (depth - 1) + "0" + "]" * (depth - 1)
    return {"why": f"'value' nested {depth} levels", "method": "POST",
            "path": f"/kv/hostile-deep-{depth}", "body": '{"value":' + value + "}"}


def test_no_depth_limit_accepts_a_deep_value(tmp_path: Path, cluster: LocalCluster) -> None:
    system = ReferenceSystem(bug="no_depth_limit")
    req = _deep_write(100)
    assert send_hostile(req, Address("127.0.0.1", cluster.http_port(1)), timeout_s=10)[0] == REFUSED
    with LocalCluster(3, base_port=free_base_port(), data_dir=tmp_path, node_args=NODE_ARGS,
                      env={"REFSYS_BUG": "no_depth_limit"}, haproxy=False) as bugged:
        leader = bugged.wait_for_leader()
        answer, detail = system.send_hostile(req, Address("127.0.0.1", bugged.http_port(leader)),
                                             timeout_s=10)
        assert answer == ACCEPTED, detail
        # deeper than the node's own JSON parser goes: refused even so
        too_deep = _deep_write(3000)
        answer, detail = system.send_hostile(too_deep, Address("127.0.0.1", bugged.http_port(1)),
                                             timeout_s=10)
        assert (answer, "400" in detail) == (REFUSED, True), detail
