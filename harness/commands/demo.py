"""``harness demo``: the checkers on histories with known verdicts, as a table.

Two sources: histories the project generates from simulated systems (correct
ones and ones with a seeded bug), and the shared corpus of published
histories where it is present. Exit 0 when every verdict matches what is
known about its history, 1 when any does not, 2 when any is unknown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.analysis import check_history, summarize
from harness.checker.result import UNKNOWN
from harness.commands.check import verdict_style
from harness.corpus import default_corpus_dir, read_manifest
from harness.examples import EXAMPLES
from harness.formats import read_history, write_jsonl

__all__ = ["demo_command"]


def demo_command(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title="generated histories")
    for col in ("history", "ops", "checker", "verdict", "expected", "why"):
        table.add_column(col)
    mismatches = unknowns = 0
    for ex in EXAMPLES:
        history = ex.make(args.seed)
        write_jsonl(history, out / f"{ex.name}.jsonl")
        _, result = check_history(history, model=ex.model, checkers=ex.checkers)
        got = result.valid
        if got == UNKNOWN:
            unknowns += 1
        elif got is not ex.expected:
            mismatches += 1
        for name, r in result.details["results"].items():
            table.add_row(ex.name, str(len(history)), name,
                          f"[{verdict_style(r.verdict)}]{r.verdict}[/]",
                          "valid" if ex.expected else "invalid", summarize(r))
    console.print(table)
    console.print(f"generated histories written to {out}/")

    corpus = Path(args.corpus) if args.corpus else default_corpus_dir()
    if (corpus / "MANIFEST.md").exists():
        from harness.checker.linearizable import linearizable
        from harness.checker.models import get_model

        ctable = Table(title=f"shared corpus ({corpus})")
        for col in ("suite", "histories", "valid", "invalid", "unknown", "as expected",
                    "check s"):
            ctable.add_column(col)
        rows: dict[str, list[int | float]] = {}
        for entry in read_manifest(corpus):
            history = read_history(entry.path, entry.fmt)
            t0 = time.perf_counter()
            r = linearizable(history, model=get_model(entry.model, **entry.model_args),
                             time_limit_s=60)
            dt = time.perf_counter() - t0
            row = rows.setdefault(entry.suite, [0, 0, 0, 0, 0, 0.0])
            row[0] += 1
            row[1 if r.valid is True else 2 if r.valid is False else 3] += 1
            if r.valid == UNKNOWN:
                unknowns += 1
            elif r.valid is entry.expected:
                row[4] += 1
            else:
                mismatches += 1
            row[5] += dt
        for suite, (n, v, i, u, agree, secs) in rows.items():
            ctable.add_row(suite, str(n), str(v), str(i), str(u), f"{agree}/{n}", f"{secs:.3f}")
        console.print(ctable)
    else:
        console.print(f"[yellow]shared corpus not found at {corpus}: skipped[/]")
    if mismatches:
        console.print(f"[bold red]{mismatches} verdict(s) differ from what is known[/]")
        return 1
    if unknowns:
        console.print(f"[yellow]{unknowns} verdict(s) unknown[/]")
        return 2
    console.print("[green]every verdict matches what is known about its history[/]")
    return 0
