"""Clock control with libfaketime: which clocks move, on a real process and a real cluster,
and the seeded wall-clock lease bug against the correct tracker."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import clock
from harness.cluster.local import LocalCluster
from harness.pytest_plugin import require
from harness.systems.refsys import ReferenceSystem
from reference_system import leases
from reference_system.leases import LeaseTracker

# A child that answers each line on stdin with its clocks: no time.sleep (see harness.clock).
CHILD = ("import sys, time, json\n"
         "for _ in sys.stdin:\n"
         "    print(json.dumps([time.time(), time.monotonic()]), flush=True)\n")


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_offset_spec_is_a_signed_number_libfaketime_reads(seconds: float) -> None:
    spec = clock.offset_spec(seconds)
    assert spec[0] in "+-" and " " not in spec
    assert abs(float(spec) - seconds) <= 1e-6 + 1e-12 * abs(seconds)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_offset_spec_refuses_what_is_not_a_time(bad: float) -> None:
    with pytest.raises(ValueError):
        clock.offset_spec(bad)


def test_preload_env_keeps_the_nodes_own_preload() -> None:
    env = clock.preload_env("/x/n1", {"LD_PRELOAD": "/lib/other.so"})
    assert env["LD_PRELOAD"].split() == [clock.LIBFAKETIME, "/lib/other.so"]
    assert env["FAKETIME_NO_CACHE"] == "1" and env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"


def _ask(child: subprocess.Popen[str]) -> tuple[float, float]:
    """The child's (realtime - ours, monotonic - ours); the midpoint of our two reads."""
    assert child.stdin is not None and child.stdout is not None
    w0, m0 = time.time(), time.monotonic()
    child.stdin.write("\n")
    child.stdin.flush()
    wall, mono = json.loads(child.stdout.readline())
    w1, m1 = time.time(), time.monotonic()
    return wall - (w0 + w1) / 2, mono - (m0 + m1) / 2


def test_a_step_moves_the_realtime_clock_and_not_the_monotonic_one(tmp_path: Path) -> None:
    require(clock.available(), f"libfaketime is not installed ({clock.LIBFAKETIME})")
    control = tmp_path / "n1"
    clock.write_offset(control, 0)
    env = {**os.environ, **clock.preload_env(str(control), dict(os.environ))}
    with subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env=env) as child:
        try:
            seen = []
            for offset in (0.0, 1000.0, -500.5, 0.0):
                clock.write_offset(control, offset)
                wall, mono = _ask(child)
                seen.append((offset, wall, mono))
                assert abs(wall - offset) < 0.5, seen
                assert abs(mono) < 0.5, seen  # the monotonic clock is system-wide: comparable
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=10)


def _get(url: str, body: Any = None) -> Any:
    """One request, retried for 20 s while the cluster has no leader (an election on a
    loaded 2-core machine answers 502/503); an enqueue retried with its id is one enqueue
    (409 ``exists`` says the first attempt took effect)."""
    data = None if body is None else json.dumps(body).encode()
    deadline = time.monotonic() + 20
    while True:
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 409:
                return json.loads(e.read())
            if e.code < 500 or time.monotonic() > deadline:
                raise
        except OSError:
            if time.monotonic() > deadline:
                raise
        threading.Event().wait(0.2)


def _stamped(url: str, item: str, offset: float) -> None:
    """Enqueue ``item``: its stamp (the leader's wall clock) is the real time of the
    enqueue moved by ``offset`` (0.1 s for the millisecond stamp and rounding)."""
    before = time.time()
    _get(f"{url}/enqueue", {"id": item})
    after = time.time()
    stamped = _get(f"{url}/items/{item}")["enqueued_ms"] / 1000.0
    assert before + offset - 0.1 <= stamped <= after + offset + 0.1, (before, stamped, after)


def _environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


def test_local_cluster_steps_a_nodes_wall_clock_and_nothing_else(tmp_path: Path) -> None:
    """Under a step the leader stamps items with its moved clock (what clients see),
    keeps serving, and HAProxy and Toxiproxy stay on the real clock."""
    require(clock.available(), f"libfaketime is not installed ({clock.LIBFAKETIME})")
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    with LocalCluster(ReferenceSystem(), nodes=3, run_dir=tmp_path, run_id="clk",
                      clock_faults=True) as c:
        c.wait_ready(timeout_s=20)
        lb = c.lb_address()
        assert lb is not None
        for n in c.nodes:
            c.set_clock_offset(n, 3600.0)
        assert c.clock_offset("n2") == 3600.0
        _stamped(f"http://{lb}", "ahead", 3600.0)
        for n in c.nodes:
            c.set_clock_offset(n, 0.0)
        _stamped(f"http://{lb}", "now", 0.0)
        procs = c._procs
        assert all(procs[n].running() for n in c.nodes)
        assert clock.LIBFAKETIME in _environ(procs["n1"].popen.pid)  # type: ignore[union-attr]
        assert c._lb is not None and c._lb.popen is not None
        assert "LD_PRELOAD" not in _environ(c._lb.popen.pid)
        assert "LD_PRELOAD" not in os.environ  # the harness itself


def test_set_clock_offset_refuses_a_system_that_ignores_libfaketime(tmp_path: Path) -> None:
    from harness.cluster.local import ClusterError

    system = ReferenceSystem()
    system.clock_control = "none"
    c = LocalCluster(system, nodes=1, run_dir=tmp_path, run_id="noclk", load_balancer=False,
                     clock_faults=True)
    with pytest.raises(ClusterError, match="libfaketime"):
        c.set_clock_offset("n1", 5.0)
    # nor does a cluster built without clock faults (its nodes run on the real clock)
    plain = LocalCluster(ReferenceSystem(), nodes=1, run_dir=tmp_path, run_id="noclk2",
                         load_balancer=False)
    with pytest.raises(ClusterError, match="without clock faults"):
        plain.set_clock_offset("n1", 5.0)


class _Wall:
    """A wall clock the test steps (time.time as the lease tracker sees it)."""

    def __init__(self) -> None:
        self.s = 1_000_000.0

    def __call__(self) -> float:
        return self.s


def test_wall_clock_lease_bug_expires_on_a_step_and_the_tracker_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wall = _Wall()
    monkeypatch.setattr(leases.time, "time", wall)
    good = LeaseTracker(lease_ms=2000)
    bad = LeaseTracker(lease_ms=2000, bugs=frozenset({"wall_clock_lease"}))
    for t in (good, bad):  # a leader for 10 s sees a claim at monotonic 10 s
        t.observe({"a": (7, 0)}, now_ms=10_000)
    assert good.due(10_500, leader_since_ms=0) == bad.due(10_500, leader_since_ms=0) == []
    wall.s += 30.0  # the wall clock steps forward 30 s; 0.5 s pass on the monotonic clock
    assert good.due(11_000, leader_since_ms=0) == []
    assert bad.due(11_000, leader_since_ms=0) == [("a", 7, 0)]
    # without a step the bug agrees with the tracker: only a clock fault shows it
    wall.s -= 30.0
    wall.s += 2.5
    assert good.due(12_500, leader_since_ms=0) == bad.due(12_500, leader_since_ms=0) == [
        ("a", 7, 0)]


def test_both_backends_can_step_clocks() -> None:
    from harness.cluster.docker import DockerCluster

    for backend in (LocalCluster, DockerCluster):
        assert issubclass(backend, clock.ClockControl), backend
