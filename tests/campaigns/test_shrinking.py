"""A Hypothesis campaign over real cluster runs: find a bug, shrink the fault schedule,
store the smallest failing schedule, and replay it with ``harness run --replay``.

Slow (a dozen real runs), so it is behind the ``slow`` marker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from harness.generator import FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run
from harness.strategies import fault_schedules

RUN_BUDGET = 10  # real runs; past it the campaign stops exploring (see below)


@pytest.mark.slow
def test_campaign_shrinks_and_replays_the_smallest_failing_schedule(tmp_path: Path) -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    smallest = tmp_path / "smallest-failing-schedule.json"
    runs: list[tuple[FaultSchedule, object]] = []
    verdicts: dict[str, object] = {}

    @settings(max_examples=6, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(schedule=fault_schedules(kinds=["partition"], nodes=("n1", "n2", "n3"),
                                    time_limit_s=8, max_faults=3, min_duration_s=2.0,
                                    max_duration_s=5.0))
    def campaign(schedule: FaultSchedule) -> None:
        key = json.dumps(schedule.to_dict(), sort_keys=True)
        if key in verdicts:
            # Shrinking often proposes a schedule already run (it tried a choice
            # the schedule does not use), and Hypothesis replays the smallest
            # failing one at the end: answer from the first run, spend no budget.
            valid = verdicts[key]
        elif len(runs) >= RUN_BUDGET:
            # Out of budget: claim nothing about this schedule. Hypothesis then
            # keeps the smallest failing schedule found so far.
            return
        else:
            r = run(RunConfig(workload="register", nemesis=("partition",), time_limit_s=8,
                              seed=schedule.seed, schedule=schedule, bug="small_quorum",
                              through_lb=False, rate_hz=60, reports_dir=tmp_path / "runs"))
            valid = verdicts[key] = r.valid
            runs.append((schedule, r.valid))
        if valid is False:
            # Hypothesis replays the minimal failing example last, so the last
            # write is the smallest failing schedule.
            smallest.write_text(json.dumps(schedule.to_dict(), indent=2))
        assert valid is not False, f"anomaly found with schedule {schedule}"

    with pytest.raises(AssertionError, match="anomaly found"):
        campaign()
    failing = [s for s, v in runs if v is False]
    assert failing, "the campaign found nothing"
    stored = FaultSchedule.from_dict(json.loads(smallest.read_text()))
    assert len(stored.faults) <= min(len(s.faults) for s in failing)

    replay = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--workload", "register", "--nemesis",
         "partition", "--time-limit", "8", "--bug", "small_quorum", "--rate", "60",
         "--pin-clients",
         "--reports", str(tmp_path / "replay"), "--replay", str(smallest)],
        capture_output=True, text=True, timeout=300,
    )
    replayed = json.loads(next((tmp_path / "replay").glob("*/latest/results.json")).read_text())
    assert replayed["schedule"]["faults"] == stored.to_dict()["faults"]
    assert replay.returncode in (0, 1, 2), replay.stderr
