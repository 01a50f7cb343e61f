"""The fault kinds registry: every kind's draw, strategy, start and end, its needs, and
replay of schedules written before kinds were modules.

The kinds run against :mod:`fault_fakes` (a cluster that records process
faults, a Toxiproxy that records toxics), so each property is checked on
every kind, including kinds other modules add to the registry.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fault_fakes import NODES, FakeCluster, FakeToxiproxy, NemesisRecorder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.generator import Fault, FaultSchedule, random_schedule
from harness.nemesis import registry
from harness.nemesis.driver import FaultDriver
from harness.nemesis.faults import Nemesis
from harness.nemesis.kinds.flaky import ATTRIBUTES
from harness.strategies import fault_schedules, faults

DATA = Path(__file__).parent / "data"
CLASSIC = ("partition", "kill", "pause", "latency", "stall")


class _System:
    """Names n2 as the leader, so every node rule resolves."""

    def leader(self, client_addresses: dict[str, Any], *, timeout_s: float) -> str | None:
        return "n2" if "n2" in client_addresses else None


def _driver(schedule: FaultSchedule) -> tuple[FaultDriver, FakeToxiproxy, FakeCluster,
                                               NemesisRecorder]:
    cluster = FakeCluster()
    nem = Nemesis(cluster)  # type: ignore[arg-type]
    tp = FakeToxiproxy()
    nem.tp = tp  # type: ignore[assignment]
    rec = NemesisRecorder()
    return FaultDriver(nem, cluster, _System(), rec, schedule, threading.Event()), tp, cluster, rec


def _kinds_on_fakes() -> list[str]:
    """Kinds whose needs the fakes meet (toxics and process faults); kinds that need more
    (a clock, a FUSE layer) are tested by their own modules' tests."""
    return [k.name for k in registry.kinds()
            if not registry.missing_abilities(k, _System(), FakeCluster)]


def test_the_registry_lists_the_classic_kinds_first_in_their_old_order_then_flaky() -> None:
    names = registry.names()
    assert names[:5] == CLASSIC
    assert "flaky" in names
    assert set(CLASSIC) | {"flaky"} <= set(_kinds_on_fakes())
    for kind in registry.kinds():
        assert kind.label and kind.summary(), kind
        assert registry.get(kind.name) is kind
    with pytest.raises(ValueError, match="unknown fault kind 'nope'; known: partition"):
        registry.get("nope")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_kind_drawn_either_way_starts_and_its_end_undoes_exactly_it(data: st.DataObject
                                                                          ) -> None:
    """Drawn by the generator or by Hypothesis, a fault starts without error, and its end
    leaves no toxic and no node held, even while another kind's fault stays in force."""
    name = data.draw(st.sampled_from(_kinds_on_fakes()), label="kind")
    kind = registry.get(name)
    if data.draw(st.booleans(), label="from the generator"):
        params = kind.draw(random.Random(data.draw(st.integers(0, 2**32))), NODES)
    else:
        params = data.draw(kind.strategy(NODES), label="params")
    json.dumps(params)  # stored in schedule.json
    other = Fault("partition" if name != "partition" else "latency", 0.0, 1.0,
                  {"plan": "isolate-one", "seed": 1} if name != "partition"
                  else {"latency_ms": 50, "node": "all"})
    driver, tp, cluster, rec = _driver(FaultSchedule((other, Fault(name, 0.0, 1.0, params))))
    started: dict[int, dict[str, Any]] = {}
    driver._begin(0, started)
    before = dict(tp.toxics)
    driver._begin(1, started)
    assert driver.errors == [], driver.errors
    assert rec.ops[-1][0] == f"start-{name}" and "error" not in rec.ops[-1][1]
    json.dumps(rec.ops[-1][1])  # the history keeps it
    driver._finish(1, started)
    assert driver.errors == [] and tp.toxics == before
    assert driver._held == {}
    driver._finish(0, started)
    assert tp.toxics == {}
    # a kill's end restarts, a pause's end resumes, the node it held
    for (f, node), (g, same) in zip(cluster.calls[::2], cluster.calls[1::2], strict=True):
        assert (f, g) in (("kill", "restart"), ("pause", "resume")) and node == same


