"""A local run's life from the outside: started from any folder, stopped by any of
SIGINT, SIGTERM or SIGHUP (clean teardown, results written, exit 128 + signal),
and, when SIGKILLed, cleaned up by ``harness gc`` from the record it keeps.

Each test gives its runs a private state dir (``HARNESS_STATE_DIR``), so gc
here never sees, let alone touches, another run on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.cluster.local import LocalCluster, gc, records
from harness.cluster.owner import Owner, pid_alive, process_start
from harness.pytest_plugin import require
from harness.systems.refsys import ReferenceSystem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(d))
    return d


def need_haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_relative_reports_folder_from_another_cwd(tmp_path: Path, state: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The default ``--reports reports`` is relative; HAProxy runs in the run folder and
    was once handed a config path relative to the caller's folder ("haproxy exited")."""
    need_haproxy()
    monkeypatch.chdir(tmp_path)
    rc = main(["run", "--backend", "local", "--time-limit", "2", "--nemesis", "none",
               "--reports", "rel", "--test", "relative", "--seed", "1"])
    results = json.loads((tmp_path / "rel/relative/latest/results.json").read_text())
    assert results["error"] is None
    assert rc == 0, results
    assert records() == []  # a finished run leaves no record behind


def _start_run(tmp_path: Path, state: Path, test: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HARNESS_STATE_DIR": str(state)}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--backend", "local", "--time-limit", "60",
         "--nemesis", "none", "--reports", str(tmp_path / "rel"), "--test", test,
         "--seed", "1", "--check-time-limit", "5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_signals)


def _default_signals() -> None:
    """In the child: the stop signals as a terminal gives them. Under ``nohup`` (a test
    run started in the background) SIGHUP is inherited ignored, and a run rightly keeps
    an ignored signal ignored, so the SIGHUP case would test nothing."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _running(tmp_path: Path, test: str) -> dict[str, Any]:
    """The run's record once every child is up and clients have started."""
    def ready() -> dict[str, Any] | None:
        recs = records()
        history = tmp_path / "rel" / test / "latest" / "history.jsonl"
        if len(recs) == 1 and "lb" in recs[0][1]["children"] and history.exists() \
                and history.stat().st_size > 0:
            return recs[0][1]
        return None

    rec: dict[str, Any] = wait_for(ready, 60, "the run to start its clients")
    return rec


def _children(rec: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {name: (c["pid"], c["start"]) for name, c in rec["children"].items()}


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[str]]]:
    """Harness processes a test started; killed if the test failed before they ended."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_tears_down_and_writes_results(tmp_path: Path, state: Path, sig: int,
                                                reap: list[subprocess.Popen[str]]) -> None:
    need_haproxy()
    test = f"sig{int(sig)}"
    proc = _start_run(tmp_path, state, test)
    reap.append(proc)
    rec = _running(tmp_path, test)
    children = _children(rec)
    assert set(children) == {"toxiproxy", "n1", "n2", "n3", "lb"}
    assert all(pid_alive(pid, start) for pid, start in children.values())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, err
    run_dir = (tmp_path / "rel" / test / "latest").resolve()
    assert f"interrupted ({name}); run folder: " in err and run_dir.name in err, err
    survivors = [n for n, (pid, start) in children.items() if pid_alive(pid, start)]
    assert survivors == []
    assert records() == []
    assert not any(Path(p).exists() for p in rec["paths"])  # temp data, toxiproxy's log
    results = json.loads((run_dir / "results.json").read_text())
    assert results["error"] == f"interrupted ({name})"
    assert results["verdict"] == "unknown"
    assert results["op_count"] > 0
    assert (run_dir / "logs" / "n1.log").exists()


def test_gc_removes_what_a_sigkilled_run_left(tmp_path: Path, state: Path,
                                              reap: list[subprocess.Popen[str]]) -> None:
    need_haproxy()
    proc = _start_run(tmp_path, state, "killed")
    reap.append(proc)
    rec = _running(tmp_path, "killed")
    children = _children(rec)
    proc.kill()
    proc.wait()
    time.sleep(0.5)
    try:
        # what a SIGKILL leaves: every child, the temp data, the record
        assert all(pid_alive(pid, start) for pid, start in children.values())
        assert Path(rec["paths"][0]).is_dir()
        assert main(["gc", "--run-id", rec["run_id"]]) == 0
        assert [n for n, (pid, start) in children.items() if pid_alive(pid, start)] == []
        assert not Path(rec["paths"][0]).exists()
        assert records() == []
    finally:
        for pid, start in children.values():
            if pid_alive(pid, start):
                os.killpg(pid, signal.SIGKILL)


# --- gc and owners, without a cluster -------------------------------------------------


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


def _record(state: Path, run_id: str, owner: dict[str, Any],
            children: dict[str, subprocess.Popen[bytes]], start: str | None = None) -> Path:
    folder = state / "local"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{run_id}.data"
    data.mkdir()
    path = folder / f"{run_id}.x.json"
    path.write_text(json.dumps({
        "run_id": run_id, "owner": owner, "paths": [str(data)], "toxiproxy": None,
        "children": {n: {"pid": p.pid, "start": start or process_start(p.pid)}
                     for n, p in children.items()}}))
    return path


def test_gc_skips_a_run_whose_owner_lives_unless_forced(state: Path) -> None:
    child = _sleeper()
    try:
        _record(state, "live", Owner.current().to_dict(), {"n1": child})
        removed = gc()
        assert removed["processes"] == [] and len(removed["skipped"]) == 1
        assert "live" in removed["skipped"][0] and "alive" in removed["skipped"][0]
        assert child.poll() is None
        removed = gc(force=True)
        assert removed["processes"] == [f"live/n1 (pid {child.pid})"]
        assert child.wait(5) == -signal.SIGKILL
        assert records() == []
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_is_not_the_owner_nor_a_child(state: Path) -> None:
    """Our own pid with another start time: the recorded owner died and its pid went to
    us; the child's pid now belongs to an unrelated process, which must survive."""
    unrelated = _sleeper()
    try:
        me = Owner.current()
        assert me.alive() is True
        _record(state, "dead", {**me.to_dict(), "start": "1.00"}, {"n1": unrelated},
                start="2.00")
        removed = gc()
        assert removed["skipped"] == [] and removed["processes"] == []
        assert unrelated.poll() is None
        assert records() == []  # the dead run's record and folder are gone
        assert not (state / "local" / "dead.data").exists()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_an_owner_on_another_host_is_left_alone(state: Path) -> None:
    _record(state, "remote", {"pid": 1, "host": "elsewhere.invalid", "start": "1.00"}, {})
    assert gc()["skipped"] == ["remote (owner on host elsewhere.invalid)"]
    assert len(records()) == 1


