"""The ``harness`` command: exit codes, one-line errors, verdict tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.examples import simulate_queue, simulate_work_items
from harness.formats import write_jsonl


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=120)


def test_check_valid_and_invalid_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    write_jsonl(simulate_queue(3), good)
    write_jsonl(simulate_queue(3, bug="lost"), bad)
    assert main(["check", str(good)]) == 0
    assert main(["check", str(bad)]) == 1
    assert main(["check", str(good), str(bad)]) == 1


def test_check_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "w.jsonl"
    write_jsonl(simulate_work_items(1, bug="stale-token"), p)
    assert main(["check", "--json", str(p)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False
    assert set(out["results"]) == {"queue", "fencing"}
    assert "stale-accepted" in out["results"]["fencing"]["anomalies"]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"type":"invoke","process":0,"f":"read"}\n{"type": 7}\n')
    r = run("check", str(p))
    assert r.returncode == 2
    want = f"harness: {p}:2: 'type' must be one of invoke, ok, fail, info; got 7"
    assert r.stderr.strip() == want
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "/nonexistent/h.jsonl"], "no such file"),
        (["check", "--format", "yaml", "README.md"], "unknown format"),
        (["check", "--checker", "nope", "README.md"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_operation_for_the_model_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    p.write_text('{"type":"invoke","process":0,"f":"frob","value":1}\n'
                 '{"type":"ok","process":0,"f":"frob","value":1}\n')
    r = run("check", str(p))
    assert r.returncode == 2 and "frob" in r.stderr
    r = run("check", "--model", "cas-register", str(p))
    assert r.returncode == 2 and "frob" in (r.stdout + r.stderr)


def test_empty_history_is_not_valid(tmp_path: Path) -> None:
    """Nothing to check proves nothing: exit 2, not 0 (tests/test_check_command.py says more)."""
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    assert main(["check", str(p)]) == 2


def test_check_of_a_run_folder_uses_the_runs_model(tmp_path: Path) -> None:
    """``harness check <run dir>`` judges with the model the run itself used."""
    from harness.testing import history, invoke, ok

    h = history(invoke(0, "write", ["k", 1]), ok(0, "write", ["k", 1]),
                invoke(1, "read", ["k", None]), ok(1, "read", ["k", None]))
    write_jsonl(h, tmp_path / "history.jsonl")
    assert main(["check", str(tmp_path)]) == 0  # no results.json: Knossos's wildcard nil
    from harness.checker import linearizable
    from harness.checker.models import get_model

    lin = linearizable(h, model=get_model("strict-cas-register-per-key"))
    (tmp_path / "results.json").write_text(json.dumps(
        {"results": {"linearizable": lin.to_dict()}}, default=str))
    assert main(["check", str(tmp_path)]) == 1
    assert main(["check", str(tmp_path), "--model", "cas-register-per-key"]) == 0


def test_systems_lists_each_installed_system_with_its_workloads() -> None:
    r = run("systems")
    assert r.returncode == 0, r.stderr
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip()
            for ln in r.stdout.splitlines() if ln.count("│") >= 3}
    assert rows["refsys"] == "register, queue, takeover"
    assert rows["etcd"] == "register, queue"
    assert rows["redis"] == "queue"


# --- harness run: help, options, refusals --------------------------------------------


def test_run_help_lists_workloads_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.workloads import WORKLOADS

    with pytest.raises(SystemExit) as e:
        main(["run", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"what the clients do: {', '.join(WORKLOADS)}" in text  # takeover too
    for shown in ("(default: register)", "(default: 30.0)", "(default: 5)", "(default: 3)",
                  "(default: 120.0)", "(default: partition)", "(default: a fresh one"):
        assert shown in text, shown
    for option in ("--time-limit SECONDS", "--concurrency N", "--nodes N", "--seed SEED",
                   "--check-time-limit SECONDS", "--option KEY=VALUE"):
        assert option in text, option
    assert "128 + the signal" in text  # exit codes, interrupts included


@pytest.mark.parametrize("args, message", [
    (["--workload", "takeover", "--system", "etcd"],
     "harness: etcd has no takeover workload; it has: register, queue"),
    (["--workload", "nope"], "unknown workload 'nope'; known: register, queue, takeover"),
    (["--option", "lease_ms"], "system option 'lease_ms' is not KEY=VALUE"),
    (["--option", "nope=1"], "bad options for system 'refsys'"),
    (["--check-time-limit", "0"], "--check-time-limit"),
])
def test_run_refusals_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    r = run("run", "--time-limit", "1", *args)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_run_passes_system_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--option`` reaches the system (and is stored, so a replay uses it again)."""
    import harness.commands.run as run_cmd
    from harness.runner import RunConfig

    seen: dict[str, RunConfig] = {}

    def fake_run(cfg: RunConfig, **kw: object) -> object:
        seen["cfg"] = cfg
        raise run_cmd.HarnessError("stop here")

    monkeypatch.setattr(run_cmd, "run", fake_run)
    assert main(["run", "--option", "lease_ms=1500", "--option", "worker=true",
                 "--check-time-limit", "7"]) == 2
    cfg = seen["cfg"]
    assert cfg.system_options == {"lease_ms": 1500, "worker": True}
    assert cfg.check_time_limit_s == 7.0
    assert cfg.to_dict()["system_options"] == {"lease_ms": 1500, "worker": True}


def test_run_ids_are_unique_readable_and_valid_docker_names() -> None:
    import re

    from harness.store import RUN_ID_NAME_CHARS, new_run_id

    long = "refsys-register-partition+kill+pause+latency+stall-with-a-long-name"
    ids = {new_run_id(long) for _ in range(2000)}  # as if all started in the same second
    assert len(ids) == 2000
    for rid in ids:
        assert rid.startswith("refsys-register-partition-kill")  # the front, readable
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", rid), rid
        assert len(rid) <= RUN_ID_NAME_CHARS + 13
    assert re.fullmatch(r"run-[0-9a-f]{12}", new_run_id("+++"))
    assert new_run_id("_x.y").startswith("x.y-")
