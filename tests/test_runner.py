"""Runs end to end on the local backend: files, verdicts, replay, bad arguments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def test_register_run_under_partitions_is_valid_and_stored(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("partition", 1.0, 3.0, {"plan": "isolate-leader"}),), seed=5)
    r = run(RunConfig(workload="register", nemesis=("partition",), time_limit_s=6,
                      seed=5, schedule=sched, reports_dir=tmp_path, rate_hz=40))
    assert r.error is None
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items()}
    files = {p.name for p in r.run_dir.iterdir()}
    assert {"history.jsonl", "results.json", "schedule.json", "logs"} <= files
    assert (r.run_dir.parent / "latest").resolve() == r.run_dir.resolve()
    results = json.loads((r.run_dir / "results.json").read_text())
    assert results["seed"] == 5 and results["schedule"]["faults"][0]["kind"] == "partition"
    assert results["verdict"] == "valid"
    history = (r.run_dir / "history.jsonl").read_text()
    assert '"f":"start-partition"' in history and '"f":"heal-all"' in history
    assert {p.name for p in (r.run_dir / "logs").iterdir()} >= {"n1.log", "haproxy.log"}
    # the stored history can be checked again, with the same verdict
    assert main(["check", str(r.run_dir)]) == 0


def test_queue_run_with_kill_is_valid(tmp_path: Path) -> None:
    sched = FaultSchedule((Fault("kill", 1.0, 3.0, {"node": "leader"}),), seed=7)
    r = run(RunConfig(workload="queue", nemesis=("kill",), time_limit_s=6, seed=7,
                      schedule=sched, reports_dir=tmp_path, rate_hz=40))
    assert r.error is None
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items()}
    assert r.results["queue"].details["acknowledged_count"] > 0


def test_cli_run_and_replay(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "harness", "run", "--workload", "register", "--nemesis",
            "pause", "--time-limit", "5", "--seed", "11", "--reports", str(tmp_path)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = tmp_path / "refsys-register-pause" / "latest"
    sched = json.loads((run_dir / "schedule.json").read_text())
    again = subprocess.run([*args[:-2], "--reports", str(tmp_path / "again"), "--replay",
                            str(run_dir / "results.json")],
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    replayed = json.loads((tmp_path / "again" / "refsys-register-pause" / "latest" /
                           "results.json").read_text())
    assert replayed["schedule"] == sched and replayed["seed"] == 11


@pytest.mark.parametrize(("args", "message"), [
    (["--nemesis", "meteor"], "unknown fault"),
    (["--system", "nope"], "no system named"),
    (["--workload", "nope"], "unknown workload"),
    (["--time-limit", "0"], "must be positive"),
    (["--replay", "/nonexistent.json"], "cannot read"),
])
def test_bad_run_arguments_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--reports", str(tmp_path),
                        *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_run_against_an_already_running_toxiproxy(tmp_path: Path) -> None:
    """--toxiproxy-url: the run creates its proxies there and removes only its own."""
    from harness.toxiproxy import ToxiproxyClient, toxiproxy_server

    with toxiproxy_server() as server:
        with ToxiproxyClient(server.url) as tp:
            tp.create_proxy("someone-elses", upstream="127.0.0.1:9", listen="127.0.0.1:0")
        r = run(RunConfig(workload="register", nemesis=("partition",), time_limit_s=4, seed=3,
                          reports_dir=tmp_path, rate_hz=30, toxiproxy_url=server.url))
        assert r.error is None and r.valid is True
        with ToxiproxyClient(server.url) as tp:
            assert set(tp.proxies()) == {"someone-elses"}


def test_rate_zero_keeps_every_worker_busy(tmp_path: Path) -> None:
    r = run(RunConfig(workload="register", nemesis=(), time_limit_s=3, seed=2,
                      reports_dir=tmp_path, rate_hz=0, concurrency=3))
    assert r.error is None and r.valid is True
    assert r.op_count > 300  # one op per worker would be 6 events, not hundreds


def test_harness_drives_an_in_memory_system_without_losing_ops(tmp_path: Path) -> None:
    """The benchmark's loop records every op it drives (figures come from the bench)."""
    from harness.bench.driver import measure
    from harness.formats import read_history

    rate = measure(seconds=0.5, concurrency=3, path=tmp_path / "h.jsonl")
    h = read_history(tmp_path / "h.jsonl")
    assert rate > 0 and len(h.calls()) > 100
    assert all(c.complete is not None for c in h.calls())


def test_ctrl_c_tears_down_and_keeps_a_checkable_history(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--workload", "queue", "--nemesis", "pause",
         "--time-limit", "30", "--reports", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = tmp_path / "refsys-queue-pause" / "latest" / "history.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not history.exists()
                                           or history.stat().st_size < 5000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err
    results = json.loads((history.parent / "results.json").read_text())
    assert results["verdict"] == "unknown" and results["error"] == "interrupted"
    assert main(["check", str(history.parent)]) in (0, 1, 2)  # readable, checkable
    # nothing the run started is left running
    time.sleep(1)
    for pattern in (str(tmp_path), "harness-refsys-queue-pause-"):  # LB config, node data
        leftover = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        assert leftover.stdout.strip() == "", (pattern, leftover.stdout)
