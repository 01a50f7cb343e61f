"""``python -m harness.bench.mutants``: the battery against sampled mutants, and the score.

Steps: snapshot ``reference_system/`` once (other work on the tree during a
long benchmark must not change what is mutated), enumerate and judge every
cosmic-ray mutant of the chosen modules, draw a seeded stratified sample, run
the battery once against an unmutated copy (the control: if the correct
system fails the battery, no kill means anything, so the benchmark stops),
then each mutant in its own copy. Every copy and every run's reports live in
one temporary folder removed at the end, on an exception and on Ctrl-C
(``--keep`` keeps it); the runner tears each cluster down itself. SIGTERM and
SIGHUP stop it like Ctrl-C (``harness.interrupts``), exit code 128 + signal.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import TextIO

from harness.bench.mutants import judgements as judgement_file
from harness.bench.mutants.battery import BATTERY, Outcome, Recipe, run_battery
from harness.bench.mutants.generate import (
    MODULES,
    PACKAGE,
    Mutant,
    enumerate_mutants,
    materialize,
    sample,
)
from harness.errors import HarnessError
from harness.interrupts import StopSignals
from harness.system import project_root

__all__ = ["QUICK", "main", "score_lines"]

#: ``--quick``: a fixed sample small enough for a slow-tier test (at most ~10 minutes:
#: enumeration, the control and three mutants at most 90 s each)
QUICK = {"sample": 3, "seed": 1}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.bench.mutants",
        description="Mutation score of the campaign battery against cosmic-ray mutants of "
                    "the reference system.")
    p.add_argument("--sample", type=int, default=40, help="mutants to draw (default 40)")
    p.add_argument("--seed", type=int, default=1, help="sampling seed (default 1)")
    p.add_argument("--modules", default=",".join(MODULES),
                   help=f"comma-separated modules of {PACKAGE} (default: {','.join(MODULES)})")
    p.add_argument("--quick", action="store_true",
                   help=f"the fixed small sample {QUICK} (a slow-tier test runs it)")
    p.add_argument("--budget-s", type=float, default=200.0,
                   help="wall-clock seconds of runs per mutant at most: a run starts only "
                        "if the control's time for it still fits (default 200; the "
                        "control takes about 145)")
    p.add_argument("--judgements", type=Path, default=None,
                   help="JSON file: mutant id -> judgement of a survivor; one starting "
                        "with 'equivalent' leaves the mutant out of the score. Each is "
                        "anchored to the mutant's change and follows it when lines move; "
                        "one whose line changed is reported stale and not applied")
    p.add_argument("--anchor-judgements", action="store_true",
                   help="record, in the --judgements file, the change of each entry that "
                        "has none, from the current tree (right only at the commit where "
                        "they were judged), then stop")
    p.add_argument("--no-control", action="store_true",
                   help="skip the control run of the battery on the unmutated system")
    p.add_argument("--only", default=None, metavar="ID[,ID...]",
                   help="run these mutants instead of a sample (to look again at a "
                        "survivor or a kill, e.g. with --keep)")
    p.add_argument("--recipes", default=None, metavar="NAME[,NAME...]",
                   help="run only these runs of the battery, in its order (to look again "
                        "at a survivor or a kill); a score so measured is not the battery's")
    p.add_argument("--dry-run", action="store_true",
                   help="enumerate and sample only: print the sample, run nothing")
    p.add_argument("--keep", action="store_true",
                   help="keep the copies and every run's reports (the folder is printed)")
    return p


def _is_equivalent(judgement: str | None) -> bool:
    return bool(judgement) and str(judgement).strip().lower().startswith("equivalent")


def score_lines(results: list[tuple[Mutant, Outcome]], judgements: dict[str, str]
                ) -> list[str]:
    """The summary: counts by outcome and kind, then the score line (always last).

    N leaves out broken mutants (they never started: nothing was tested),
    mutants whose runs errored (the harness, not a checker, stopped them) and
    survivors judged equivalent.
    """
    killed = [o for _, o in results if o.status == "killed"]
    kinds = Counter(o.kill.kind for o in killed if o.kill is not None)
    broken = sum(1 for _, o in results if o.status == "broken")
    errors = sum(1 for _, o in results if o.status == "error")
    survivors = [m for m, o in results if o.status == "survived"]
    equivalent = sum(1 for m in survivors if _is_equivalent(judgements.get(m.id)))
    n = len(results) - broken - errors - equivalent
    pct = f"{100 * len(killed) / n:.0f}%" if n else "n/a"
    return [
        f"killed: {len(killed)} (safety {kinds['safety']}, progress {kinds['progress']}, "
        f"robustness {kinds['robustness']}, resources {kinds['resources']}, "
        f"introspection {kinds['introspection']}); "
        f"survived: {len(survivors)}; broken: {broken}; errors: {errors}",
        f"N = {len(results)} sampled - {broken} broken - {errors} errored "
        f"- {equivalent} judged equivalent = {n}",
        f"mutation score: {len(killed)}/{n} killed ({pct})",
    ]


def _revision(root: Path) -> str:
    """The commit measured, and whether the package had uncommitted changes (the
    working tree is what is snapshot, so a score is reproducible only from a clean one)."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                           timeout=30, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", PACKAGE)
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit (no git)"
    if not commit:
        return "an unknown commit (no git)"
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")


