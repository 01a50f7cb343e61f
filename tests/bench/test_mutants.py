"""The mutation-score benchmark's machinery (seconds), and one slow run of ``--quick``.

The default tier checks what the score rests on without starting a cluster:
enumeration drops mutants that do not compile and those that only touch an
annotation, sampling is seeded and stratified, a mutant lands in a copy (never
in the tree) and the nodes' environment really imports that copy, and a run's
checker results are read as killed (safety or progress) or not. The slow test
runs the real thing on a fixed small sample and asserts only that every
mutant was run and the score printed: the score itself is a measurement.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness.bench.mutants import (
    Kill,
    Mutant,
    MutantSystem,
    Outcome,
    Population,
    enumerate_mutants,
    kill_of,
    main,
    materialize,
    run_battery,
    sample,
    score_lines,
)
from harness.bench.mutants.battery import BATTERY
from harness.bench.mutants.generate import Candidate
from harness.checker.result import UNKNOWN, Result
from harness.generator import FaultSchedule
from harness.pytest_plugin import require
from harness.runner import RunConfig, RunResult
from harness.system import Address, NodeContext, project_root

pytest.importorskip("cosmic_ray")

#: a module with every case enumeration must judge: a keyword-only ``*`` that
#: cosmic-ray 8.7 rewrites into syntax errors, ``X | None`` annotations (of a
#: parameter, a return and a variable), and ordinary code to mutate
SAMPLE_MODULE = '''\
from __future__ import annotations


def f(a: int | None, *, b: int = 1) -> int | None:
    c: int | None = None
    if a is None or a < b:
        return c
    return a + b * 2
'''


def _package(root: Path, source: str = SAMPLE_MODULE) -> Path:
    (root / "reference_system").mkdir(parents=True)
    (root / "reference_system" / "__init__.py").write_text("")
    (root / "reference_system" / "mod.py").write_text(source)
    return root


def test_enumeration_drops_syntax_errors_and_annotation_only_swaps(tmp_path: Path) -> None:
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    pop = enumerate_mutants(["mod"], root=_package(tmp_path))
    syntax = [c for c in pop.candidates if c.excluded == "syntax"]
    equivalent = [c for c in pop.candidates if c.excluded == "equivalent"]
    assert syntax and equivalent and pop.valid
    for c in syntax:  # the bare `*` rewritten: `def f(a, /, b)`, `def f(a, +, b)`, ...
        assert c.mutant.line == 4
        with pytest.raises(SyntaxError):
            compile(c.mutant.mutated, "mod.py", "exec")
    # the `|` of the parameter's and the return's annotation, each to every other
    # binary operator (cosmic-ray itself leaves a variable's annotation alone)
    assert len(equivalent) == 2 * 11
    assert {c.mutant.line for c in equivalent} == {4}
    assert all(c.mutant.operator.startswith("core/ReplaceBinaryOperator_BitOr_")
               for c in equivalent)
    for m in pop.valid:
        compile(m.mutated, "mod.py", "exec")
        assert m.mutated != SAMPLE_MODULE
        # line 4 keeps real mutants (`def f(a, /, b)` compiles; the default 1 -> 2)
        assert "a: int | None" in m.mutated and "-> int | None:" in m.mutated, m
        # built on one shared tree, yet identical to cosmic-ray's own mutant
        assert mutate_code(SAMPLE_MODULE, get_operator(m.operator)(), m.occurrence) == m.mutated
    ids = [c.mutant.id for c in pop.candidates]
    assert len(ids) == len(set(ids))


def test_annotation_swaps_count_only_under_future_annotations(tmp_path: Path) -> None:
    """Without the future import annotations are evaluated: swapping `|` is a real mutant."""
    src = SAMPLE_MODULE.replace("from __future__ import annotations\n", "")
    pop = enumerate_mutants(["mod"], root=_package(tmp_path, src))
    assert pop.count("equivalent") == 0
    assert any(m.line == 3 and "BitOr" in m.operator for m in pop.valid)


BUGGY_MODULE = '''\
class M:
    def f(self, x):
        if "lossy" in self.bugs and x > 1:
            x = x - 1
            return x
        if "careful" not in self.bugs:
            x = x * 2
        return x + 1
'''


def test_seeded_bug_switches_and_their_dead_code_are_left_out(tmp_path: Path) -> None:
    pop = enumerate_mutants(["mod"], root=_package(tmp_path, BUGGY_MODULE))
    bug = {c.mutant.line for c in pop.candidates if c.excluded == "seeded-bug"}
    # the switches (3, 6) and the body only the switched-on bug runs (4; `return x`
    # has nothing to mutate); the body of a `not in` switch is the correct code
    assert bug == {3, 4, 6}
    assert {m.line for m in pop.valid} == {7, 8}


def _fake(module: str, k: int) -> Mutant:
    return Mutant(module, "core/NumberReplacer", k, k + 1, 0, "x = 1\n", "x = 2\n")


def _population(sizes: dict[str, int]) -> Population:
    return Population([Candidate(_fake(mod, k)) for mod, n in sizes.items() for k in range(n)])


def test_sample_is_seeded_and_stratified() -> None:
    pop = _population({"replica": 600, "node": 200, "api": 150, "storage": 120,
                       "state_machine": 100, "leases": 10})
    a = sample(pop, 40, seed=7)
    assert a == sample(pop, 40, seed=7)
    assert a != sample(pop, 40, seed=8)
    assert len(a) == 40 and len(set(a)) == 40
    per = {mod: sum(1 for m in a if m.module == mod) for mod in pop.by_module()}
    assert all(v >= 1 for v in per.values()), per  # every module is represented
    assert per["replica"] == max(per.values()) and per["replica"] >= 15  # ~ proportional
    # never more than a module has; a sample larger than the population is all of it
    small = _population({"a": 2, "b": 50})
    assert {m.module for m in sample(small, 10, 1)} == {"a", "b"}
    assert len(sample(small, 100, 1)) == 52
    # fewer draws than modules: the largest modules first
    assert {m.module for m in sample(pop, 2, 1)} == {"replica", "node"}


def test_a_mutant_lands_in_the_copy_and_the_nodes_import_the_copy(tmp_path: Path) -> None:
    tree = project_root() / "reference_system" / "leases.py"
    before = tree.read_text()
    pop = enumerate_mutants(["leases"])
    m = pop.valid[len(pop.valid) // 2]
    dest = materialize(m, tmp_path / "copy")
    copied = dest / "reference_system" / "leases.py"
    assert copied.read_text() == m.mutated != before
    assert tree.read_text() == before  # the working tree is only read
    assert m.diff().startswith("--- a/reference_system/leases.py")
    # the node's command and environment, as the local backend starts it (cwd: the
    # project root, which `python -m` would put first on sys.path)
    ctx = NodeContext("n1", 0, ("n1",), {"peer": Address("127.0.0.1", 1),
                                         "client": Address("127.0.0.1", 2)}, {}, str(tmp_path),
                      {})
    launch = MutantSystem(mutant_path=str(dest)).launch(ctx)
    assert launch.argv[1:3] == ("-m", "reference_system.node")
    probe = ("import builtins, reference_system.leases as l; print(l.__file__); "
             "print(builtins.CosmicRayTestingException.__name__)")
    r = subprocess.run([launch.argv[0], "-c", probe], env={**os.environ, **launch.env},
                       cwd=project_root(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(copied), "CosmicRayTestingException"]


def _result(results: dict[str, Result], *, error: str | None = None, ops: int = 100,
            valid: Any = None) -> RunResult:
    if valid is None:
        vs = [r.valid for r in results.values()]
        valid = False if False in vs else (UNKNOWN if UNKNOWN in vs else True)
    return RunResult(valid, results, Path("/nonexistent-run"), 1, FaultSchedule((), seed=1), ops,
                     error)


def _r(checker: str, valid: Any, **details: Any) -> Result:
    return Result(valid, checker=checker, details=details)


@pytest.mark.parametrize(("results", "expected"), [
    ({"queue": _r("queue", False, anomalies=["lost"]), "stats": _r("stats", True)},
     ("safety", (("queue", "lost"),))),
    ({"linearizable": _r("linearizable", False, counterexample={"op": 1})},
     ("safety", (("linearizable", "nonlinearizable"),))),
    ({"fencing": _r("fencing", False, anomalies=["double-completion"]),
      "lease": _r("lease", False, anomalies=["lease-overlap"])},
     ("safety", (("fencing", "double-completion"), ("lease", "lease-overlap")))),
    ({"convergence": _r("convergence", False, anomalies=["divergence"])},
     ("safety", (("convergence", "divergence"),))),
    ({"newchecker": _r("newchecker", False)}, ("safety", (("newchecker", "invalid"),))),
    ({"queue": _r("queue", False, anomalies=["stuck"])}, ("progress", (("queue", "stuck"),))),
    ({"queue": _r("queue", UNKNOWN, anomalies=[], progress=["unfinished", "unresolved"])},
     ("progress", (("queue", "unfinished"),))),
    ({"stats": _r("stats", UNKNOWN, never_ok=["complete"])},
     ("progress", (("stats", "required-op-missing"),))),
    ({"queue": _r("queue", False, anomalies=["stuck", "lost"])},
     ("safety", (("queue", "stuck"), ("queue", "lost")))),
    ({"robustness": _r("robustness", False, anomalies=["accepted-bad-input"])},
     ("robustness", (("robustness", "accepted-bad-input"),))),
    ({"robustness": _r("robustness", False, anomalies=["error-on-bad-input"]),
      "queue": _r("queue", UNKNOWN, anomalies=[], progress=["unfinished"])},
     ("robustness", (("queue", "unfinished"), ("robustness", "error-on-bad-input")))),
    ({"robustness": _r("robustness", False, anomalies=["accepted-bad-input"]),
      "queue": _r("queue", False, anomalies=["unexpected"])},
     ("safety", (("queue", "unexpected"), ("robustness", "accepted-bad-input")))),
    ({"introspection": _r("introspection", UNKNOWN, progress=["introspection-failed"])},
     ("introspection", (("introspection", "introspection-failed"),))),
    ({"introspection": _r("introspection", UNKNOWN, progress=["introspection-failed"]),
      "queue": _r("queue", UNKNOWN, anomalies=[], progress=["unfinished"])},
     ("progress", (("introspection", "introspection-failed"), ("queue", "unfinished")))),
    ({"resources": _r("resources", False, anomalies=["cpu-runaway"])},
     ("resources", (("resources", "cpu-runaway"),))),
    ({"resources": _r("resources", False, anomalies=["cpu-runaway"]),
      "queue": _r("queue", UNKNOWN, anomalies=[], progress=["unfinished"])},
     ("progress", (("queue", "unfinished"), ("resources", "cpu-runaway")))),
    # not a kill: proves nothing either way, or the run passed
    ({"queue": _r("queue", UNKNOWN, anomalies=[], progress=["unresolved"])}, None),
    ({"linearizable": _r("linearizable", UNKNOWN, error="time limit")}, None),
    ({"queue": _r("queue", True, anomalies=[], progress=[]), "stats": _r("stats", True)}, None),
])
def test_kills_are_read_generically_and_classified(results: dict[str, Result],
                                                   expected: Any) -> None:
    kill = kill_of(_result(results))
    assert (kill.kind, kill.findings) == expected if kill else expected is None


def test_an_errored_run_kills_nothing() -> None:
    assert kill_of(_result({}, error="boom", valid=UNKNOWN)) is None


def test_a_cluster_that_did_not_recover_is_a_progress_kill(tmp_path: Path) -> None:
    """A node that crashed mid-run leaves the checkers only unanswered reads (unknown)."""
    (tmp_path / "history.jsonl").write_text(
        '{"index":0,"time":1,"type":"info","process":"nemesis","f":"heal-all","value":[]}\n'
        '{"index":1,"time":2,"type":"info","process":"nemesis","f":"not-recovered",'
        '"value":{"error":"n2 exited while waiting for every node healthy"}}\n')
    unknown = {"queue": _r("queue", UNKNOWN, anomalies=[], progress=["unresolved"])}
    r = RunResult(UNKNOWN, unknown, tmp_path, 1, FaultSchedule((), seed=1), 2, None)
    kill = kill_of(r)
    assert kill is not None and (kill.kind, kill.findings) == (
        "progress", (("runner", "not-recovered"),))


def _runner(results: list[RunResult], seen: list[RunConfig]) -> Any:
    def run(cfg: RunConfig) -> RunResult:
        seen.append(cfg)
        return results[len(seen) - 1]
    return run


def test_battery_stops_at_the_first_kill_and_tells_broken_from_killed(tmp_path: Path) -> None:
    ok = _result({"stats": _r("stats", True)})
    lost = _result({"queue": _r("queue", False, anomalies=["lost"])})
    seen: list[RunConfig] = []
    o = run_battery(tmp_path, tmp_path, label="m", runner=_runner([ok, lost, ok], seen))
    assert (o.status, o.recipe, o.runs) == ("killed", BATTERY[1].name, 2)
    assert o.kill is not None and o.kill.kind == "safety"
    assert all(c.system_options["mutant_path"] == str(tmp_path) for c in seen)
    assert all(c.backend == "local" and c.reports_dir == tmp_path for c in seen)
    # the cluster never got ready: broken, at once
    not_ready = _result({}, error="n1 exited while waiting for every node healthy", ops=0,
                        valid=UNKNOWN)
    o = run_battery(tmp_path, tmp_path, label="m", runner=_runner([not_ready], []))
    assert (o.status, o.runs, o.kill) == ("broken", 1, None)
    # ready in the first run, never in the second: a progress kill, not broken
    o = run_battery(tmp_path, tmp_path, label="m", runner=_runner([ok, not_ready], []))
    assert (o.status, o.recipe, o.runs) == ("killed", BATTERY[1].name, 2)
    assert o.kill is not None and o.kill.kind == "progress"
    assert o.kill.findings == (("runner", "never-ready"),) and "n1 exited" in (o.error or "")
    # an error after the start is not a kill: the battery goes on, and says so at the end
    crashed = _result({}, error="client crashed", ops=50, valid=UNKNOWN)
    o = run_battery(tmp_path, tmp_path, label="m",
                    runner=_runner([crashed] + [ok] * len(BATTERY), []))
    assert (o.status, o.runs) == ("error", len(BATTERY)) and "client crashed" in (o.error or "")
    o = run_battery(tmp_path, tmp_path, label="m", runner=_runner([ok] * len(BATTERY), []))
    assert (o.status, o.runs, o.skipped) == ("survived", len(BATTERY), [])


def test_battery_runs_are_bounded_and_kill_runs_take_snapshots(tmp_path: Path) -> None:
    from harness.systems import get_system

    total = 0.0
    for recipe in BATTERY:
        cfg = recipe.config(tmp_path / "copy", tmp_path, f"t-{recipe.name}")
        system = get_system(cfg.system, **cfg.system_options)
        assert isinstance(system, MutantSystem) and system.mutant_path == str(tmp_path / "copy")
        assert cfg.backend == "local" and cfg.seed == recipe.seed
        assert cfg.recovery_timeout_s <= 10 and cfg.final_timeout_s <= 15
        assert cfg.check_time_limit_s <= 20
        if "kill" in cfg.nemesis:
            assert cfg.workload == "takeover" or \
                "--snapshot-every-slots" in system.extra_args, recipe.name
        total += cfg.time_limit_s
    assert total <= 75  # time limits alone (the issue allows 90); setup, recovery and checks on top


def test_battery_keeps_to_its_budget(tmp_path: Path) -> None:
    ok = _result({"stats": _r("stats", True)})
    nominal = {r.name: 30.0 for r in BATTERY}
    ticks = iter(range(0, 1000, 30))  # each run takes 30 s of the clock
    o = run_battery(tmp_path, tmp_path, label="m", budget_s=65.0, nominal_s=nominal,
                    runner=_runner([ok] * len(BATTERY), []), clock=lambda: float(next(ticks)))
    assert o.runs == 2 and o.skipped == [r.name for r in BATTERY[2:]]


def test_score_leaves_out_broken_errored_and_judged_equivalent() -> None:
    def outcome(status: str, kind: str | None = None) -> Outcome:
        findings = (("queue", "lost" if kind == "safety" else "unfinished"),)
        return Outcome(status, kill=Kill(findings) if kind else None)

    ms = [_fake("replica", k) for k in range(7)]
    results = [(ms[0], outcome("killed", "safety")), (ms[1], outcome("killed", "progress")),
               (ms[2], outcome("killed", "safety")), (ms[3], outcome("survived")),
               (ms[4], outcome("survived")), (ms[5], outcome("broken")),
               (ms[6], outcome("error"))]
    lines = score_lines(results, {ms[3].id: "equivalent: the bound is never reached",
                                  ms[4].id: "a real gap: nothing checks renew"})
    assert lines[0].startswith("killed: 3 (safety 2, progress 1, robustness 0, resources 0, "
                              "introspection 0); "
                              "survived: 2; "
                              "broken: 1")
    assert "judged equivalent" in lines[-2]
    assert lines[-1] == "mutation score: 3/4 killed (75%)"


def test_dry_run_prints_the_sample_and_leaves_no_temp_dir() -> None:
    before = set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*"))
    out = io.StringIO()
    assert main(["--modules", "leases", "--sample", "3", "--seed", "5", "--dry-run"],
                out=out) == 0
    text = out.getvalue()
    assert re.search(r"dropped, syntax errors: \d+", text)
    assert re.search(r"excluded as equivalent .*: \d+", text)
    assert len(re.findall(r"^\[ ?\d/3\] leases:", text, re.M)) == 3
    assert set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*")) == before


def test_interrupt_leaves_no_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.bench.mutants.cli as cli

    def interrupted(*a: Any, **k: Any) -> Outcome:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_battery", interrupted)
    before = set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*"))
    out = io.StringIO()
    assert main(["--modules", "leases", "--sample", "1", "--no-control"], out=out) == 130
    assert "interrupted" in out.getvalue()
    assert set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*")) == before


def test_survivors_get_diffs_and_judgements_from_the_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.bench.mutants.cli as cli

    runs: list[Path] = []

    def survived(copy: Path, reports: Path, **k: Any) -> Outcome:
        runs.append(copy)
        return Outcome("survived", seconds=1.0, runs=len(BATTERY))

    monkeypatch.setattr(cli, "run_battery", survived)
    chosen = sample(enumerate_mutants(["leases"]), 2, 3)
    judged = tmp_path / "judgements.json"
    judged.write_text(f'{{"{chosen[0].id}": "equivalent: only the first deadline moves"}}')
    out = io.StringIO()
    assert main(["--modules", "leases", "--sample", "2", "--seed", "3", "--no-control",
                 "--judgements", str(judged)], out=out) == 0
    text = out.getvalue()
    assert len(runs) == 2 and text.count("--- a/reference_system/leases.py") == 2
    assert "judgement: equivalent: only the first deadline moves" in text
    assert "judgement: ?" in text
    assert text.rstrip().splitlines()[-2:] == [
        "N = 2 sampled - 0 broken - 0 errored - 1 judged equivalent = 1",
        "mutation score: 0/1 killed (0%)"]


def test_bad_options_and_files_exit_2() -> None:
    out = io.StringIO()
    assert main(["--modules", "nosuch", "--dry-run"], out=out) == 2
    assert "no module(s) nosuch" in out.getvalue()
    out = io.StringIO()
    assert main(["--modules", "leases", "--only", "leases:core/Nope:0", "--dry-run"],
                out=out) == 2
    assert "no valid mutant(s) leases:core/Nope:0" in out.getvalue()


def test_only_runs_the_named_mutants() -> None:
    ids = [m.id for m in sample(enumerate_mutants(["leases"]), 2, 9)]
    out = io.StringIO()
    assert main(["--modules", "leases", "--only", ",".join(ids), "--dry-run"], out=out) == 0
    listed = re.findall(r"^\[ ?\d/2\] (\S+)", out.getvalue(), re.M)
    assert listed == ids


def test_recipes_runs_only_the_named_runs_in_battery_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.bench.mutants.cli as cli

    batteries: list[tuple[str, ...]] = []

    def survived(copy: Path, reports: Path, **k: Any) -> Outcome:
        batteries.append(tuple(r.name for r in k["battery"]))
        return Outcome("survived", seconds=1.0, runs=len(k["battery"]))

    monkeypatch.setattr(cli, "run_battery", survived)
    last, first = BATTERY[-1].name, BATTERY[0].name
    out = io.StringIO()
    assert main(["--modules", "leases", "--sample", "1", "--no-control",
                 "--recipes", f"{last},{first}"], out=out) == 0, out.getvalue()
    assert batteries == [(first, last)]
    assert f"battery: {first}, {last};" in out.getvalue()
    out = io.StringIO()
    assert main(["--modules", "leases", "--recipes", "no-such-run", "--dry-run"], out=out) == 2
    assert "no run(s) no-such-run in the battery" in out.getvalue()


@pytest.mark.slow
def test_quick_runs_every_sampled_mutant_and_prints_the_score() -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    before = set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*"))
    out = io.StringIO()
    assert main(["--quick"], out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "control (unmutated copy): passed" in text
    n = int(re.search(r"^sample: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    lines = re.findall(r"^\[ ?\d+/\d+\] \S+ .* (killed|survived|broken|error)\b", text, re.M)
    assert n >= 1 and len(lines) == n, text
    assert re.fullmatch(r"mutation score: \d+/\d+ killed \((\d+%|n/a)\)",
                        text.strip().splitlines()[-1]), text
    assert set(Path(tempfile.gettempdir()).glob("harness-bench-mutants-*")) == before


# --- judgements follow their mutant --------------------------------------------------

_V1 = "def f(a, b):\n    x = a + 1\n    return x + b\n"


def _tree(root: Path, text: str) -> Path:
    (root / "reference_system").mkdir(parents=True, exist_ok=True)
    (root / "reference_system" / "toy.py").write_text(text)
    return root


def _mutant(root: Path, change_has: str) -> Any:
    [m] = [m for m in enumerate_mutants(["toy"], root=root).valid
           if m.operator.endswith("Add_Mul") and change_has in m.change]
    return m


def test_a_judgement_follows_its_line_when_code_above_moves_the_ids(tmp_path: Path) -> None:
    from harness.bench.mutants import judgements as J

    v1 = _tree(tmp_path / "v1", _V1)
    judged = _mutant(v1, "x + b")
    anchored, missing = J.anchor({judged.id: J.Judgement("equivalent: a test")},
                                 enumerate_mutants(["toy"], root=v1).valid)
    assert not missing and anchored[judged.id].change == judged.change
    # a function added above: every Add_Mul occurrence below it moves by one
    v2 = _tree(tmp_path / "v2", "def g(c):\n    return c + 2\n\n\n" + _V1)
    now = _mutant(v2, "x + b")
    assert now.id != judged.id
    r = J.resolve(anchored, enumerate_mutants(["toy"], root=v2).valid)
    assert r.by_id == {now.id: "equivalent: a test"} and r.moved == [(judged.id, now.id)]
    # kept by id alone it would have judged another mutant: the one now at that id
    assert _mutant(v2, "a + 1").id == judged.id


def test_a_judgement_whose_line_changed_is_stale_and_not_applied(tmp_path: Path) -> None:
    from harness.bench.mutants import judgements as J

    v1 = _tree(tmp_path / "v1", _V1)
    judged = _mutant(v1, "x + b")
    anchored, _ = J.anchor({judged.id: J.Judgement("equivalent: a test")},
                           enumerate_mutants(["toy"], root=v1).valid)
    v2 = _tree(tmp_path / "v2", _V1.replace("x + b", "x + b - 1"))
    r = J.resolve(anchored, enumerate_mutants(["toy"], root=v2).valid)
    assert r.by_id == {} and r.stale == [judged.id]
    # the same line twice where it was once: which one was judged is unknown
    v3 = _tree(tmp_path / "v3", _V1 + "\n\ndef h(x, b):\n    return x + b\n")
    r = J.resolve(anchored, enumerate_mutants(["toy"], root=v3).valid)
    assert r.by_id == {} and r.stale == [judged.id]


def test_anchoring_a_file_of_bare_judgements(tmp_path: Path) -> None:
    chosen = sample(enumerate_mutants(["leases"]), 1, 3)[0]
    path = tmp_path / "judgements.json"
    path.write_text(f'{{"{chosen.id}": "equivalent: a reason", "leases:core/Nope:0": "x"}}')
    out = io.StringIO()
    assert main(["--modules", "leases", "--judgements", str(path), "--anchor-judgements"],
                out=out) == 0
    assert "anchored 1 judgement(s)" in out.getvalue()
    assert "no mutant has the id of: leases:core/Nope:0" in out.getvalue()
    saved = json.loads(path.read_text())
    assert saved[chosen.id] == {"judgement": "equivalent: a reason", "change": chosen.change,
                                "site": saved[chosen.id]["site"]}
    assert saved["leases:core/Nope:0"] == "x"
    out = io.StringIO()
    assert main(["--modules", "leases", "--judgements", str(path), "--dry-run"], out=out) == 0
    assert "judgements: 1 of 2 apply" in out.getvalue()
    assert "stale, not applied (the judged line changed: judge again): leases:core/Nope:0" \
        in out.getvalue()


def test_a_judgements_file_of_the_wrong_shape_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "judgements.json"
    path.write_text('{"leases:core/X:0": {"judgement": "y", "site": [3, 2]}}')
    out = io.StringIO()
    assert main(["--modules", "leases", "--judgements", str(path), "--dry-run"], out=out) == 2
    assert "must map to a text or to" in out.getvalue()