def test_gc_cli_help_and_output(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gc", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--force" in text and "still alive" in text and "--images" in text
    _record(state, "live", Owner.current().to_dict(), {})
    assert main(["gc", "--run-id", "live"]) == 0
    assert "local: skipped run live" in capsys.readouterr().out


def test_cluster_records_its_children(tmp_path: Path, state: Path) -> None:
    need_haproxy()
    with LocalCluster(ReferenceSystem(), nodes=1, run_dir=tmp_path / "run",
                      run_id="rec") as c:
        [(path, rec)] = records()
        assert rec["run_id"] == "rec" and Owner.from_dict(rec["owner"]) == Owner.current()
        assert set(rec["children"]) == {"toxiproxy", "n1", "lb"}
        old = rec["children"]["n1"]["pid"]
        c.restart("n1")  # a restarted node is a new process: the record follows
        [(_, rec)] = records()
        assert rec["children"]["n1"]["pid"] != old
        assert pid_alive(rec["children"]["n1"]["pid"], rec["children"]["n1"]["start"])
    assert not path.exists()


_CLUSTER_CHILD = """
import sys, time
from pathlib import Path
from harness.cluster.local import LocalCluster
from harness.systems.refsys import ReferenceSystem
with LocalCluster(ReferenceSystem(), nodes=1, run_dir=Path(sys.argv[1]), run_id="bare"):
    print("up", flush=True)
    time.sleep(120)
"""


def test_sigterm_stops_a_bare_cluster_too(tmp_path: Path, state: Path) -> None:
    """Outside ``harness run`` (the conformance kit, a script), SIGTERM still unwinds the
    ``with`` block instead of ending Python on the spot."""
    need_haproxy()
    proc = subprocess.Popen([sys.executable, "-c", _CLUSTER_CHILD, str(tmp_path / "run")],
                            cwd=ROOT, env={**os.environ, "HARNESS_STATE_DIR": str(state)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        [(_, rec)] = records()
        children = _children(rec)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
        assert [n for n, (pid, start) in children.items() if pid_alive(pid, start)] == []
        assert records() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the runner's signal handling, in-process -----------------------------------------


def test_stop_signals_raise_then_defer_then_force() -> None:
    from harness.interrupts import Interrupted, StopSignals

    before = signal.getsignal(signal.SIGTERM)
    hup = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # under nohup it comes ignored
    try:
        with pytest.raises(Interrupted) as e, StopSignals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGHUP, hup)
    assert e.value.exit_code == 129 and e.value.signal_name == "SIGHUP"
    with StopSignals() as s:
        s.defer()  # past the cluster phase: noted, the results still get written
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second one during teardown: ignored
        time.sleep(0.1)
        assert s.received == signal.SIGTERM
        with pytest.raises(Interrupted):  # a third forces the way out
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored() -> None:
    """``nohup harness run ...``: SIGHUP must not stop the run."""
    from harness.interrupts import StopSignals

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopSignals() as s:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.1)
            assert s.received is None
    finally:
        signal.signal(signal.SIGHUP, old)


def test_a_signal_during_the_check_still_writes_its_verdict(
        tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Past the cluster phase a signal is only noted: the check finishes, results.json
    gets the real verdict, and then the command exits 128 + signal."""
    import harness.runner as runner

    need_haproxy()
    real = runner.check_history

    def check_then_signalled(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "check_history", check_then_signalled)
    rc = main(["run", "--backend", "local", "--time-limit", "2", "--nemesis", "none",
               "--reports", str(tmp_path), "--test", "late", "--seed", "1"])
    assert rc == 143
    assert "interrupted (SIGTERM); run folder:" in capsys.readouterr().err
    results = json.loads((tmp_path / "late/latest/results.json").read_text())
    assert results["error"] is None and results["verdict"] == "valid"
