"""Campaigns must catch the reference system's seeded bugs, name the anomaly, and
pass the correct system.

A campaign is a few short runs with different seeds (the recipes live in
:mod:`harness.bench.campaigns`, shared with the time-to-find benchmark); a
bug test passes when one run is invalid by the checker the bug must trip,
naming the bug's anomaly. The correct system runs the same recipes (and the
fault families: partition, kill, pause, latency, mixed) and must come out
valid, not unknown: a harness is only believed when it passes a correct
system and catches a broken one. Every test also checks that its run did
what it claims (faults applied, items held past their lease, ...), so none
passes vacuously.

``forget_promise`` needs faults that overlap (restarts behind a cut that is
still in force); its test also checks that they did overlap.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.bench.campaigns import CAMPAIGNS, anomalies, find
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, RunResult, run


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def _hunt(bug: str, tmp_path: Path, seed: int) -> RunResult:
    """Run the bug's campaign until a run catches it; fail with every verdict if none does."""
    c = CAMPAIGNS[bug]
    f = find(c, seed, tmp_path)
    assert not f.errors, f.errors
    if not f.found:
        pytest.fail(f"{bug} not caught in {f.runs} runs ({f.time_s:.0f} s): verdicts "
                    f"{f.verdicts}; runs in {[str(d) for d in f.run_dirs]}")
    assert f.result is not None
    assert anomalies(f.result)[c.checker].count(c.anomaly) == 1
    return f.result


def _nemesis_ops(r: RunResult) -> list[dict[str, Any]]:
    lines = (r.run_dir / "history.jsonl").read_text().splitlines()
    ops = [json.loads(line) for line in lines if line.strip()]
    return [o for o in ops if o["process"] == "nemesis"]


def _faults_applied(r: RunResult, *kinds: str) -> None:
    """Each fault kind was applied (the run is not a quiet one in disguise), and no start
    failed but for a target that could not be named: a broken system may have no leader
    a majority agrees on (two leaders, in forget_promise), and then a fault aimed
    relative to the leader has no node, which the nemesis records and skips."""
    nem = _nemesis_ops(r)
    for kind in kinds:
        starts = [o for o in nem if o["f"] == f"start-{kind}"]
        assert starts, f"no {kind} was applied: {[o['f'] for o in nem]}"
        errors = [str((o["value"] or {}).get("error")) for o in starts
                  if "error" in (o["value"] or {})]
        assert len(errors) < len(starts), f"no {kind} started without error: {errors}"
        assert all(e.startswith("no leader is known") for e in errors), errors


# ---------------------------------------------------------------- the bugs are caught


def test_ack_before_quorum_loses_acknowledged_enqueues(tmp_path: Path, harness_seed: int
                                                       ) -> None:
    """The isolated leader acks enqueues no quorum accepted: after the heal they are gone."""
    r = _hunt("ack_before_quorum", tmp_path, harness_seed)
    q = r.results["queue"].details
    assert q["lost_count"] > 0 and q["lost_ids_certain"]
    # lost means acked and then never seen: the final read found no such item
    assert set(q["lost"]) <= _acked_enqueues(r)


def _acked_enqueues(r: RunResult) -> set[str]:
    ops = [json.loads(x) for x in (r.run_dir / "history.jsonl").read_text().splitlines()]
    return {o["value"]["id"] for o in ops if o["f"] == "enqueue" and o["type"] == "ok"}


def test_local_reads_serve_stale_values(tmp_path: Path, harness_seed: int) -> None:
    """Reads answered from the isolated old leader's local state: not linearizable."""
    r = _hunt("local_reads", tmp_path, harness_seed)
    assert r.results["linearizable"].details["counterexample"]["could_not_place"]
    _faults_applied(r, "partition")


def test_stale_token_accepts_a_fenced_off_completion(tmp_path: Path, harness_seed: int) -> None:
    """A holder whose lease was taken over still completes: two accepted completions."""
    r = _hunt("stale_token", tmp_path, harness_seed)
    [first, *_] = r.results["fencing"].details["double_completion"]
    assert len(first["tokens"]) >= 2
    assert "duplicated" in anomalies(r)["queue"]  # delivered twice, seen by accounting too


def test_expire_early_hands_out_items_whose_lease_still_runs(tmp_path: Path, harness_seed: int
                                                             ) -> None:
    """A new leader requeues inherited leases at once: a second claim inside the first's lease.

    Fencing still holds (the first holder is refused), so only the lease
    checker sees this double execution.
    """
    r = _hunt("expire_early", tmp_path, harness_seed)
    d = r.results["lease"].details
    assert d["lease_overlap_count"] > 0
    assert all(o["second_returned_s_before_lease_end"] > 0 for o in d["lease_overlap"])
    assert r.results["fencing"].valid is True
    _faults_applied(r, "kill")