def _short(error: str | None, limit: int = 100) -> str:
    """An error for one line: without the log folder (a temporary one, gone by now)."""
    text = re.sub(r"\s*\(logs in [^)]*\)", "", error or "")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _line(i: int, total: int, m: Mutant, o: Outcome) -> str:
    where = f"{m.module}.py:{m.line}"
    if o.status == "killed" and o.kill is not None:
        what = f"killed   {o.kill.kind:<8} by {o.kill.describe()} in {o.recipe}"
    elif o.status == "broken":
        what = f"broken   (not ready in {o.recipe}: {_short(o.error)})"
    elif o.status == "error":
        what = f"error    ({_short(o.error)})"
    else:
        what = "survived" + (f" (budget: skipped {','.join(o.skipped)})" if o.skipped else "")
    return (f"[{i:>2}/{total}] {m.id:<58} {where:<22} {m.operator_short:<40} {what}  "
            f"{o.seconds:.0f} s")


def _battery(names: str | None) -> tuple[Recipe, ...]:
    """The battery's runs named (all of them without ``--recipes``), in its order."""
    if names is None:
        return BATTERY
    wanted = [n for n in names.split(",") if n]
    known = {r.name for r in BATTERY}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise HarnessError(f"no run(s) {', '.join(unknown) or repr(names)} in the battery "
                           f"(its runs: {', '.join(sorted(known))})")
    return tuple(r for r in BATTERY if r.name in wanted)


