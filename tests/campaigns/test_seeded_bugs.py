"""Campaigns must catch the reference system's seeded bugs, and name the anomaly.

A campaign is several short runs with different seeds; the test passes when a
run finds the bug's anomaly (an invalid verdict from the checker the bug
should trip). Bugs whose campaigns are not yet tuned are listed in the issue
tracker, not here: nothing in this file is expected to pass vacuously.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def test_local_reads_bug_is_caught_as_nonlinearizable(tmp_path: Path, harness_seed: int) -> None:
    """Reads served from a node's local state: a partitioned old leader serves stale reads."""
    found = []
    for attempt in range(3):
        seed = harness_seed + attempt
        sched = FaultSchedule((Fault("partition", 1.0, 6.0, {"plan": "isolate-leader"}),
                               Fault("partition", 8.0, 5.0, {"plan": "random-halves",
                                                             "seed": seed})), seed=seed)
        r = run(RunConfig(workload="register", nemesis=("partition",), time_limit_s=14,
                          seed=seed, schedule=sched, bug="local_reads", reports_dir=tmp_path,
                          rate_hz=60, through_lb=False))
        assert r.error is None
        found.append(r.valid)
        if r.valid is False:
            assert r.results["linearizable"].valid is False
            assert r.results["linearizable"].details["counterexample"]["could_not_place"]
            return
    pytest.fail(f"local_reads not caught in 3 runs: verdicts {found}")
