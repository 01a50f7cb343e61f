"""``python -m reference_system.local``: brings a cluster up, serves, and
takes every process down on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference_system.local import free_base_port, haproxy_config, http_json

ROOT = Path(__file__).resolve().parents[2]


def test_launcher_serves_and_cleans_up(tmp_path: Path) -> None:
    base = free_base_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_system.local",
            "--nodes",
            "3",
            "--base-port",
            str(base),
            "--data-dir",
            str(tmp_path),
            "--",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # so cleanup can take down its nodes too
    )
    try:
        assert p.stdout is not None
        first = p.stdout.readline().decode()
        assert first.startswith("cluster in"), first
        port = base + 1
        assert http_json(port, "POST", "/kv/l", {"value": 1})[0] == 200
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        assert p.returncode == 0
        time.sleep(0.2)
        for i in (1, 2, 3):
            try:
                http_json(base + i, "GET", "/status", timeout_s=1)
                raise AssertionError(f"node {i} still serving")
            except OSError:
                pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_haproxy_config_has_the_required_checks(tmp_path: Path) -> None:
    cfg = haproxy_config(lb_port=9000, node_ports={1: 9001, 2: 9002}, socket_path=tmp_path / "s")
    for needle in [
        "option httpchk GET /health",
        "fall 2",
        "rise 2",
        "inter 250ms",
        "on-marked-down shutdown-sessions",
        "option redispatch",
        "retries 3",
        f"stats socket {tmp_path / 's'}",
        "server n2 127.0.0.1:9002 check",
    ]:
        assert needle in cfg


def test_benchmark_command_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from reference_system.bench import main

    assert main(["--clients", "4", "--duration-s", "0.5", "--no-haproxy", "--json",
                 "--systems", "refsys-local", "--rounds", "1", "--kills", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["workload"] for r in out["results"]] == ["kv write", "enqueue", "claim+complete"]
    assert all(r["ops"] > 0 for r in out["results"])
    assert out["failover_s"] < 10
