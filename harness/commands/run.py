"""``harness run``: one fault campaign, with a live display and a verdict table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.analysis import summarize
from harness.cli import exit_code
from harness.commands.check import verdict_style
from harness.errors import HarnessError
from harness.generator import FAULT_KINDS, FaultSchedule
from harness.runner import RunConfig, run

__all__ = ["run_command"]


def _replay(path: str) -> tuple[FaultSchedule, dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise HarnessError(f"{path}: not JSON: {e}") from None
    sched = data.get("schedule", data)
    try:
        return FaultSchedule.from_dict(sched), data.get("config", {})
    except (KeyError, TypeError, ValueError) as e:
        raise HarnessError(f"{path}: not a schedule: {e}") from None


def run_command(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    kinds = tuple(k for k in args.nemesis.split(",") if k and k != "none")
    for k in kinds:
        if k not in FAULT_KINDS:
            raise HarnessError(f"unknown fault {k!r}; known: {', '.join(FAULT_KINDS)}")
    if args.time_limit_s <= 0 or args.concurrency < 1 or args.rate_hz < 0 or args.nodes < 1:
        raise HarnessError("--time-limit, --concurrency and --nodes must be positive, "
                           "--rate non-negative")
    cfg = RunConfig(system=args.system, workload=args.workload, nemesis=kinds,
                    time_limit_s=args.time_limit_s, concurrency=args.concurrency,
                    rate_hz=args.rate_hz, backend=args.backend, nodes=args.nodes,
                    seed=args.seed, bug=args.bug, test=args.test,
                    reports_dir=Path(args.reports), toxiproxy_url=args.toxiproxy_url)
    if args.replay:
        schedule, stored = _replay(args.replay)
        cfg.schedule = schedule
        if args.seed is None:
            cfg.seed = stored.get("seed", schedule.seed)
    status = Text("starting the cluster...")

    def progress(d: dict[str, Any]) -> None:
        c = d["counts"]
        el = d["elapsed_s"]
        total = c["ok"] + c["fail"] + c["info"]
        rate = total / el if el > 0 else 0.0
        faults = ", ".join(d["faults"]) or "none"
        status.plain = (f"{el:5.1f}/{d['time_limit_s']:.0f} s  {rate:6.1f} ops/s  "
                        f"ok {c['ok']}  fail {c['fail']}  info {c['info']}  faults: {faults}")

    with Live(status, console=console, refresh_per_second=4, transient=True):
        result = run(cfg, progress=progress)
    table = Table(title=f"{cfg.system} / {cfg.workload} / {','.join(kinds) or 'no faults'} "
                        f"(seed {result.seed})")
    for col in ("checker", "verdict", "why"):
        table.add_column(col)
    for name, r in result.results.items():
        table.add_row(name, f"[{verdict_style(r.verdict)}]{r.verdict}[/]", summarize(r))
    console.print(table)
    if result.error:
        console.print(f"[yellow]run error: {result.error}[/]")
    report = result.run_dir / "report.html"
    where = report if report.exists() else result.run_dir
    console.print(f"verdict: [{verdict_style(result.verdict)}]{result.verdict}[/]  "
                  f"({result.op_count} events)  report: {where}")
    return exit_code(result.valid)