def _run(a: argparse.Namespace, out: TextIO, work: Path) -> int:
    def say(s: str = "") -> None:
        print(s, file=out, flush=True)

    modules = [m for m in a.modules.split(",") if m]
    battery = _battery(a.recipes)
    # every run writes its HTML report; an empty plot's legend warning is noise here
    warnings.filterwarnings("ignore", "No artists with labels", UserWarning)
    judged = judgement_file.load(a.judgements) if a.judgements is not None else {}
    if a.anchor_judgements and a.judgements is None:
        raise HarnessError("--anchor-judgements needs --judgements FILE")
    say(f"{PACKAGE} at {_revision(project_root())}")
    base = work / "base"
    base.mkdir()
    shutil.copytree(project_root() / PACKAGE, base / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    t0 = time.monotonic()
    population = enumerate_mutants(modules, root=base)
    per_module = {k: len(v) for k, v in sorted(population.by_module().items())}
    say(f"mutants of {PACKAGE} ({', '.join(modules)}) by cosmic-ray: "
        f"{len(population.candidates)} candidates in {time.monotonic() - t0:.0f} s")
    say(f"  dropped, syntax errors: {population.count('syntax')}")
    say(f"  excluded as equivalent (annotation only, or text unchanged): "
        f"{population.count('equivalent')}")
    say(f"  excluded as seeded-bug code (a bug's switch, or code only a switched-on bug "
        f"runs): {population.count('seeded-bug')}")
    say(f"  valid: {len(population.valid)}  "
        + " ".join(f"{k}={v}" for k, v in per_module.items()))
    if a.anchor_judgements:
        assert a.judgements is not None
        anchored, missing = judgement_file.anchor(judged, population.valid)
        judgement_file.save(a.judgements, anchored)
        say(f"anchored {sum(1 for k, j in judged.items() if j.change is None) - len(missing)} "
            f"judgement(s) in {a.judgements}"
            + (f"; no mutant has the id of: {', '.join(missing)}" if missing else ""))
        return 0
    resolved = judgement_file.resolve(judged, population.valid)
    judgements = resolved.by_id
    if judged:
        say(f"judgements: {len(judgements)} of {len(judged)} apply"
            + (f"; {resolved.unanchored} by id alone (no anchor)" if resolved.unanchored else ""))
        for old_id, new_id in resolved.moved:
            say(f"  moved with its line: {old_id} -> {new_id}")
        if resolved.stale:
            say(f"  stale, not applied (the judged line changed: judge again): "
                f"{', '.join(resolved.stale)}")
    if a.only:
        by_id = {m.id: m for m in population.valid}
        wanted = [i for i in a.only.split(",") if i]
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise HarnessError(f"no valid mutant(s) {', '.join(missing)} (ids are "
                               "module:operator:occurrence, as printed)")
        chosen = [by_id[i] for i in wanted]
    else:
        chosen = sample(population, a.sample, a.seed)
    drawn: dict[str, int] = {}
    for m in chosen:
        drawn[m.module] = drawn.get(m.module, 0) + 1
    how = "given by --only" if a.only else f"seed {a.seed}"
    say(f"sample: {len(chosen)} ({how}) "
        + " ".join(f"{k}={v}" for k, v in sorted(drawn.items())))
    say(f"battery: {', '.join(r.name for r in battery)}; at most {a.budget_s:.0f} s of "
        "campaign time per mutant, stopping at the first kill")
    if a.dry_run:
        for i, m in enumerate(chosen, 1):
            say(f"[{i:>2}/{len(chosen)}] {m.id:<58} {m.module}.py:{m.line}")
        return 0
    reports = work / "reports"
    nominal: dict[str, float] | None = None
    if not a.no_control:
        ctl = run_battery(materialize(None, work / "control", root=base), reports,
                          label="control", budget_s=float("inf"), battery=battery)
        verdict = "passed" if ctl.status == "survived" else f"failed ({ctl.status})"
        say(f"control (unmutated copy): {verdict} in {ctl.seconds:.0f} s ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in ctl.per_run_s.items()) + ")")
        if ctl.status != "survived":
            detail = ctl.kill.describe() if ctl.kill else ctl.error
            say(f"the unmutated system does not pass the battery ({ctl.recipe}: {detail}); "
                "kills would mean nothing, so no mutant is run")
            return 2
        nominal = ctl.per_run_s
        shutil.rmtree(work / "control", ignore_errors=True)
    results: list[tuple[Mutant, Outcome]] = []
    started = time.monotonic()
    for i, m in enumerate(chosen, 1):
        copy = materialize(m, work / f"m{i:03d}", root=base)
        try:
            o = run_battery(copy, reports, label=f"mutant{i:03d}", budget_s=a.budget_s,
                            nominal_s=nominal, battery=battery)
        finally:
            if not a.keep:
                shutil.rmtree(copy, ignore_errors=True)
        results.append((m, o))
        say(_line(i, len(chosen), m, o))
    minutes = (time.monotonic() - started) / 60
    say(f"{len(results)} mutants in {minutes:.1f} min "
        f"({minutes / max(1, len(results)):.2f} min per mutant)")
    survivors = [m for m, o in results if o.status == "survived"]
    if survivors:
        say("")
        say(f"survivors ({len(survivors)}):")
        for m in survivors:
            say("")
            say(f"{m.id} ({m.module}.py:{m.line}, {m.operator_short})")
            say(m.diff())
            say(f"judgement: {judgements.get(m.id, '?')}")
    say("")
    for s in score_lines(results, judgements):
        say(s)
    return 0


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the benchmark; 0 when it ran (whatever the score), 2 when it could not (a
    bad option or file, or the control failed), 128 + signal when stopped by one."""
    p = _parser()
    a = p.parse_args(argv)
    if a.quick:
        a.sample, a.seed = QUICK["sample"], QUICK["seed"]
    if a.sample < 1:
        p.error("--sample must be at least 1")
    out = out or sys.stdout
    keep = Path(tempfile.mkdtemp(prefix="harness-bench-mutants-")) if a.keep else None
    if keep is not None:
        print(f"keeping copies and reports in {keep}", file=out, flush=True)
    try:
        with StopSignals(), contextlib.ExitStack() as stack:
            work = keep or Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="harness-bench-mutants-")))
            return _run(a, out, work)
    except KeyboardInterrupt as e:
        print("interrupted", file=out, flush=True)
        return int(getattr(e, "exit_code", 130))
    except BrokenPipeError:  # `| head`: nobody is reading any more
        sys.stderr.close()
        return 1
    except (HarnessError, OSError, ValueError) as e:  # a bad module, judgements file, ...
        print(f"error: {e}", file=out, flush=True)
        return 2
