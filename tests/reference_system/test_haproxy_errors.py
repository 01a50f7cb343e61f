"""HAProxy's own errors are JSON a client can classify, and the harness's
client reads them conservatively (a real haproxy, the harness's config).

HAProxy used to answer 502/503/504 with its HTML pages. The harness's config
(``harness.cluster.haproxy``) now answers JSON: ``definite: false`` for every
error HAProxy makes (a 502 or 504 may follow a request a node applied), and
``definite: true`` only for ``lb-no-server``, which the backend returns
before choosing any server. A node's own errors pass through unchanged. The
servers here are a stub "node" whose answer depends on the path: a health
check that passes, a connection closed without an answer (502), an answer
slower than the server timeout (504), the node's own definite 503.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness import sockets
from harness.client import OpType
from harness.cluster.haproxy import LB_ERRORS, haproxy_config, read_server_states
from harness.pytest_plugin import require
from harness.system import Address, HealthCheck
from harness.systems.refsys_client import RefsysClient
from reference_system.local import find_haproxy


class _StubNode(BaseHTTPRequestHandler):
    """``/health`` 200; ``/kv/close`` closes; ``/kv/slow`` answers after 2 s; ``/kv/own`` 503."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200, {"ok": True})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/kv/close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path == "/kv/slow":
            time.sleep(2.0)
        if self.path == "/kv/own":
            self._answer(503, {"error": "no_leader", "definite": True, "message": "no leader"})
            return
        self._answer(200, {"ok": True})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The slow answer meets a connection HAProxy already gave up on: expected."""


def _free_port() -> int:
    return sockets.free_port()


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[tuple[Address, Address, ThreadingHTTPServer]]:
    """(LB address, stats address, the stub node), HAProxy running with the harness's config."""
    binary = find_haproxy()
    require(binary is not None, "haproxy is not installed")
    assert binary is not None
    node = _QuietServer(("127.0.0.1", 0), _StubNode)
    threading.Thread(target=node.serve_forever, daemon=True).start()
    bind, stats = Address("127.0.0.1", _free_port()), Address("127.0.0.1", _free_port())
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        haproxy_config(
            bind=bind,
            servers={"n1": Address("127.0.0.1", node.server_address[1])},
            check=HealthCheck(),
            stats=stats,
            timeout_server_s=0.5,
        )
    )
    process = subprocess.Popen(
        [binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if [s.status for s in read_server_states(stats)] == ["UP"]:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "haproxy did not come up"
            time.sleep(0.05)
        yield bind, stats, node
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()
            process.wait(5)
        node.shutdown()
        node.server_close()


def _post(addr: Address, path: str) -> tuple[int, str, Any]:
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=5)
    try:
        conn.request("POST", path, body=b'{"value": 1}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", json.loads(
            response.read()
        )
    finally:
        conn.close()


def test_lb_errors_are_json_and_indeterminate(
    lb: tuple[Address, Address, ThreadingHTTPServer],
) -> None:
    bind, _stats, _node = lb
    for path, status, code in [("/kv/close", 502, "lb-bad-gateway"),
                               ("/kv/slow", 504, "lb-gateway-timeout")]:
        got, content_type, body = _post(bind, path)
        assert (got, content_type) == (status, "application/json"), (path, body)
        assert body["error"] == code and body["definite"] is False and body["source"] == "lb"
    # The node's own error passes through untouched.
    assert _post(bind, "/kv/own") == (
        503, "application/json", {"error": "no_leader", "definite": True, "message": "no leader"}
    )
    client = RefsysClient(bind, worker="w", timeout_s=5)
    try:
        outcomes = {key: client.invoke("write", [key, 1]) for key in ["close", "slow", "own", "x"]}
    finally:
        client.close()
    assert (outcomes["close"].type, outcomes["close"].error) == (OpType.INFO, "lb-bad-gateway")
    assert (outcomes["slow"].type, outcomes["slow"].error) == (OpType.INFO, "lb-gateway-timeout")
    assert (outcomes["own"].type, outcomes["own"].error) == (OpType.FAIL, "no_leader")
    assert outcomes["x"].type == OpType.OK


def test_no_server_up_is_the_one_definite_lb_error(
    lb: tuple[Address, Address, ThreadingHTTPServer],
) -> None:
    bind, stats, node = lb
    node.shutdown()
    node.server_close()
    deadline = time.monotonic() + 10
    while [s.status for s in read_server_states(stats)] != ["DOWN"]:
        assert time.monotonic() < deadline, "the stub node was never marked down"
        time.sleep(0.05)
    status, content_type, body = _post(bind, "/kv/k")
    assert (status, content_type) == (503, "application/json")
    assert body["error"] == "lb-no-server" and body["definite"] is True
    client = RefsysClient(bind, worker="w", timeout_s=5)
    try:
        outcome = client.invoke("write", ["k", 1])
    finally:
        client.close()
    assert (outcome.type, outcome.error) == (OpType.FAIL, "lb-no-server")


@pytest.mark.parametrize("status", sorted(LB_ERRORS))
def test_every_other_lb_error_reads_as_indeterminate(status: int) -> None:
    """The bodies the config serves, through the client's classification (no haproxy)."""
    code, message = LB_ERRORS[status]
    client = RefsysClient(Address("127.0.0.1", 9), worker="w")
    body = {"error": code, "definite": False, "message": message, "source": "lb"}
    outcome = client._outcome("enqueue", status, body)
    assert outcome is not None and (outcome.type, outcome.error) == (OpType.INFO, code)
    # An HTML page (HAProxy's default, or another proxy's) is indeterminate too.
    html = client._outcome("enqueue", status, "<html><body><h1>502 Bad Gateway</h1>")
    assert html is not None and html.type == OpType.INFO


def test_the_launchers_own_config_answers_json_too(tmp_path: Path) -> None:
    """``python -m reference_system.local`` writes its own HAProxy config (the system
    knows nothing of its tester): with no node up it answers the definite
    ``lb-no-server``, as JSON, not HAProxy's HTML page."""
    from reference_system.local import haproxy_config as launcher_config

    exe = find_haproxy()
    require(exe is not None, "haproxy is not installed")
    lb, dead = _free_port(), _free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(launcher_config(lb_port=lb, node_ports={1: dead},
                                   socket_path=tmp_path / "stats.sock"))
    proc = subprocess.Popen([str(exe), "-f", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        body: Any = None
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", lb, timeout=2)
                conn.request("GET", "/kv/x")
                resp = conn.getresponse()
                status, raw = resp.status, resp.read()
                conn.close()
                body = json.loads(raw)
                if body.get("error") == "lb-no-server":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        assert status == 503 and body == {"error": "lb-no-server", "definite": True,
                                          "source": "lb"}, body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
