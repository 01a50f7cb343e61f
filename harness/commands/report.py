"""``harness report``: rebuild the HTML report of run folders, and their reports' index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError

__all__ = ["report_command"]


def _reports_root(run_dir: Path) -> Path:
    """A run folder is ``<reports>/<test>/<stamp>``; its index lives in ``<reports>``."""
    return run_dir.resolve().parent.parent


def report_command(args: argparse.Namespace) -> int:
    """Write ``report.html`` in each folder, then each distinct reports root's index.

    A folder that is not a run is a user's mistake: one line, exit 2 (through
    :class:`HarnessError`), after the good folders before it were written.
    """
    from harness.report import write_index, write_report

    roots: list[Path] = []
    for raw in args.paths:
        run_dir = Path(raw)
        if not (run_dir / "history.jsonl").is_file():
            raise HarnessError(f"{raw}: not a run folder (no history.jsonl)")
        out = write_report(run_dir)
        sys.stdout.write(f"{out}\n")
        root = _reports_root(run_dir)
        if root not in roots:
            roots.append(root)
    for root in roots:
        sys.stdout.write(f"{write_index(root)}\n")
    return 0
