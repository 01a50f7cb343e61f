"""Runs end to end on the local backend: files, verdicts, replay, bad arguments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fault_fakes import FakeCluster

from harness import probes as probes_module
from harness.checker.result import UNKNOWN
from harness.cli import main
from harness.errors import HarnessError
from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, run
from harness.systems.refsys import ReferenceSystem


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
    # the adapter's introspection answered on the healthy cluster after the heal
    intro = r.results["introspection"]
    assert intro.valid is True and intro.details["probes"] == 7, intro.details
    # and every idle node kept within the CPU bound the adapter states
    idle = r.results["resources"]
    assert idle.valid is True and len(idle.details["nodes"]) == 3, idle.details
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
    assert results["verdict"] == "unknown" and results["error"] == "interrupted (SIGINT)"
    assert main(["check", str(history.parent)]) in (0, 1, 2)  # readable, checkable
    # nothing the run started is left running
    time.sleep(1)
    for pattern in (str(tmp_path), "harness-refsys-queue-pause-"):  # LB config, node data
        leftover = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        assert leftover.stdout.strip() == "", (pattern, leftover.stdout)


# --------------------------------------------------------------- overlapping faults
#
# The fault driver alone, against a fake cluster and a fake Toxiproxy: what it
# applies, in which order, and what it records. Times are tenths of a second.


class _FakeToxiproxy:
    def __init__(self) -> None:
        self.toxics: set[tuple[str, str]] = set()

    def add_toxic(self, proxy: str, *, type: str, name: str, stream: str,
                  attributes: dict[str, Any], toxicity: float = 1.0) -> None:
        assert (proxy, name) not in self.toxics, f"{proxy}/{name} added twice"
        self.toxics.add((proxy, name))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.toxics.remove((proxy, name))

    def close(self) -> None:
        pass


class _FakeSystem:
    """Names a fixed leader, and only among the nodes it is asked about."""

    def __init__(self, leader: str | None) -> None:
        self.lead = leader

    def leader(self, client_addresses: Mapping[str, Any], *, timeout_s: float) -> str | None:
        return self.lead if self.lead in client_addresses else None


class _FakeRecorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, dict[str, Any]]] = []

    def nemesis(self, f: str, value: Any) -> None:
        self.ops.append((f, value))


def _driver(*faults: Fault, leader: str | None = "n2") -> tuple[Any, _FakeToxiproxy,
                                                               FakeCluster, _FakeRecorder]:
    from harness.nemesis.driver import FaultDriver as _FaultDriver
    from harness.nemesis.faults import Nemesis

    cluster = FakeCluster()
    nem = Nemesis(cluster)  # type: ignore[arg-type]
    tp = _FakeToxiproxy()
    nem.tp = tp  # type: ignore[assignment]
    rec = _FakeRecorder()
    driver = _FaultDriver(nem, cluster, _FakeSystem(leader), rec,  # type: ignore[arg-type]
                          FaultSchedule(faults), threading.Event())
    return driver, tp, cluster, rec


def _drive_all(driver: Any) -> None:
    driver.run(time.monotonic())


def test_overlapping_faults_apply_in_time_order_and_each_end_undoes_only_its_own() -> None:
    """A kill inside a partition, and a latency outlasting the partition."""
    driver, tp, cluster, rec = _driver(
        Fault("partition", 0.0, 0.3, {"plan": "cut", "between": [["leader", "follower"]]}),
        Fault("latency", 0.05, 0.4, {"node": "leader", "to": "follower", "latency_ms": 100}),
        Fault("kill", 0.1, 0.1, {"node": "cut-off"}),
    )
    seen: list[set[tuple[str, str]]] = []
    original = driver.recorder.nemesis

    def record(f: str, value: Any) -> None:
        seen.append(set(tp.toxics))  # the toxics in force once each event is done
        original(f, value)

    driver.recorder.nemesis = record
    _drive_all(driver)
    assert [f for f, _ in rec.ops] == ["start-partition", "start-latency", "start-kill",
                                       "stop-kill", "stop-partition", "stop-latency"]
    ops = dict(rec.ops)
    # leader n2; the follower it is cut from is the first other node; the
    # latency goes to the follower it still talks with; the kill hits the cut-off one
    assert ops["start-partition"]["grudge"] == {"n1": ["n2"], "n2": ["n1"], "n3": []}
    assert ops["start-latency"]["links"] == ["n2-to-n3-peer"]
    assert ops["start-kill"] == {"fault": "kill", "node": "n1", "faulty": ["n1"]}
    assert cluster.calls == [("kill", "n1"), ("restart", "n1")]
    cuts = {tuple(a.split("/")) for a in ops["start-partition"]["added"]}
    slow = {tuple(a.split("/")) for a in ops["start-latency"]["added"]}
    assert seen[2] == seen[3] == cuts | slow  # the kill and its restart leave both in force
    assert sorted(ops["stop-partition"]["removed"]) == sorted(ops["start-partition"]["added"])
    assert seen[0] == cuts and seen[4] == slow and seen[5] == tp.toxics == set()
    assert driver.errors == [] and driver.active == []


def test_back_to_back_faults_end_before_the_next_starts() -> None:
    """At equal times an end goes first (the sequential behaviour), and a 0 s fault
    still ends after it starts; otherwise the second kill would find n1 held."""
    driver, _, cluster, rec = _driver(Fault("kill", 0.1, 0.0, {"node": "n1"}),
                                      Fault("kill", 0.0, 0.1, {"node": "n1"}),
                                      Fault("pause", 0.1, 0.1, {"node": "n1"}))
    _drive_all(driver)
    assert driver.errors == []
    assert cluster.calls == [("kill", "n1"), ("restart", "n1"), ("kill", "n1"),
                             ("restart", "n1"), ("pause", "n1"), ("resume", "n1")]
    assert [f for f, _ in rec.ops] == ["start-kill", "stop-kill", "start-kill", "stop-kill",
                                       "start-pause", "stop-pause"]


def test_sequential_faults_record_what_they_always_did() -> None:
    driver, tp, cluster, rec = _driver(
        Fault("partition", 0.0, 0.1, {"plan": "isolate-leader"}),
        Fault("kill", 0.15, 0.05, {"node": "leader"}),
        Fault("latency", 0.25, 0.05, {"node": "all", "latency_ms": 50}))
    _drive_all(driver)
    assert [f for f, _ in rec.ops] == ["start-partition", "stop-partition", "start-kill",
                                       "stop-kill", "start-latency", "stop-latency"]
    ops = dict(rec.ops)
    assert ops["start-partition"]["grudge"]["n2"] == ["n1", "n3"]
    assert ops["start-kill"]["node"] == "n2"
    assert len(ops["start-latency"]["links"]) == len(cluster.links)
    assert tp.toxics == set() and cluster.calls == [("kill", "n2"), ("restart", "n2")]


def test_a_fault_on_a_held_node_is_refused_and_never_ended() -> None:
    driver, _, cluster, rec = _driver(Fault("kill", 0.0, 0.2, {"node": "n3"}),
                                      Fault("pause", 0.1, 0.2, {"node": "n3"}))
    _drive_all(driver)
    assert cluster.calls == [("kill", "n3"), ("restart", "n3")]
    assert [f for f, _ in rec.ops] == ["start-kill", "start-pause", "stop-kill"]
    assert "already held" in rec.ops[1][1]["error"] and len(driver.errors) == 1


def test_stopping_ends_every_active_fault_in_reverse_order() -> None:
    driver, tp, cluster, rec = _driver(Fault("partition", 0.0, 30.0, {"plan": "isolate-one"}),
                                       Fault("kill", 0.05, 30.0, {"node": "n3"}),
                                       Fault("stall", 20.0, 1.0, {"node": "n1"}))
    threading.Timer(0.2, driver.stop.set).start()
    t0 = time.monotonic()
    _drive_all(driver)
    assert time.monotonic() - t0 < 5
    assert [f for f, _ in rec.ops] == ["start-partition", "start-kill", "stop-kill",
                                       "stop-partition"]
    assert tp.toxics == set() and cluster.calls == [("kill", "n3"), ("restart", "n3")]


def test_node_rules_follow_the_leader_the_partition_and_held_nodes() -> None:
    from harness.nemesis import grudge as grudges

    driver, _, _, _ = _driver(leader="n3")
    assert driver.node("leader") == "n3"
    assert driver.node("follower") == "n1"
    assert driver.node("follower", exclude={"n1"}) == "n2"
    assert driver.node("majority") == "n1"
    with pytest.raises(HarnessError, match="no up node is cut-off"):
        driver.node("cut-off")
    with pytest.raises(HarnessError, match="no up node is minority"):
        driver.node("minority")
    driver.grudge = grudges.cut([("n3", "n1")], ("n1", "n2", "n3"))
    assert driver.node("cut-off") == "n1" and driver.node("follower") == "n2"
    driver.grudge = grudges.isolate("n1", ("n1", "n2", "n3"))
    assert driver.node("minority") == "n1" and driver.node("majority") == "n2"
    driver._held["n2"] = "kill"
    assert driver.node("majority") == "n3"
    driver._leader_asked = False  # the leader is asked again for a new event
    driver._held["n3"] = "kill"
    assert driver.node("leader") == "n1"  # nobody names a leader: the first up node
    with pytest.raises(HarnessError, match="no leader is known"):
        driver.node("follower")
    with pytest.raises(HarnessError, match="unknown node 'boss'"):
        driver.node("boss")
    assert driver.node("n2") == "n2"  # a name is a name, held or not


def test_a_kill_inside_a_partition_on_a_real_cluster(tmp_path: Path) -> None:
    """Overlapping faults end to end: the kill's restart leaves the cut in force, the
    history pairs every start with its stop, the report is written, and the run replays."""
    from harness.commands.run import _replay
    from harness.formats import read_history
    from harness.report.data import fault_intervals

    sched = FaultSchedule((
        Fault("partition", 1.0, 3.0, {"plan": "cut", "between": [["leader", "follower"]]}),
        Fault("kill", 1.5, 1.0, {"node": "cut-off"}),
    ), seed=4)
    r = run(RunConfig(workload="register", nemesis=("partition", "kill"), time_limit_s=5,
                      seed=4, schedule=sched, reports_dir=tmp_path, rate_hz=40,
                      through_lb=False, op_timeout_s=1.0))
    assert r.error is None
    assert r.valid is True, {k: v.to_dict() for k, v in r.results.items()}
    h = read_history(r.run_dir / "history.jsonl")
    # the faults' own records (other nemesis notes, e.g. a system's promises, aside)
    nem = [(op.f, op.value) for op in h.nemesis_ops() if op.f.startswith(("start-", "stop-"))]
    assert [f for f, _ in nem][:4] == ["start-partition", "start-kill", "stop-kill",
                                       "stop-partition"]
    grudge, killed = nem[0][1]["grudge"], nem[1][1]["node"]
    assert grudge[killed], "the node killed was the one cut off from the leader"
    assert "removed" not in nem[2][1]  # the restart healed nothing
    assert sorted(nem[3][1]["removed"]) == sorted(nem[0][1]["added"])
    iv = fault_intervals(h)
    part, kill = (next(i for i in iv if i.kind == k) for k in ("partition", "kill"))
    assert part.end_ns is not None and kill.end_ns is not None
    assert part.start_ns < kill.start_ns < kill.end_ns < part.end_ns
    assert (r.run_dir / "report.html").exists() and not (r.run_dir / "report-error.txt").exists()
    replayed, config, seed = _replay(str(r.run_dir / "results.json"))
    assert replayed == sched and seed == 4 and config["nemesis"] == ["partition", "kill"]


def test_report_pairs_overlapping_stops_with_their_own_starts() -> None:
    """Two kills open at once end out of order; a failed start is never in force."""
    from harness.history import History, Op, OpType
    from harness.report.data import fault_intervals

    def nem(i: int, f: str, value: Any) -> Op:
        return Op(i, i, OpType.INFO, "nemesis", f, value)

    h = History([
        nem(0, "start-partition", {"grudge": {"n1": ["n2"], "n2": ["n1"], "n3": []}}),
        nem(1, "start-kill", {"fault": "kill", "node": "n1"}),
        nem(2, "start-kill", {"fault": "kill", "node": "n3"}),
        nem(3, "start-kill", {"error": "no up node is cut-off"}),
        nem(4, "stop-kill", {"fault": "restart", "node": "n1"}),
        nem(5, "stop-partition", {"fault": "heal-network", "removed": []}),
        nem(6, "stop-kill", {"fault": "restart", "node": "n3"}),
    ])
    got = [(i.kind, i.label, i.start_ns, i.end_ns) for i in fault_intervals(h)]
    assert [(k, s, e) for k, _, s, e in got] == [("partition", 0, 5), ("kill", 1, 4),
                                                 ("kill", 2, 6), ("kill", 3, 3)]
    assert [label for _, label, _, _ in got[1:]] == [
        "kill n1", "kill n3", "kill (failed: no up node is cut-off)"]


class BlindRefsys(ReferenceSystem):
    """The reference system behind an adapter whose introspection is broken: the leader
    lookup finds nobody and n2's state cannot be read (as a route answering 404 would)."""

    def leader(self, client_addresses: Mapping[str, Any], *, timeout_s: float = 1.0
               ) -> str | None:
        return None

    def replica_state(self, node: str, addresses: Mapping[str, Any], *,
                      timeout_s: float = 5.0) -> dict[str, Any]:
        if node == "n2":
            raise HarnessError("n2: /replica answered HTTP 404")
        return super().replica_state(node, addresses, timeout_s=timeout_s)


