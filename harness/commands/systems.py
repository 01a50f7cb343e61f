"""``harness systems``: what can be tested (``harness gc`` is in :mod:`harness.commands.gc`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from harness.systems import installed_systems

__all__ = ["systems_command"]


def systems_command(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title="installed systems (entry points 'harness.systems')")
    for col in ("name", "workloads", "provided by"):
        table.add_column(col)
    for name, ep in sorted(installed_systems().items()):
        try:
            system = ep.load()()
            workloads = ", ".join(system.workloads)
        except Exception as e:
            workloads = f"[red]cannot load: {e}[/]"
        table.add_row(name, workloads, ep.value)
    console.print(table)
    return 0

