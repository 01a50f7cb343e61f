"""``clock`` catches the seeded ``wall_clock_lease`` bug, nothing else does, and the correct
reference system stays valid under it (slow: three real runs of about a minute)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.bench.campaigns import anomalies
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, RunResult, run

pytestmark = pytest.mark.slow

#: the leader's wall clock jumps 30 s ahead (a lease is 2 s) and strobes later
SCHEDULE = [Fault("clock", 2.0, 3.0, {"mode": "bump", "node": "leader", "delta_s": 30.0}),
            Fault("clock", 6.0, 2.0, {"mode": "strobe", "node": "leader", "delta_s": -30.0,
                                      "period_ms": 250})]


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    require(clock.available(), f"libfaketime is not installed ({clock.LIBFAKETIME})")


def _run(tmp_path: Path, seed: int, *, bug: str | None, faults: list[Fault]) -> RunResult:
    kinds = tuple(sorted({f.kind for f in faults}))
    return run(RunConfig(workload="queue", nemesis=kinds, time_limit_s=10.0, concurrency=5,
                         rate_hz=80.0, seed=seed, bug=bug, reports_dir=tmp_path,
                         schedule=FaultSchedule(tuple(faults), seed=seed)))


def _clock_records(r: RunResult) -> list[dict[str, Any]]:
    ops = [json.loads(line) for line in (r.run_dir / "history.jsonl").read_text().splitlines()]
    return [o["value"] for o in ops if o["process"] == "nemesis" and o["f"] == "start-clock"]


def test_clock_catches_wall_clock_leases(tmp_path: Path, harness_seed: int) -> None:
    r = _run(tmp_path, harness_seed, bug="wall_clock_lease", faults=SCHEDULE)
    assert r.valid is False and r.results["lease"].valid is False, r.run_dir
    assert "lease-overlap" in anomalies(r)["lease"]
    assert r.results["fencing"].valid is True  # the late holder is refused: only leases see it
    starts = _clock_records(r)
    assert len(starts) == 2 and all("error" not in s for s in starts), starts
    report = (r.run_dir / "report.html").read_text()
    assert 'id="clock-lane"' in report and "held throughout" in report


def test_the_correct_system_stays_valid_under_the_same_clock_faults(
        tmp_path: Path, harness_seed: int) -> None:
    r = _run(tmp_path, harness_seed, bug=None, faults=SCHEDULE)
    assert r.results["lease"].valid is True, r.run_dir
    assert r.results["lease"].details["claims_with_lease"] > 0  # leases were judged
    assert r.valid is not False, r.run_dir
    assert len(_clock_records(r)) == 2


def test_without_clock_faults_the_bug_goes_unseen(tmp_path: Path, harness_seed: int) -> None:
    r = _run(tmp_path, harness_seed, bug="wall_clock_lease",
             faults=[Fault("kill", 2.0, 2.0, {"node": "leader"}),
                     Fault("pause", 6.0, 1.5, {"node": "leader"})])
    assert r.results["lease"].valid is True, r.run_dir
    assert r.results["lease"].details["claims_with_lease"] > 0
