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
from harness.conformance import parse_options
from harness.errors import HarnessError
from harness.generator import FaultSchedule
from harness.nemesis import registry
from harness.runner import RunConfig, run

__all__ = ["run_command"]


def _replay(path: str) -> tuple[FaultSchedule, dict[str, Any], int | None]:
    """(schedule, stored configuration or {}, seed or None) from a results.json or schedule.json."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise HarnessError(f"{path}: not JSON: {e}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a schedule or a run's results")
    sched = data.get("schedule", data)
    try:
        schedule = FaultSchedule.from_dict(sched)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise HarnessError(f"{path}: not a schedule: {e}") from None
    raw_config = data.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    raw_seed = data.get("seed")
    seed = raw_seed if isinstance(raw_seed, int) else None
    return schedule, config, seed


def _check_supported(cfg: RunConfig) -> None:
    """Refuse, in one line, a workload the system does not have, before the run builds the
    system with that workload's own options (which it may not even accept)."""
    from harness.systems import get_system
    from harness.workloads import WORKLOADS

    if cfg.workload not in WORKLOADS:
        raise HarnessError(f"unknown workload {cfg.workload!r}; known: {', '.join(WORKLOADS)}")
    options = {**cfg.system_options, **({"bug": cfg.bug} if cfg.bug else {})}
    system = get_system(cfg.system, **options)
    if cfg.workload not in system.workloads:
        raise HarnessError(f"{cfg.system} has no {cfg.workload} workload; it has: "
                           f"{', '.join(system.workloads)}")


def run_command(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    kinds = tuple(k for k in args.nemesis.split(",") if k and k != "none")
    for k in kinds:
        if k not in registry.names():
            raise HarnessError(f"unknown fault {k!r}; known: {', '.join(registry.names())}")
    bad_rate = args.rate_hz is not None and not args.rate_hz >= 0
    if (not args.time_limit_s > 0 or args.concurrency < 1 or bad_rate or args.nodes < 1
            or not args.check_time_limit_s > 0):
        raise HarnessError("--time-limit, --check-time-limit, --concurrency and --nodes must "
                           "be positive, --rate non-negative")
    cfg = RunConfig(system=args.system, workload=args.workload, nemesis=kinds,
                    time_limit_s=args.time_limit_s, concurrency=args.concurrency,
                    rate_hz=args.rate_hz, backend=args.backend, nodes=args.nodes,
                    seed=args.seed, bug=args.bug, test=args.test,
                    reports_dir=Path(args.reports), toxiproxy_url=args.toxiproxy_url)
    cfg.through_lb = not args.pin_clients
    if args.retries < 0:
        raise HarnessError("--retries must be 0 or more")
    cfg.retries = args.retries
    if not 0.0 <= args.resend_rate <= 1.0:
        raise HarnessError("--resend-rate must be between 0 and 1")
    cfg.resend_rate = args.resend_rate
    if not args.hostile_rate >= 0:
        raise HarnessError("--hostile-rate must be 0 or more")
    cfg.hostile_rate_hz = args.hostile_rate
    cfg.check_time_limit_s = args.check_time_limit_s
    cfg.system_options = parse_options(list(args.options or []))
    if args.replay:
        schedule, stored, stored_seed = _replay(args.replay)
        cfg.schedule = schedule
        if stored:  # a results.json: run the same configuration again
            for key in ("system", "workload", "time_limit_s", "concurrency", "rate_hz",
                        "nodes", "bug", "through_lb", "op_timeout_s", "retries", "resend_rate",
                        "hostile_rate_hz"):
                if key in stored and stored[key] is not None:
                    setattr(cfg, key, stored[key])
            if "resend_rate" not in stored:  # a run from before resends: none then
                cfg.resend_rate = 0.0
            if "hostile_rate_hz" not in stored:  # a run from before malformed requests
                cfg.hostile_rate_hz = 0.0
            cfg.nemesis = tuple(stored.get("nemesis") or cfg.nemesis)
            cfg.workload_options = dict(stored.get("workload_options") or {})
            if not args.options and isinstance(stored.get("system_options"), dict):
                cfg.system_options = dict(stored["system_options"])
        if args.seed is None:
            cfg.seed = stored_seed if stored_seed is not None else schedule.seed
    _check_supported(cfg)
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