def test_small_quorum_splits_the_brain(tmp_path: Path, harness_seed: int) -> None:
    """A quorum of one: the isolated node commits on its own, and histories diverge."""
    r = _hunt("small_quorum", tmp_path, harness_seed)
    assert r.results["linearizable"].details["counterexample"]
    _faults_applied(r, "partition")


def _overlapped(r: RunResult) -> None:
    """Kills of the node cut off from the leader and of the node linking both were
    applied (and ended) while the partition was in force: the faults overlapped."""
    nem = _nemesis_ops(r)
    fs = [o["f"] for o in nem]
    start, stop = fs.index("start-partition"), fs.index("stop-partition")
    kills = [o for o in nem[start:stop] if o["f"] in ("start-kill", "stop-kill")]
    assert len(kills) >= 4 and all("error" not in o["value"] for o in kills), kills
    grudge = nem[start]["value"]["grudge"]
    killed = {o["value"]["node"] for o in kills}
    assert any(grudge[n] for n in killed) and any(not grudge[n] for n in killed), \
        (grudge, killed)


def test_forget_promise_lets_two_leaders_commit_one_slot(tmp_path: Path, harness_seed: int
                                                         ) -> None:
    """A restarted acceptor forgets the leader's ballot and promises a lower one: two
    leaders commit the same slots, and writes acked by one are lost."""
    r = _hunt("forget_promise", tmp_path, harness_seed)
    assert r.results["linearizable"].details["counterexample"]
    _faults_applied(r, "partition", "latency", "kill")
    _overlapped(r)


# ---------------------------------------------------------------- the correct system passes


def _valid(r: RunResult) -> None:
    assert r.error is None, r.error
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items() if v.valid is not True}
    assert r.results["stats"].details.get("count", 0) > 0


@pytest.mark.parametrize("bug", ["ack_before_quorum", "local_reads", "small_quorum"])
def test_correct_system_passes_the_partition_campaigns(bug: str, tmp_path: Path,
                                                       harness_seed: int) -> None:
    """The recipes that catch partition bugs find nothing wrong with the correct system."""
    r = run(CAMPAIGNS[bug].config(harness_seed, tmp_path, buggy=False))
    _valid(r)
    _faults_applied(r, "partition")


def test_correct_system_keeps_its_promises_across_restarts_behind_a_cut(
        tmp_path: Path, harness_seed: int) -> None:
    """The forget_promise recipe, overlapping faults and all, on the correct system."""
    r = run(CAMPAIGNS["forget_promise"].config(harness_seed, tmp_path, buggy=False))
    _valid(r)
    _faults_applied(r, "partition", "latency", "kill")
    _overlapped(r)


def test_correct_system_refuses_late_holders_under_short_leases(tmp_path: Path,
                                                                harness_seed: int) -> None:
    """Items are held past a 300 ms lease and taken over; every late completion is refused."""
    r = run(CAMPAIGNS["stale_token"].config(harness_seed, tmp_path, buggy=False))
    _valid(r)
    ops = [json.loads(x) for x in (r.run_dir / "history.jsonl").read_text().splitlines()]
    stale = [o for o in ops if o["f"] == "complete" and o["type"] == "fail"
             and o.get("error") == "stale"]
    assert stale, "no holder outlived its lease: the campaign did not exercise fencing"
    assert r.results["lease"].details["claims_with_lease"] > 0


def test_correct_system_keeps_leases_across_a_leader_kill(tmp_path: Path,
                                                          harness_seed: int) -> None:
    """The new leader waits a full lease in office before expiring what it inherited."""
    r = run(CAMPAIGNS["expire_early"].config(harness_seed, tmp_path, buggy=False))
    _valid(r)
    _faults_applied(r, "kill")
    assert r.results["lease"].details["claims_with_lease"] > 0


