"""Local processes behind a real HAProxy: the load balancer keeps serving when
the leader dies, and takes a paused (unresponsive) node out of rotation within
about two seconds and back once it answers again. Skipped when haproxy is not
installed, except in CI (``CI=true``), where that is a failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from refsys_helpers import NODE_ARGS

from harness.pytest_plugin import require
from reference_system.local import LocalCluster, find_haproxy, free_base_port, http_json


@pytest.fixture(autouse=True)
def _needs_haproxy() -> None:
    require(find_haproxy() is not None, "haproxy is not installed")


FAST = NODE_ARGS


@pytest.fixture
def lb_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(
        3, base_port=free_base_port(), data_dir=tmp_path, node_args=FAST, haproxy=True
    ) as c:
        yield c


def server_states(c: LocalCluster) -> dict[str, str]:
    """Each backend server's status from HAProxy's runtime API."""
    return {f"n{i}": state for i, state in c.lb_states().items()}


def wait(pred, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_lb_routes_only_to_healthy_nodes_and_survives_leader_death(
    lb_cluster: LocalCluster,
) -> None:
    c = lb_cluster
    assert c.lb_port is not None
    wait(lambda: set(server_states(c).values()) == {"UP"}, 5)
    for k in range(10):
        assert http_json(c.lb_port, "POST", f"/kv/lb{k}", {"value": k})[0] == 200
    leader = c.wait_for_leader()
    c.kill(leader)
    wait(lambda: server_states(c)[f"n{leader}"].startswith("DOWN"), 3)
    lb = c.lb_port

    def write_ok() -> bool:
        try:
            return http_json(lb, "POST", "/kv/after", {"value": 1}, timeout_s=3)[0] == 200
        except OSError:
            return False

    assert wait(write_ok, 10) < 10
    for k in range(10):
        assert http_json(lb, "GET", f"/kv/lb{k}")[1]["value"] == k


def test_paused_node_leaves_rotation_within_two_seconds_and_returns(
    lb_cluster: LocalCluster,
) -> None:
    c = lb_cluster
    wait(lambda: set(server_states(c).values()) == {"UP"}, 5)
    leader = c.wait_for_leader()
    victim = next(i for i in c.ids if i != leader)
    c.pause(victim)
    try:
        out_s = wait(lambda: server_states(c)[f"n{victim}"].startswith("DOWN"), 5)
        assert out_s < 2.0, out_s
        assert c.lb_port is not None
        for k in range(6):  # the LB does not send clients to the paused node
            assert http_json(c.lb_port, "POST", f"/kv/p{k}", {"value": k}, timeout_s=3)[0] == 200
    finally:
        c.resume(victim)
    wait(lambda: server_states(c)[f"n{victim}"] == "UP", 5)


def test_lb_sends_requests_to_the_leader_and_to_any_healthy_node_without_one(
    lb_cluster: LocalCluster,
) -> None:
    """Only the leader passes ``/health?role=leader``; while it does, the load balancer
    sends it every request (a follower would forward it, one more hop). With no server
    up in the leader backend, requests go round robin to every healthy node, which
    forward; a killed leader's successor takes the traffic once it passes its check."""
    c = lb_cluster
    assert c.lb_port is not None
    lb = c.lb_port
    wait(lambda: set(server_states(c).values()) == {"UP"}, 5)
    leader = c.wait_for_leader()
    wait(lambda: {i: http_json(c.http_port(i), "GET", "/health?role=leader")[0]
                  for i in c.ids} == {i: 200 if i == leader else 503 for i in c.ids}, 3)
    wait(lambda: http_json(lb, "GET", "/health")[1]["id"] == leader, 3)
    assert {http_json(lb, "GET", "/health")[1]["id"] for _ in range(12)} == {leader}
    # the leader backend emptied (maintenance, through HAProxy's runtime API): every
    # healthy node is in rotation, and a write through a follower is forwarded
    for i in c.ids:
        _runtime(c, f"disable server leader/n{i}")
    assert {http_json(lb, "GET", "/health")[1]["id"] for _ in range(12)} == set(c.ids)
    assert http_json(lb, "POST", "/kv/spread", {"value": 1})[0] == 200
    for i in c.ids:
        _runtime(c, f"enable server leader/n{i}")
    c.kill(leader)
    for k in range(5):  # served again within the failover goal, then by the next leader
        deadline = time.monotonic() + 3.0
        while _status(lb, f"/kv/after{k}", k) != 200:
            assert time.monotonic() < deadline, "no write served 3 s after the leader died"
            time.sleep(0.1)
    new = c.wait_for_leader(exclude=leader)
    wait(lambda: http_json(lb, "GET", "/health")[1]["id"] == new, 3)


def _status(lb: int, path: str, value: int) -> int | None:
    """A write's status through the load balancer; None when the connection was cut (a
    session on the dead leader is shut down), which a client would retry."""
    import http.client

    try:
        return http_json(lb, "POST", path, {"value": value}, timeout_s=2.0)[0]
    except (OSError, http.client.HTTPException):
        return None


def _runtime(c: LocalCluster, command: str) -> str:
    """One command to HAProxy's runtime API (the launcher's admin socket)."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2.0)
        s.connect(str(c.haproxy_socket))
        s.sendall(command.encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode()
