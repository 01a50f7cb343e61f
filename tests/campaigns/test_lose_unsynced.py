"""Crashes that lose unsynced writes, on real processes (the lose-unsynced layer under
each node's data directory, local backend): the seeded ``no_fsync`` and
``forget_promise`` bugs are caught, and the correct system passes the same recipes.

Each campaign is several runs of about 10 s plus the final reads, so they are slow;
the layer's own semantics are tested in ``tests/lazyfs`` in the default tier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.bench.campaigns import CAMPAIGNS, anomalies, find, under_lose_unsynced
from harness.runner import RunResult, run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lose_unsynced_layer")]


def _crashes(r: RunResult) -> list[dict[str, Any]]:
    """The lose-unsynced crashes the run applied (each without error)."""
    ops = [json.loads(x) for x in (r.run_dir / "history.jsonl").read_text().splitlines()
           if x.strip()]
    starts = [o["value"] for o in ops
              if o["process"] == "nemesis" and o["f"] == "start-lose-unsynced"]
    assert starts and all("error" not in v for v in starts), starts
    return starts


def test_no_fsync_loses_acknowledged_enqueues(tmp_path: Path, harness_seed: int) -> None:
    c = CAMPAIGNS["no_fsync"]
    f = find(c, harness_seed, tmp_path)
    assert not f.errors, f.errors
    assert f.found, f"no_fsync not caught in {f.runs} runs: {f.verdicts} {f.run_dirs}"
    assert f.result is not None
    assert "lost" in anomalies(f.result)["queue"]
    # the crashes dropped writes the nodes had acknowledged as synced
    assert sum(v["dropped_bytes"] for v in _crashes(f.result)) > 0


def test_forget_promise_is_caught_by_lose_unsynced_crashes(tmp_path: Path, harness_seed: int
                                                           ) -> None:
    """Two values chosen for one slot show as a non-linearizable history or as replicas
    that disagree at one applied position (the bug's two documented anomalies; which
    one a run shows depends on whether a client read crossed the two values)."""
    c = under_lose_unsynced(CAMPAIGNS["forget_promise"])
    seen = []
    for k in range(c.max_runs):
        r = run(c.config(harness_seed * 1000 + k, tmp_path))
        assert r.error is None, r.error
        found = anomalies(r)
        seen.append((r.verdict, {n: a for n, a in found.items() if a}, str(r.run_dir)))
        if r.valid is False and ("nonlinearizable" in found.get("linearizable", [])
                                 or "divergent-replicas" in found.get("convergence", [])):
            _crashes(r)
            return
    pytest.fail(f"forget_promise not caught in {c.max_runs} runs: {seen}")


@pytest.mark.parametrize("recipe", ["no_fsync", "forget_promise"])
def test_correct_system_passes_the_recipes(recipe: str, tmp_path: Path, harness_seed: int
                                           ) -> None:
    c = CAMPAIGNS[recipe]
    if recipe == "forget_promise":
        c = under_lose_unsynced(c)
    r = run(c.config(harness_seed, tmp_path, buggy=False))
    assert r.error is None, r.error
    bad = {k: (v.valid, anomalies(r).get(k)) for k, v in r.results.items()
           if v.valid is False}
    assert not bad, f"{bad} (run {r.run_dir})"
    assert r.results[c.checker].valid is True
    _crashes(r)
