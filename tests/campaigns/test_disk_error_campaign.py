"""Disk errors on real processes (the lose-unsynced layer failing fsyncs under each
node's data directory, local backend): the seeded ``retry_fsync`` bug (fsyncgate) is
caught, and the correct system, which stops at its first failed fsync, passes the same
recipe and comes back after the repair.

Each run is about 7 s of operations plus the final phase; a cluster that never comes
back makes the final phase wait out its timeouts, so the bug's run takes about 40 s.
The layer's and the kind's semantics are tested in the default tier
(``tests/lazyfs/test_model.py``, ``tests/nemesis/test_disk_error_kind.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.bench.campaigns import CAMPAIGNS, anomalies, find
from harness.runner import RunResult, run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lose_unsynced_layer")]


def _disk_faults(r: RunResult) -> list[tuple[str, dict[str, Any]]]:
    ops = [json.loads(x) for x in (r.run_dir / "history.jsonl").read_text().splitlines()
           if x.strip()]
    return [(o["f"], o["value"]) for o in ops
            if o["process"] == "nemesis" and o["f"] in ("start-disk-error", "stop-disk-error")]


def test_retry_fsync_leaves_a_cluster_that_cannot_recover(tmp_path: Path, harness_seed: int
                                                          ) -> None:
    f = find(CAMPAIGNS["retry_fsync"], harness_seed, tmp_path)
    assert not f.errors, f.errors
    assert f.found, f"retry_fsync not caught in {f.runs} runs: {f.verdicts} {f.run_dirs}"
    assert f.result is not None
    assert "not-recovered" in anomalies(f.result)["availability"]
    (_, started), (_, repaired) = _disk_faults(f.result)
    assert started["node"] == "all" and "error" not in started
    # the bug kept every node running through the errors (it retried), and fsyncs failed
    assert repaired["stopped_themselves"] == [] and repaired["failed_ops"] > 0


def test_correct_system_stops_at_the_error_and_comes_back(tmp_path: Path, harness_seed: int
                                                          ) -> None:
    c = CAMPAIGNS["retry_fsync"]
    r = run(c.config(harness_seed, tmp_path, buggy=False))
    assert r.error is None, r.error
    assert r.valid is True, f"{r.verdict}: {anomalies(r)} (run {r.run_dir})"
    (_, started), (_, repaired) = _disk_faults(r)
    assert "error" not in started
    # fail-stop: every node whose fsync failed stopped itself
    assert repaired["failed_ops"] > 0 and repaired["stopped_themselves"]
