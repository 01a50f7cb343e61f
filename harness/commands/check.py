"""``harness check``: re-analyse stored or foreign histories."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.analysis import check_history, summarize
from harness.checker.result import merge_validity
from harness.cli import dump_json, exit_code
from harness.formats import detect_format, read_history, resolve_history_path

__all__ = ["check_command", "verdict_style"]


def verdict_style(verdict: str) -> str:
    return {"valid": "green", "invalid": "bold red", "unknown": "yellow"}.get(verdict, "")


def check_command(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title="verdicts")
    for col in ("history", "ops", "checker", "verdict", "why"):
        table.add_column(col)
    verdicts = []
    for raw in args.paths:
        path = resolve_history_path(raw)
        fmt = args.fmt
        if fmt is None:
            with open(path, encoding="utf-8", errors="replace") as fh:
                fmt = detect_format(fh.read(4096))
        history = read_history(path, fmt)
        plan, result = check_history(
            history,
            fmt=fmt,
            model=args.model or _run_model(raw),
            checkers=args.checkers,
            time_limit_s=args.time_limit_s,
            allow_duplicates=args.allow_duplicates,
        )
        verdicts.append(result.valid)
        subs = result.details["results"]
        if args.json:
            sys.stdout.write(dump_json({"path": str(raw), "format": fmt, "model": plan.model,
                                        "valid": result.valid, "results": subs}) + "\n")
            continue
        for name, r in subs.items():
            table.add_row(str(raw), str(len(history)), name if name != "linearizable" else
                          f"linearizable ({plan.model})",
                          f"[{verdict_style(r.verdict)}]{r.verdict}[/]", summarize(r))
    if not args.json:
        console.print(table)
    return exit_code(merge_validity(verdicts))


def _run_model(raw: str) -> str | None:
    """The model a run folder's own check used (its ``results.json``), so that
    ``harness check <run dir>`` agrees with the run's verdict; None otherwise."""
    p = Path(raw) / "results.json"
    if not p.is_file():
        return None
    try:
        lin = json.loads(p.read_text()).get("results", {}).get("linearizable") or {}
    except (OSError, ValueError, AttributeError):
        return None
    model = lin.get("model") if isinstance(lin, dict) else None
    return model if isinstance(model, str) else None