def _family(workload: str, kind: str, seed: int, tmp_path: Path) -> RunConfig:
    faults = {
        "kill": (Fault("kill", 1.0, 2.0, {"node": "leader"}),),
        "pause": (Fault("pause", 1.0, 2.5, {"node": "leader"}),),
        "latency": (Fault("latency", 1.0, 3.0, {"latency_ms": 100, "jitter_ms": 20,
                                                "node": "all"}),),
        "partition": (Fault("partition", 1.0, 3.0, {"plan": "random-halves", "seed": seed}),),
    }[kind]
    options: dict[str, Any] = {}
    if workload == "queue":
        # leases shorter than the faults, so holders are taken over during them
        options = {"lease_ms": 1000.0, "drain_quiet_s": 0.5}
    return RunConfig(workload=workload, nemesis=(kind,), time_limit_s=5.0, seed=seed,
                     schedule=FaultSchedule(faults, seed=seed), reports_dir=tmp_path,
                     rate_hz=60.0, op_timeout_s=1.0, workload_options=options,
                     system_options={"lease_ms": 1000.0} if options else {})


@pytest.mark.parametrize(("workload", "kind"), [
    ("register", "kill"), ("register", "pause"), ("register", "latency"),
    ("queue", "kill"), ("queue", "pause"), ("queue", "latency"), ("queue", "partition"),
    ("takeover", "kill"), ("takeover", "pause"),
    # latency is judged on the register and queue runs; this one only in the slow tier
    pytest.param("takeover", "latency", marks=pytest.mark.slow),
    ("takeover", "partition"),
])
def test_correct_system_passes_each_fault_family(workload: str, kind: str, tmp_path: Path,
                                                 harness_seed: int) -> None:
    r = run(_family(workload, kind, harness_seed, tmp_path))
    _valid(r)
    _faults_applied(r, kind)
    if workload in ("queue", "takeover"):
        assert r.results["queue"].details["acknowledged_count"] > 0


@pytest.mark.parametrize("workload", ["register", "queue", "takeover"])
def test_correct_system_passes_mixed_faults(workload: str, tmp_path: Path, harness_seed: int
                                            ) -> None:
    """A random schedule over every fault family, through the load balancer."""
    options: dict[str, Any] = {"lease_ms": 1000.0, "drain_quiet_s": 0.5} \
        if workload == "queue" else {}
    r = run(RunConfig(workload=workload, nemesis=("partition", "kill", "pause", "latency"),
                      time_limit_s=10.0, seed=harness_seed, reports_dir=tmp_path, rate_hz=60.0,
                      op_timeout_s=1.0, workload_options=options,
                      system_options={"lease_ms": 1000.0} if options else {}))
    _valid(r)
    started = [o for o in _nemesis_ops(r) if o["f"].startswith("start-")]
    assert len(started) >= 2, r.schedule


def test_every_seeded_bug_has_a_campaign() -> None:
    """A seeded bug without a campaign would be a bug nothing shows to be caught."""
    from reference_system.bugs import BUGS

    assert set(CAMPAIGNS) == set(BUGS)


def test_local_clock_is_seen_only_by_comparing_replicas(tmp_path: Path, harness_seed: int
                                                        ) -> None:
    r = _hunt("local_clock", tmp_path, harness_seed)
    assert {k for k, v in r.results.items() if v.valid is False} == {"convergence"}


def test_no_depth_limit_is_seen_by_malformed_requests(tmp_path: Path, harness_seed: int
                                                     ) -> None:
    """Clients never send a value nested past the API's limit; the hostile sender does,
    and the bugged node accepts it. The correct system refuses every one of the same
    run's malformed requests and passes."""
    r = _hunt("no_depth_limit", tmp_path / "bug", harness_seed)
    accepted = r.results["robustness"].details["accepted_bad_input"]
    assert any("nest" in str(e["why"]) for e in accepted), accepted
    ok = run(CAMPAIGNS["no_depth_limit"].config(harness_seed, tmp_path / "correct",
                                                buggy=False))
    _valid(ok)
    answers = ok.results["robustness"].details["answers"]
    assert answers["refused"] >= 10 and answers["accepted"] == answers["error"] == 0, answers


def test_no_prevote_lets_a_rejoining_node_depose_the_leader(tmp_path: Path, harness_seed: int
                                                            ) -> None:
    """Safety holds and clients see a hiccup; only the leadership checker, which knows
    the old leader was the one cut off, names the new leader's fall at the heal. The
    correct system's pre-vote keeps the new leader in office through the same run."""
    r = _hunt("no_prevote", tmp_path / "bug", harness_seed)
    _faults_applied(r, "partition")
    assert r.valid == "unknown"
    d = r.results["leadership"].details["disrupted"][0]
    assert d["after"] in ("stop-partition", "heal-all"), d
    ok = run(CAMPAIGNS["no_prevote"].config(harness_seed, tmp_path / "correct", buggy=False))
    _valid(ok)
    _faults_applied(ok, "partition")
    assert ok.results["leadership"].details["tenures"] >= 2  # the cut did replace the leader