def test_flaky_acts_on_the_stream_of_each_chosen_direction_only_with_its_toxicity() -> None:
    params = {"toxic": "slicer", "toxicity": 0.5, "pairs": [["n1", "n2"], ["leader", "n3"]],
              "attributes": {"average_size": 16, "size_variation": 8, "delay": 100}}
    driver, tp, _, rec = _driver(FaultSchedule((Fault("flaky", 0.0, 1.0, params),)))
    driver._begin(0, {})
    assert driver.errors == []
    got = {(proxy, stream): (t, a, x) for (proxy, _), (t, stream, a, x) in tp.toxics.items()}
    attrs = params["attributes"]
    # n1 -> n2 travels upstream on n1's proxy to n2 and downstream (replies) on n2's to n1;
    # the leader (n2) -> n3 likewise; nothing else is touched
    assert got == {(p, s): ("slicer", attrs, 0.5) for p, s in (
        ("n1-to-n2-peer", "upstream"), ("n2-to-n1-peer", "downstream"),
        ("n2-to-n3-peer", "upstream"), ("n3-to-n2-peer", "downstream"))}
    assert rec.ops[0][1]["pairs"] == [["n1", "n2"], ["n2", "n3"]]


@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(st.sampled_from(["toxic", "toxicity", "pairs", "attributes",
                                               "node", "plan"]),
                              st.none() | st.integers(-5, 5) | st.floats(allow_nan=True)
                              | st.text(max_size=5) | st.lists(st.text(max_size=3),
                                                               max_size=3)))
def test_a_malformed_fault_is_recorded_as_not_applied_never_a_crash(params: dict[str, Any]
                                                                     ) -> None:
    """Hand-edited schedules reach the driver: whatever the params, a start either applies
    or is recorded as an error, and the run goes on (kinds with defaults may apply)."""
    for name in _kinds_on_fakes():
        driver, tp, _, rec = _driver(FaultSchedule((Fault(name, 0.0, 0.1, params),)))
        driver.run(time.monotonic() - 1.0)  # both events are due: no waiting
        assert rec.ops[0][0] == f"start-{name}"
        assert ("error" in rec.ops[0][1]) == bool(driver.errors)
        assert tp.toxics == {}


def test_schedules_written_before_the_registry_are_drawn_and_replayed_the_same() -> None:
    """A seed gives the schedule it gave before kinds were modules (the file was written
    by the generator of that time), and the file replays: every fault applies."""
    stored = json.loads((DATA / "schedule-before-registry.json").read_text())
    again = random_schedule(random.Random(12), kinds=list(CLASSIC), nodes=list(NODES),
                            time_limit_s=60, mean_interval_s=5, min_duration_s=1,
                            max_duration_s=4, election_timeout_s=0.3, seed=12)
    assert again.to_dict() == stored
    schedule = FaultSchedule.from_dict(stored)
    assert {f.kind for f in schedule.faults} == set(CLASSIC)
    # replay at a tenth of a second per fault
    quick = FaultSchedule(tuple(Fault(f.kind, i / 10, 0.05, f.params)
                                for i, f in enumerate(schedule.faults)), schedule.seed)
    driver, tp, _, rec = _driver(quick)
    driver.run(time.monotonic())
    assert driver.errors == [] and tp.toxics == {}
    assert [f for f, _ in rec.ops] == [x for f in quick.faults
                                       for x in (f"start-{f.kind}", f"stop-{f.kind}")]


def test_a_results_file_written_before_the_registry_replays_through_the_cli_parser() -> None:
    from harness.commands.run import _replay

    schedule, config, seed = _replay(str(DATA / "results-before-registry.json"))
    assert seed == 12 and config["nemesis"] == list(CLASSIC)
    assert schedule.to_dict() == json.loads((DATA / "schedule-before-registry.json").read_text())


