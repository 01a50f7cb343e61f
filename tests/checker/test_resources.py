"""The idle-CPU promise: the readings, the window, and the checker's verdicts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import summarize, with_recorded_checks
from harness.checker.resources import resources
from harness.checker.result import UNKNOWN
from harness.cluster.cpu import cgroup_cpu, group_cpu
from harness.history import History, Op, OpType
from harness.resources import IDLE_CPU, RESOURCES, cpu_promise, measure_idle_cpu
from harness.system import CpuBound
from harness.testing import FakeClock

PROMISE = {"cpu": {"idle_cores": 0.2, "window_s": 0.5}}


def _history(window: Any, promise: Any = PROMISE) -> History:
    ops = [Op(index=0, time=0, type=OpType.INFO, process="nemesis", f="promises",
              value=promise)]
    if window is not None:
        ops.append(Op(index=1, time=10, type=OpType.INFO, process=RESOURCES, f=IDLE_CPU,
                      value=window))
    return History(ops)


def _window(before: dict[str, Any], after: dict[str, Any], window_s: float = 0.5
            ) -> dict[str, Any]:
    return {"window_s": window_s, "before": before, "after": after}


def test_idle_nodes_under_the_bound_are_valid() -> None:
    h = _history(_window({"n1": ["a", 1.0], "n2": ["b", 2.0]},
                         {"n1": ["a", 1.02], "n2": ["b", 2.03]}))
    r = resources(h)
    assert r.valid is True
    assert r.details["nodes"]["n2"]["cores"] == pytest.approx(0.06)
    assert "2 idle nodes under 0.2" in summarize(r)


def test_a_spinning_node_is_a_runaway() -> None:
    h = _history(_window({"n1": ["a", 1.0], "n2": ["b", 2.0]},
                         {"n1": ["a", 1.02], "n2": ["b", 2.3]}))
    r = resources(h)
    assert r.valid is False
    assert list(r.details["anomalies"]) == ["cpu-runaway"]
    assert [x["node"] for x in r.details["runaways"]] == ["n2"]
    assert "n2 at 0.60" in summarize(r)


def test_a_node_restarted_or_down_in_the_window_is_not_judged() -> None:
    h = _history(_window({"n1": ["a", 1.0], "n2": ["b", 2.0], "n3": None},
                         {"n1": ["a2", 5.0], "n2": ["b", 2.01], "n3": ["c", 9.0]}))
    r = resources(h)
    assert r.valid is True
    assert r.details["nodes"]["n1"]["cores"] is None
    assert r.details["nodes"]["n3"]["cores"] is None


def test_no_window_or_no_reading_or_no_promise_is_unknown() -> None:
    assert resources(_history(None)).valid == UNKNOWN
    assert resources(_history(_window({"n1": None}, {"n1": None}))).valid == UNKNOWN
    assert resources(_history(_window({"n1": ["a", 1]}, {"n1": ["a", 9]}), promise={})
                     ).valid == UNKNOWN


def test_the_checker_is_planned_only_when_the_history_states_the_bound() -> None:
    assert "resources" in with_recorded_checks(("stats",), _history(None))
    assert "resources" not in with_recorded_checks(("stats",), _history(None, promise={}))


_reading = st.one_of(st.none(), st.integers(), st.text(max_size=3),
                     st.tuples(st.text(max_size=3), st.floats(allow_nan=True)).map(list),
                     st.lists(st.integers(), max_size=3))
_values = st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=3), st.booleans())


@settings(max_examples=300, deadline=None)
@given(before=st.dictionaries(st.text(max_size=2), _reading, max_size=3),
       after=st.dictionaries(st.text(max_size=2), _reading, max_size=3),
       window_s=_values, cores=_values, raw=st.one_of(st.none(), _values))
def test_any_recorded_window_is_judged_without_crashing(before: Any, after: Any,
                                                        window_s: Any, cores: Any,
                                                        raw: Any) -> None:
    window = raw if raw is not None else _window(before, after, window_s)
    r = resources(_history(window, {"cpu": {"idle_cores": cores, "window_s": 0.5}}))
    assert r.valid in (True, False, UNKNOWN)
    summarize(r)


class _Cluster:
    def __init__(self) -> None:
        self.cpu = {"n1": 1.0, "n2": 2.0}

    def cpu_usage(self, node: str) -> tuple[str, float] | None:
        if node == "n3":
            raise OSError("engine gone")
        return "inc", self.cpu[node]


class _System:
    def cpu_bound(self) -> CpuBound:
        return CpuBound(idle_cores=0.2, window_s=0.5)


def test_measure_idle_cpu_reads_before_and_after_the_window() -> None:
    cluster, clock, ops = _Cluster(), FakeClock(), []

    def sleep(s: float) -> None:
        clock.sleep(s)
        cluster.cpu["n1"] += 0.4

    value = measure_idle_cpu(cluster, lambda *a: ops.append(a), ["n1", "n2", "n3"],
                             window_s=0.5, sleep=sleep, clock=clock)
    assert value["window_s"] == pytest.approx(0.5)
    assert value["before"] == {"n1": ["inc", 1.0], "n2": ["inc", 2.0], "n3": None}
    assert value["after"]["n1"] == ["inc", 1.4]
    assert ops[0][:3] == (OpType.INFO, RESOURCES, IDLE_CPU)
    assert cpu_promise(_System(), cluster) == {"idle_cores": 0.2, "window_s": 0.5}
    assert cpu_promise(_System(), object()) is None  # a backend that cannot measure
    assert cpu_promise(_System(), cluster, ["n3"]) is None  # nor one that reads no node


def test_group_cpu_counts_a_process_group_and_knows_when_it_is_gone() -> None:
    spin = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nt=time.process_time()\nwhile time.process_time()-t<0.4: pass\n"
         "time.sleep(30)"], start_new_session=True)
    try:
        first = group_cpu(spin.pid)
        assert first is not None
        deadline = time.monotonic() + 10
        while True:
            now = group_cpu(spin.pid)
            assert now is not None and now[0] == first[0]  # one incarnation
            if now[1] >= 0.4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert now[1] >= 0.4
    finally:
        os.killpg(spin.pid, signal.SIGKILL)
        spin.wait()
    assert group_cpu(spin.pid) is None


def test_cgroup_cpu_reads_either_version(tmp_path: Path) -> None:
    v1 = tmp_path / "v1" / "cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("2500000000\n")
    assert cgroup_cpu("abc", root=tmp_path / "v1")[1] == pytest.approx(2.5)  # type: ignore[index]
    v2 = tmp_path / "v2" / "system.slice" / "docker-abc.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    assert cgroup_cpu("abc", root=tmp_path / "v2")[1] == pytest.approx(1.5)  # type: ignore[index]
    assert cgroup_cpu("other", root=tmp_path / "v2") is None