def test_broken_introspection_makes_the_verdict_unknown_not_valid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose leader faults could not be aimed says so instead of "valid"."""
    monkeypatch.setattr(probes_module, "WAIT_S", 2.0)
    sched = FaultSchedule((Fault("pause", 1.0, 2.0, {"node": "leader"}),), seed=3)
    r = run(RunConfig(system="test_runner:BlindRefsys", workload="register",
                      nemesis=("pause",), time_limit_s=3, seed=3, schedule=sched,
                      reports_dir=tmp_path, rate_hz=20))
    assert r.error is None
    intro = r.results["introspection"]
    assert intro.valid == UNKNOWN and list(intro.details["progress"]) == [
        "introspection-failed"]
    failed = {f["probe"]: f for f in intro.details["failed"]}
    assert set(failed) == {"leader", "replica-state n2"}
    assert "404" in failed["replica-state n2"]["answer"]
    assert "fell back" in failed["leader"]["consequence"]
    assert r.valid == UNKNOWN  # and no other checker found anything
    assert all(res.valid is not False for res in r.results.values())
    # the report names the probes and what their failure cost
    html = (r.run_dir / "report.html").read_text()
    assert 'id="introspection"' in html and "replica-state n2" in html
    # a saved history is judged alike
    assert main(["check", str(r.run_dir)]) == 2


def _spinning_copy(dest: Path) -> Path:
    """A copy of the reference system whose tick loop never sleeps (it still works)."""
    src = Path(__file__).resolve().parent.parent / "reference_system"
    shutil.copytree(src, dest / "reference_system",
                    ignore=shutil.ignore_patterns("__pycache__"))
    node = dest / "reference_system" / "node.py"
    text = node.read_text()
    line = "await asyncio.sleep(self.cfg.tick_ms / 1000.0)"
    assert text.count(line) == 1
    node.write_text(text.replace(line, "await asyncio.sleep(0)"))
    return dest


def test_a_node_that_spins_while_idle_breaks_its_cpu_bound(tmp_path: Path) -> None:
    """Every answer right, every replica equal: only its CPU time gives it away."""
    copy = _spinning_copy(tmp_path / "copy")
    r = run(RunConfig(system="harness.bench.mutants.battery:MutantSystem",
                      system_options={"mutant_path": str(copy)}, workload="register",
                      nemesis=(), time_limit_s=2, seed=5, reports_dir=tmp_path / "runs",
                      rate_hz=20))
    assert r.error is None
    res = r.results["resources"]
    assert res.valid is False and list(res.details["anomalies"]) == ["cpu-runaway"]
    assert {x["node"] for x in res.details["runaways"]} == {"n1", "n2", "n3"}
    assert all(x["cores"] > 0.2 for x in res.details["runaways"])
    # the rest found nothing: the spin breaks no other promise
    assert all(v.valid is not False for k, v in r.results.items() if k != "resources")
    html = (r.run_dir / "report.html").read_text()
    assert 'id="resources"' in html and "cpu-runaway" in html
    assert main(["check", str(r.run_dir)]) == 1

