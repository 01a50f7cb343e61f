"""``reports/index.html``: every run under a reports folder, newest first.

The index reads only each run's ``results.json`` (small), never a history,
so rebuilding it after every run stays cheap however many runs there are.
A folder whose results cannot be read is listed as such rather than
skipped: a run that vanished from the index would be a silent loss.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IndexRow", "index_rows", "scan_runs", "write_index"]


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One run as the index lists it; ``link`` is relative to the reports folder."""

    test: str
    system: str
    workload: str
    nemesis: str
    started: float | None
    duration_s: float | None
    op_count: int | None
    verdict: str
    link: str
    folder: str
    bug: str
    seed: Any
    problem: str = ""

    @property
    def date(self) -> str:
        if self.started is None:
            return "?"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))


def scan_runs(reports_dir: Path) -> dict[str, Mapping[str, Any] | str]:
    """Each run folder (relative path) with its parsed ``results.json``, or why it is unreadable.

    A run folder is ``<test>/<stamp>/`` holding ``history.jsonl`` or
    ``results.json``; the ``latest`` links are skipped so no run is listed twice.
    """
    out: dict[str, Mapping[str, Any] | str] = {}
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return out
    for test_dir in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        for run in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            res = run / "results.json"
            if not res.exists():
                if (run / "history.jsonl").exists():
                    out[os.path.relpath(run, reports_dir)] = "no results.json: unfinished run"
                continue
            try:
                data = json.loads(res.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                out[os.path.relpath(run, reports_dir)] = f"unreadable results.json: {e}"
                continue
            out[os.path.relpath(run, reports_dir)] = (
                data if isinstance(data, dict) else "results.json is not an object")
    return out


def index_rows(runs: Mapping[str, Mapping[str, Any] | str],
               has_report: Mapping[str, bool] | None = None) -> list[IndexRow]:
    """Rows for the index, newest first (unreadable runs last, by folder name)."""
    rows = []
    for folder, res in runs.items():
        test = folder.split(os.sep)[0]
        link = (f"{folder}/report.html" if (has_report or {}).get(folder, True)
                else f"{folder}/").replace(os.sep, "/")
        if isinstance(res, str):
            rows.append(IndexRow(test, "?", "?", "?", None, None, None, "unknown", link,
                                 folder, "", None, res))
            continue
        cfg = res.get("config") or {}
        valid = res.get("valid")
        verdict = {True: "valid", False: "invalid"}.get(valid, "unknown") if isinstance(
            valid, bool) else "unknown"
        started = res.get("started")
        rows.append(IndexRow(
            test=str(res.get("test") or test),
            system=str(cfg.get("system", "?")),
            workload=str(cfg.get("workload", "?")),
            nemesis=",".join(cfg.get("nemesis") or []) or "none",
            started=float(started) if isinstance(started, int | float) else None,
            duration_s=res.get("duration_s"),
            op_count=res.get("op_count"),
            verdict=verdict,
            link=link,
            folder=folder.replace(os.sep, "/"),
            bug=str(cfg.get("bug") or ""),
            seed=res.get("seed"),
            problem=str(res.get("error") or ""),
        ))
    rows.sort(key=lambda r: (r.started is None, -(r.started or 0), r.folder))
    return rows


def write_index(reports_dir: Path) -> Path:
    """Rebuild ``index.html`` in a reports folder from the runs it holds; returns its path."""
    import jinja2

    from harness.report.render import TEMPLATES

    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    runs = scan_runs(reports_dir)
    has = {f: (reports_dir / f / "report.html").exists() for f in runs}
    rows = index_rows(runs, has)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("valid", "invalid", "unknown")}
    page = env.get_template("index.html.j2").render(
        rows=rows, counts=counts, reports_dir=str(reports_dir.resolve()),
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"))
    out = reports_dir / "index.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
