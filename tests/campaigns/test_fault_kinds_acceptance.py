"""The fault-kinds acceptance, as a user types it: ``harness run --system refsys
--workload queue --nemesis clock,lose-unsynced,flaky --backend local --time-limit 30``
ends valid on the correct system and invalid, naming the anomaly, with each of the
two seeded bugs only these kinds show (slow: three real runs of about 80 s).

The schedule is random (the run's seed): what makes every seed's schedule hold a
power loss and a leader's clock jumping ahead is each kind's decisive variant
(``FaultKind.missing_variants``), so a seed that drew only mild shapes still meets them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness import clock
from harness.cli import main
from harness.lazyfs import available as lazyfs_problem
from harness.pytest_plugin import require

pytestmark = pytest.mark.slow

COMMAND = ["run", "--system", "refsys", "--workload", "queue", "--nemesis",
           "clock,lose-unsynced,flaky", "--backend", "local", "--time-limit", "30"]


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    require(clock.available(), f"libfaketime is not installed ({clock.LIBFAKETIME})")
    problem = lazyfs_problem()
    require(problem is None, f"the lose-unsynced layer cannot mount: {problem}")


def _run(tmp_path: Path, seed: int, bug: str | None) -> tuple[int, dict[str, Any]]:
    args = [*COMMAND, "--seed", str(seed), "--reports", str(tmp_path)]
    code = main([*args, "--bug", bug] if bug else args)
    (results,) = tmp_path.glob("*/2*/results.json")
    return code, json.loads(results.read_text())


@pytest.mark.parametrize(("bug", "checker", "anomaly"), [
    ("no_fsync", "queue", "lost"),
    ("wall_clock_lease", "lease", "lease-cut-short"),
])
def test_each_new_seeded_bug_ends_invalid_naming_the_anomaly(
        bug: str, checker: str, anomaly: str, tmp_path: Path, harness_seed: int) -> None:
    code, results = _run(tmp_path, harness_seed, bug)
    found = results["results"][checker]
    assert code == 1 and found["valid"] is False, (tmp_path, found)
    assert anomaly in found["anomalies"], found["anomalies"]


def test_the_correct_system_ends_valid(tmp_path: Path, harness_seed: int) -> None:
    code, results = _run(tmp_path, harness_seed, None)
    assert code == 0 and results["valid"] is True, (tmp_path, {
        k: v["valid"] for k, v in results["results"].items()})
