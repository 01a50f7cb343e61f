"""``reports/index.html``: every run under a reports folder, newest first.

The index reads each run's ``results.json`` (small), never a whole history,
so rebuilding it after every run stays cheap however many runs there are.
A folder whose results cannot be read is listed as such rather than
skipped: a run that vanished from the index would be a silent loss. Such a
run, typically one killed before it could write its results, is still
placed by when it started (its folder's name) and shows how far it got (the
last record of its history, read from the file's end).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IndexRow", "RunScan", "folder_stamp", "index_rows", "last_record", "scan_runs",
           "write_index"]

TAIL_BYTES_MAX = 8 << 20
"""The most of a history's end read to find its last record (a replica read can be long)."""


@dataclass(frozen=True, slots=True)
class RunScan:
    """What the index knows of one run folder, read cheaply: never a whole history.

    ``results`` is ``None`` when ``results.json`` is missing or unreadable
    (``problem`` says which). A run killed before it wrote its results still
    has its folder's name (its start, to the second), its history's last
    record (how far it got) and mtime, and ``schedule.json`` (written
    before the run began: the faults it was to inject and the seed).
    """

    results: Mapping[str, Any] | None
    problem: str = ""
    stamp: float | None = None
    history_mtime: float | None = None
    last_op: Mapping[str, Any] | None = None
    schedule: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One run as the index lists it; ``link`` is relative to the reports folder.

    ``started_from`` says where ``started`` came from: ``results`` (exact),
    ``folder`` (the run folder's name, to the second) or ``history`` (its last
    write, a bound: the run began earlier). ``finished`` is false for a run
    with no readable results; its duration and op count are then as far as
    its history got.
    """

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
    started_from: str = "results"
    finished: bool = True

    @property
    def date(self) -> str:
        if self.started is None:
            return "?"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))


def folder_stamp(name: str) -> float | None:
    """The start time a run folder's name holds (``20261130T163802``, maybe ``-2``), local
    time as :func:`harness.store.new_run_dir` writes it; ``None`` for any other name."""
    try:
        return time.mktime(time.strptime(name[:15], "%Y%m%dT%H%M%S"))
    except (ValueError, OverflowError):
        return None


def last_record(path: Path) -> Mapping[str, Any] | None:
    """The last whole JSON record of a JSON-lines file, reading only its end.

    A killed run's history may end in a torn line; it is skipped. Reads a
    growing tail (up to :data:`TAIL_BYTES_MAX`) until a whole line is in it.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            want = 64 << 10
            while True:
                start = max(0, size - want)
                fh.seek(start)
                lines = fh.read(size - start).split(b"\n")
                if start > 0:
                    lines = lines[1:]  # the first may be the middle of a line
                for line in reversed(lines):
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict):
                        return rec
                if start == 0 or want >= TAIL_BYTES_MAX:
                    return None
                want *= 4
    except OSError:
        return None


def _read_object(path: Path) -> tuple[Mapping[str, Any] | None, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"unreadable {path.name}: {e}"
    if not isinstance(data, dict):
        return None, f"{path.name} is not an object"
    return data, ""


def scan_runs(reports_dir: Path) -> dict[str, RunScan]:
    """Each run folder (relative path) with what can be cheaply known of it.

    A run folder is ``<test>/<stamp>/`` holding ``history.jsonl`` or
    ``results.json``; the ``latest`` links are skipped so no run is listed twice.
    """
    out: dict[str, RunScan] = {}
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return out
    for test_dir in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        for run in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            res, hist = run / "results.json", run / "history.jsonl"
            if not res.exists() and not hist.exists():
                continue
            key = os.path.relpath(run, reports_dir)
            stamp = folder_stamp(run.name)
            if res.exists():
                data, problem = _read_object(res)
                if data is not None:
                    out[key] = RunScan(data, stamp=stamp)
                    continue
            else:
                problem = "no results.json: the run did not finish (killed?)"
            schedule = _read_object(run / "schedule.json")[0] if (
                run / "schedule.json").exists() else None
            mtime = hist.stat().st_mtime if hist.exists() else None
            out[key] = RunScan(None, problem, stamp, mtime,
                               last_record(hist) if hist.exists() else None, schedule)
    return out


def index_rows(runs: Mapping[str, RunScan],
               has_report: Mapping[str, bool] | None = None) -> list[IndexRow]:
    """Rows for the index, newest first by start time, finished or not.

    The start is ``results.json``'s; a run without one (killed, or its
    results unreadable) is placed by its folder's name, else by its
    history's last write. Runs whose start is unknown come last, by folder.
    """
    rows = []
    for folder, scan in runs.items():
        test = folder.split(os.sep)[0]
        link = (f"{folder}/report.html" if (has_report or {}).get(folder, True)
                else f"{folder}/").replace(os.sep, "/")
        res = scan.results
        if res is None:
            rows.append(_unfinished_row(test, folder, link, scan))
            continue
        cfg = res.get("config") or {}
        valid = res.get("valid")
        verdict = {True: "valid", False: "invalid"}.get(valid, "unknown") if isinstance(
            valid, bool) else "unknown"
        started = res.get("started")
        when, source = ((float(started), "results") if isinstance(started, int | float)
                        else (scan.stamp, "folder"))
        rows.append(IndexRow(
            test=str(res.get("test") or test),
            system=str(cfg.get("system", "?")),
            workload=str(cfg.get("workload", "?")),
            nemesis=",".join(cfg.get("nemesis") or []) or "none",
            started=when,
            duration_s=res.get("duration_s"),
            op_count=res.get("op_count"),
            verdict=verdict,
            link=link,
            folder=folder.replace(os.sep, "/"),
            bug=str(cfg.get("bug") or ""),
            seed=res.get("seed"),
            problem=str(res.get("error") or ""),
            started_from=source,
        ))
    rows.sort(key=lambda r: (r.started is None, -(r.started or 0), r.folder))
    return rows


def _unfinished_row(test: str, folder: str, link: str, scan: RunScan) -> IndexRow:
    """What is known of a run with no readable results: when it began, how far it got."""
    started, source = ((scan.stamp, "folder") if scan.stamp is not None
                       else (scan.history_mtime, "history"))
    last = scan.last_op or {}
    t, i = last.get("time"), last.get("index")
    sched = scan.schedule or {}
    faults = sched.get("faults")
    kinds = sorted({str(f.get("kind")) for f in (faults if isinstance(faults, list) else [])
                    if isinstance(f, Mapping)})
    return IndexRow(
        test=test, system="?", workload="?",
        nemesis=",".join(kinds) if kinds else ("none" if scan.schedule is not None else "?"),
        started=started,
        duration_s=t / 1e9 if isinstance(t, int) else None,
        op_count=i + 1 if isinstance(i, int) else None,
        verdict="unknown", link=link, folder=folder.replace(os.sep, "/"), bug="",
        seed=sched.get("seed"), problem=scan.problem, started_from=source, finished=False)


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