def test_a_kind_whose_needs_are_not_met_is_refused_before_the_run_with_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class NeedsMagic(registry.FaultKind):
        name = "magic"
        needs = (registry.Ability("backend has magic", lambda s, b: hasattr(b, "magic")),
                 registry.BACKEND_PAUSES)

    monkeypatch.setitem(registry._kinds, "magic", NeedsMagic())
    from harness.cli import main

    assert main(["run", "--nemesis", "partition,magic", "--time-limit", "1",
                 "--reports", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir()), "nothing may start"
    with pytest.raises(HarnessError, match=r"'magic' needs: backend has magic \(refsys"):
        registry.require(["magic"], object(), FakeCluster, system_name="refsys")
    # an ability that raises when asked is not there, and says so rather than crashing
    boom = registry.Ability("boom", lambda s, b: 1 / 0)
    assert not boom.held_by(None, None)


def test_a_kind_registered_twice_under_one_name_is_an_error() -> None:
    class Other(registry.FaultKind):
        name = "kill"

    with pytest.raises(ValueError, match="two fault kinds are named 'kill'"):
        registry.register(Other())


@settings(max_examples=30, deadline=None)
@given(schedule=fault_schedules(kinds=("flaky", "partition", "kill"), max_faults=4))
def test_schedules_with_flaky_are_valid_and_round_trip(schedule: FaultSchedule) -> None:
    assert FaultSchedule.from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule


@settings(max_examples=20, deadline=None)
@given(fault=faults(kinds=("flaky",)))
def test_the_report_says_what_a_flaky_fault_did(fault: Fault) -> None:
    from harness.report.data import FaultInterval
    from harness.report.faults import fault_summary

    driver, _, _, rec = _driver(FaultSchedule((fault,)))
    driver.run(time.monotonic() - 100)
    start, stop = rec.ops
    text = fault_summary(FaultInterval(kind="flaky", label="flaky link", start_ns=0,
                                       end_ns=1, start_index=0, end_index=1,
                                       start_value=start[1], end_value=stop[1]))
    assert text.startswith(f"flaky {fault.params['toxic']} (") and text.endswith("removed")
    assert all(f"{a}→{b}" in text for a, b in start[1]["pairs"])


def test_harness_run_help_lists_the_kinds_from_the_registry(capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    from harness.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for name in registry.names():
        assert f"\n  {name} " in out, name


@pytest.mark.slow
def test_a_short_local_run_under_flaky_is_valid(tmp_path: Path) -> None:
    """Reference system, real proxies: every toxic of flaky in one run, one after another,
    and the history checks out (the system survives resets, slices and cut-offs)."""
    from harness.pytest_plugin import require
    from harness.runner import RunConfig, run

    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    kind = registry.get("flaky")
    rng = random.Random(3)
    fs = []
    for i, toxic in enumerate(("slicer", "bandwidth", "limit_data", "reset_peer", "timeout")):
        p = kind.draw(rng, NODES)
        p.update(toxic=toxic, toxicity=1.0, pairs=[["n1", "n2"], ["n3", "n1"]],
                 attributes={k: v[-1] for k, v in ATTRIBUTES[toxic].items()})
        fs.append(Fault("flaky", 0.5 + 1.5 * i, 1.2, p))
    r = run(RunConfig(workload="queue", nemesis=("flaky",), time_limit_s=8.5, seed=3,
                      schedule=FaultSchedule(tuple(fs), 3), reports_dir=tmp_path,
                      op_timeout_s=1.0, workload_options={"drain_quiet_s": 0.5}))
    assert r.error is None, r.error
    lines = (r.run_dir / "history.jsonl").read_text().splitlines()
    starts = [o for o in map(json.loads, filter(str.strip, lines))
              if o["process"] == "nemesis" and o["f"] == "start-flaky"]
    assert [o["value"].get("toxic") for o in starts] == [f.params["toxic"] for f in fs], \
        [o["value"] for o in starts]
    assert all("error" not in o["value"] for o in starts), starts
    # the safety checkers must pass; an availability checker may fairly be unsure after
    # links that stayed flaky to the end of the run
    assert r.results["queue"].valid is True, r.results["queue"].to_dict()
    assert r.valid is not False, {k: v.to_dict() for k, v in r.results.items()
                                  if v.valid is False}


def test_faulty_nodes_a_partition_leaves_outside_its_largest_connected_group() -> None:
    from harness.nemesis import grudge as grudges

    part = registry.get("partition")
    five = ["n1", "n2", "n3", "n4", "n5"]

    def faulty(g: Any, nodes: list[str]) -> Any:
        return part.faulty_nodes({"grudge": {k: sorted(v) for k, v in g.items()}}, nodes)

    assert faulty(grudges.isolate("n2", five[:3]), five[:3]) == ["n2"]
    halves = grudges.random_halves(five, random.Random(3))
    assert len(faulty(halves, five)) == 2  # two against three
    assert len(faulty(grudges.bridge(five[:3], random.Random(1)), five[:3])) == 1
    # a ring of majorities: no majority hears itself both ways
    assert 2 * len(faulty(grudges.majorities_ring(five, random.Random(2)), five)) >= 5
    assert part.faulty_nodes({}, five) is None


def test_faulty_nodes_of_a_process_fault_is_the_node_it_holds() -> None:
    nodes = ["n1", "n2", "n3"]
    assert registry.get("kill").faulty_nodes({"node": "n2"}, nodes) == ["n2"]
    assert registry.get("lose-unsynced").faulty_nodes({"node": "all", "nodes": nodes},
                                                      nodes) == nodes
    assert registry.get("latency").faulty_nodes({"node": "n2"}, nodes) is None
