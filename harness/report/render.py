"""Render a run folder into one self-contained ``report.html``.

Reading the folder (:func:`load_run`) and writing the page are the only
I/O; :func:`report_context` assembles what :mod:`harness.report.data`,
:mod:`~harness.report.timeline` and :mod:`~harness.report.logs` compute,
and the Jinja2 template draws it. Nothing is fetched when the page opens:
CSS, script, plots (SVG) and data are all inline, so a report mailed or
archived years later still opens as it did.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.history import History
from harness.report import clock, data, faults, findings, logs, plots, timeline

__all__ = ["RunFiles", "load_run", "render_report", "report_context", "write_report"]

TEMPLATES = Path(__file__).parent / "templates"
LATENCY_POINTS_MAX = 6000
TIMELINE_PAGE_CALLS = 500
TRAIL_ITEMS_MAX = 100
LOG_WINDOWS_MAX = 8
LOG_MARGIN_S = 1.0


@dataclass
class RunFiles:
    """What a run folder holds, read once; ``results`` is empty when the run never finished."""

    run_dir: Path
    history: History
    results: dict[str, Any]
    lb_events: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    """The fault schedule: ``results.json``'s, else ``schedule.json`` (written before the
    run began, so a killed run has it too)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise HarnessError(f"{path}: not JSON: {e}") from None


def load_run(run_dir: Path) -> RunFiles:
    """Read a run folder; a folder that is not a run raises :class:`HarnessError`."""
    from harness.formats import read_history

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: not a folder")
    if not (run_dir / "history.jsonl").exists():
        raise HarnessError(f"{run_dir}: not a run folder (no history.jsonl)")
    history = read_history(run_dir / "history.jsonl", "jsonl")
    results: dict[str, Any] = {}
    if (run_dir / "results.json").exists():
        loaded = _read_json(run_dir / "results.json")
        if not isinstance(loaded, dict):
            raise HarnessError(f"{run_dir / 'results.json'}: not a results object")
        results = loaded
    lb: list[dict[str, Any]] = []
    if (run_dir / "lb.jsonl").exists():
        for line in (run_dir / "lb.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line of a killed run
            if isinstance(rec, dict):
                lb.append(rec)
    texts: dict[str, str] = {}
    log_dir = run_dir / "logs"
    if log_dir.is_dir():
        for p in sorted(log_dir.glob("*.log"), key=lambda p: (p.stem == "haproxy", p.name)):
            texts[p.name] = p.read_text(encoding="utf-8", errors="replace")
    schedule = results.get("schedule")
    if not isinstance(schedule, dict) and (run_dir / "schedule.json").exists():
        try:
            schedule = _read_json(run_dir / "schedule.json")
        except HarnessError:  # only the fault table's wording needs it
            schedule = None
    return RunFiles(run_dir, history, results, lb, texts,
                    schedule if isinstance(schedule, dict) else {})


# --------------------------------------------------------------------------- context


def replay_command(results: Mapping[str, Any], run_dir: Path) -> str:
    """The ``harness run`` command that repeats this run's configuration and schedule."""
    cfg = results.get("config") or {}
    args = ["harness", "run"]
    for opt, key in (("--system", "system"), ("--workload", "workload"),
                     ("--time-limit", "time_limit_s"), ("--concurrency", "concurrency"),
                     ("--rate", "rate_hz"), ("--backend", "backend"), ("--nodes", "nodes"),
                     ("--bug", "bug"), ("--test", "test")):
        if cfg.get(key) is not None:
            args += [opt, str(cfg[key])]
    nemesis = cfg.get("nemesis")
    if nemesis is not None:
        args += ["--nemesis", ",".join(nemesis) or "none"]
    seed = results.get("seed", cfg.get("seed"))
    if seed is not None:
        args += ["--seed", str(seed)]
    args += ["--replay", str(run_dir / "results.json")]
    return shlex.join(args)


def _verdict(valid: Any) -> str:
    if valid is True:
        return "valid"
    return "invalid" if valid is False else "unknown"


def _checker_rows(results: Mapping[str, Any]) -> list[dict[str, str]]:
    from harness.analysis import summarize
    from harness.checker.result import Result

    rows = []
    for name, r in (results.get("results") or {}).items():
        if not isinstance(r, Mapping):
            continue
        valid = r.get("valid")
        verdict = _verdict(valid)
        details = {k: v for k, v in r.items() if k not in ("valid", "checker", "error")}
        try:
            why = summarize(Result(valid if valid in (True, False) else "unknown",
                                   str(r.get("checker", name)), details, r.get("error")))
        except Exception:  # a summary is a courtesy; a strange result must not stop the report
            why = ""
        rows.append({"name": str(name), "verdict": verdict, "why": why})
    return rows


def _settle_line(results: Mapping[str, Any]) -> str:
    """How the final phase waited for the backlog, when a queue checker recorded it."""
    from harness.report.data import settle_text

    q = (results.get("results") or {}).get("queue")
    settle = q.get("settle") if isinstance(q, Mapping) else None
    if not isinstance(settle, Mapping):
        return ""
    try:
        text = settle_text(settle)
    except (TypeError, ValueError):  # a hand-edited results.json: say nothing rather than fail
        return ""
    return text[0].upper() + text[1:] + "."


def _model(result: Mapping[str, Any]) -> Any:
    from harness.checker.models import get_model

    name = result.get("model")
    if not isinstance(name, str):
        return None
    try:
        return get_model(name)
    except Exception:  # an unknown or user model: the layout falls back to the prefix alone
        return None


def report_context(run: RunFiles) -> dict[str, Any]:
    """Everything the template draws, from one run's files."""
    h = run.history
    res = run.results
    checker_results: Mapping[str, Any] = res.get("results") or {}
    end_ns = data.history_end_ns(h)
    axis = data.time_axis(h)
    intervals = data.fault_intervals(h)
    params = faults.schedule_params(h, run.schedule)
    cfg = res.get("config") or {}
    concurrency = cfg.get("concurrency")

    lin = checker_results.get("linearizable")
    layouts: list[data.CounterexampleLayout] = []
    if isinstance(lin, Mapping) and lin.get("valid") is False:
        # every failing partition the checker decided (the first one at least)
        cxs = lin.get("counterexamples") or [lin.get("counterexample")]
        for cx in cxs:
            one = data.counterexample_layout(h, {**lin, "counterexample": cx}, model=_model(lin))
            if one is not None:
                layouts.append(one)
    layout = layouts[0] if layouts else None
    trails = data.item_trails(h, checker_results, intervals, max_items=TRAIL_ITEMS_MAX)

    series = data.latency_series(h)
    shown = data.downsample(series, max_points=LATENCY_POINTS_MAX)
    quantiles = data.latency_quantiles(series)
    thr = data.throughput_series(h)

    cols = timeline.timeline_columns(
        h, concurrency=concurrency if isinstance(concurrency, int) else None)
    pages = timeline.paginate(cols, per_page=TIMELINE_PAGE_CALLS, end_us=axis.hi_ns // 1000)
    lb = timeline.lb_lanes(run.lb_events, end_ns=end_ns)
    nemesis_marks = [{"t": t // 1000, "f": f, "i": i, "v": text}
                     for t, i, f, text in faults.marks(h, intervals, params)]
    tl = {
        "cols": cols.to_json(),
        "pages": [[p.first, p.last, p.lo_us, p.hi_us] for p in pages],
        "faults": timeline.faults_json(intervals, axis.hi_ns),
        "marks": nemesis_marks,
        "lb": {s: [[g.start_ns // 1000, g.end_ns // 1000, g.status, g.check] for g in segs]
               for s, segs in lb.items()},
        "end": end_ns // 1000,
    }

    lanes = clock.clock_lanes(h, end_ns=end_ns)

    started = res.get("started")
    windows = [w for lay in layouts for w in _anomaly_windows(lay, [])]
    windows += _anomaly_windows(None, trails)
    excerpts = _log_excerpts(run.logs, windows, started)

    return {
        "title": str(res.get("test") or run.run_dir.parent.name),
        "run_dir": str(run.run_dir),
        "verdict": _verdict(res.get("valid")) if res else "unknown",
        "finished": bool(res),
        "error": res.get("error"),
        "config": cfg,
        **known_facts(res, run.schedule, h, run.run_dir.name),
        "op_count": len(h),
        "counts": res.get("counts") or completion_counts(h),
        "replay": replay_command(res, run.run_dir) if res else None,
        "checkers": _checker_rows(res),
        "settle": _settle_line(res),
        "linearizable": lin if isinstance(lin, Mapping) else None,
        "layout": layout,
        "layouts": [{"layout": lay, "svg": counterexample_svg(lay), "rows": _prefix_rows(lay)}
                    for lay in layouts],
        "trails": trails,
        "convergence": data.convergence_view(checker_results.get("convergence")),
        "availability": findings.availability_view(checker_results.get("availability")),
        "idempotency": findings.idempotency_view(checker_results.get("idempotency")),
        "robustness": findings.robustness_view(checker_results.get("robustness")),
        "leadership": findings.leadership_view(checker_results.get("leadership")),
        "introspection": findings.introspection_view(checker_results.get("introspection")),
        "resources": findings.resources_view(checker_results.get("resources")),
        "faults": faults.fault_rows(intervals, faults.nemesis_events(h), params, end_ns),
        "clock_svg": clock.clock_svg(lanes, axis=axis) if lanes else "",
        "clock_drift": clock.drift_sentence(lanes) if lanes else "",
        "setup_s": axis.setup_ns / 1e9,
        "latency_svg": plots.latency_svg(shown, intervals, axis=axis, total=len(series.t_s)),
        "throughput_svg": plots.throughput_svg(thr, intervals, axis=axis),
        "quantiles_svg": plots.quantiles_svg(quantiles) if quantiles else "",
        "quantiles": quantiles,
        "timeline_b64": _pack(tl),
        "timeline_calls": len(cols),
        "timeline_pages": len(pages),
        "timeline_lanes": len(cols.lanes),
        "timeline_processes": len(set(cols.process)),
        "lb_servers": sorted(lb),
        "excerpts": excerpts,
        "log_files": sorted(run.logs, key=lambda n: (n == "haproxy.log", n)),
        "files": [n for n in ("history.jsonl", "results.json", "schedule.json", "lb.jsonl")
                  if (run.run_dir / n).exists()],
        "ms": _ms,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def known_facts(results: Mapping[str, Any], schedule: Mapping[str, Any], history: History,
                folder: str) -> dict[str, Any]:
    """Start, seed, nemesis and duration for the summary, from the results when the run
    finished, else from what a killed run left: its folder's name (the start, to the
    second), ``schedule.json`` (the faults and the seed) and its history (how long it ran).
    """
    from harness.report.index import folder_stamp

    cfg = results.get("config") or {}
    started = results.get("started")
    kinds = sorted({str(f.get("kind")) for f in schedule.get("faults") or []
                    if isinstance(f, Mapping)}) if isinstance(schedule, Mapping) else []
    if results:
        nemesis = list(cfg.get("nemesis") or []) or ["none"]
        return {"seed": results.get("seed", cfg.get("seed")), "started": _date(started),
                "duration_s": results.get("duration_s"), "duration_bound": False,
                "nemesis": nemesis}
    stamp = folder_stamp(folder)
    return {"seed": schedule.get("seed") if isinstance(schedule, Mapping) else None,
            "started": _date(stamp) + " (from the folder name)" if stamp is not None else "?",
            "duration_s": data.history_end_ns(history) / 1e9 if len(history) else None,
            "duration_bound": True,
            "nemesis": kinds or (["none"] if schedule else ["?"])}


def completion_counts(history: History) -> dict[str, int]:
    """Client completions by type, as ``results.json``'s ``counts`` (for a killed run)."""
    counts: dict[str, int] = {}
    for op in history.client_ops():
        if not op.is_invoke:
            counts[op.type.value] = counts.get(op.type.value, 0) + 1
    return dict(sorted(counts.items()))


def _ms(ns: int | None) -> str:
    return "–" if ns is None else f"{ns / 1e6:,.1f}"


def _date(started: Any) -> str:
    if not isinstance(started, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))


def _pack(obj: Any) -> str:
    """Gzip and base64 the timeline's data: a 100k-op history's columns shrink about 5x,
    and the page unpacks them with the browser's own ``DecompressionStream``."""
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def _prefix_rows(layout: data.CounterexampleLayout) -> list[data.CounterexampleBar]:
    rows = [b for b in layout.bars if b.order is not None or b.unplaced]
    return sorted(rows, key=lambda b: (b.order is None, b.order or 0, b.index))


@dataclass(frozen=True)
class _Window:
    title: str
    anchor: str
    lo_ns: int
    hi_ns: int


def _anomaly_windows(layout: data.CounterexampleLayout | None,
                     trails: Sequence[data.TrailGroup]) -> list[_Window]:
    out = []
    if layout is not None:
        out.append(_Window(f"linearizability: partition {layout.key}", "linearizability",
                           layout.lo_ns, layout.hi_ns))
    for g in trails:
        if not g.anomaly:
            continue
        for t in g.trails:
            if t.steps:
                out.append(_Window(f"{g.name}: item {t.item}", f"item-{g.name}-{t.item}",
                                   t.lo_ns, t.hi_ns))
    return out


def _log_excerpts(texts: Mapping[str, str], windows: Sequence[_Window], started: Any
                  ) -> dict[str, Any]:
    if not isinstance(started, int | float) or not texts or not windows:
        return {"windows": [], "total_windows": len(windows), "aligned": isinstance(
            started, int | float)}
    parsed = {name: logs.parse_log(text) for name, text in texts.items()}
    out = []
    for w in windows[:LOG_WINDOWS_MAX]:
        lo = started + w.lo_ns / 1e9 - LOG_MARGIN_S
        hi = started + w.hi_ns / 1e9 + LOG_MARGIN_S
        per_log = []
        for name, lines in parsed.items():
            ex = logs.excerpt(lines, lo, hi)
            per_log.append({"name": name, "excerpt": ex})
        out.append({"window": w, "logs": per_log,
                    "lo_s": w.lo_ns / 1e9 - LOG_MARGIN_S, "hi_s": w.hi_ns / 1e9 + LOG_MARGIN_S})
    return {"windows": out, "total_windows": len(windows), "aligned": True}


# --------------------------------------------------------------------------- the counterexample


def counterexample_svg(layout: data.CounterexampleLayout, *, width_min: int = 1000) -> str:
    """Porcupine-style picture: a lane per process, a bar per op from invoke to return.

    As in Porcupine, the x axis is the *order* of events, not the clock: only
    which op returned before which was invoked matters for linearizability,
    and a 4 ms op beside a 200 ms gap would otherwise be a speck. Each
    event's clock time is written above it. Prefix ops carry their place in
    the linearization; ops that cannot be placed are red; open (``info``)
    ops fade out to the right. Each bar's ``<title>`` is its full record, so
    hovering shows it without any script.
    """
    left, right, top, lane_h, bar_h = 90, 40, 40, 34, 22
    lanes = {p: i for i, p in enumerate(layout.lanes)}
    times = sorted({b.start_ns for b in layout.bars}
                   | {b.end_ns for b in layout.bars if b.end_ns is not None})
    rank = {t: i for i, t in enumerate(times)}
    slot = max(64.0, (width_min - left - right) / max(1, len(times)))
    width = int(left + right + slot * len(times))

    def x(t: int) -> float:
        return left + slot * (rank[t] + 0.5)

    height = top + lane_h * len(lanes) + 10
    e = html.escape
    out = [f'<svg class="cx" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="counterexample of partition {e(layout.key)}">',
           '<defs><linearGradient id="cx-fade" x1="0" x2="1"><stop offset="0" '
           'stop-color="#e6a23c" stop-opacity=".8"/><stop offset="1" stop-color="#e6a23c" '
           'stop-opacity="0"/></linearGradient></defs>']
    every = max(1, int(60 // slot) + 1)
    for t, i in rank.items():
        xt = x(t)
        out.append(f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="{top - 6}" y2="{height - 6}" '
                   'class="grid"/>')
        if i % every == 0:
            out.append(f'<text x="{xt:.1f}" y="{top - 10}" class="tick">{t / 1e6:,.1f}</text>')
    labels = [f'<g class="lanes"><rect x="0" y="{top - 4}" width="{left - 6}" '
              f'height="{height - top}" fill="#fff" fill-opacity=".92"/>']
    for p, i in lanes.items():
        y = top + i * lane_h
        labels.append(f'<text x="8" y="{y + lane_h / 2 + 4:.1f}" class="lane">process '
                      f'{e(str(p))}</text>')
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y + lane_h}" '
                   f'y2="{y + lane_h}" class="sep"/>')
    labels.append("</g>")
    for b in layout.bars:
        yb = top + lanes[b.process] * lane_h + (lane_h - bar_h) / 2
        x0 = x(b.start_ns) - slot * 0.3
        open_ = b.end_ns is None
        x1 = x(b.end_ns) + slot * 0.3 if b.end_ns is not None else width - 4
        w = max(6.0, x1 - x0)
        cls = "unplaced" if b.unplaced else ("prefix" if b.order is not None else "other")
        fill = ' fill="url(#cx-fade)"' if open_ and not b.unplaced else ""
        label = f"{b.f} {b.value}"
        if b.order is not None:
            label = f"#{b.order} {label}"
        chars = int((w - 6) / 6.7)
        shown = label if len(label) <= chars else (label[: max(0, chars - 1)] + "…"
                                                   if chars > 2 else "")
        tip = [f"op {b.index} · process {b.process} · {b.f} {b.value} → {b.type}",
               f"invoked {_ms(b.start_ns)} ms, "
               + (f"returned {_ms(b.end_ns)} ms" if b.end_ns is not None else "open")]
        if b.order is not None:
            tip.append(f"linearized #{b.order} of the prefix")
        if b.unplaced:
            tip.append(f"cannot be linearized next (state {layout.state})")
        if b.state_after is not None:
            tip.append(f"state after: {b.state_after}")
        tip.append(b.record)
        out.append(f'<g class="op {cls}" id="cx-op-{b.index}" data-index="{b.index}">'
                   f'<title>{e(chr(10).join(tip))}</title>'
                   f'<rect x="{x0:.1f}" y="{yb:.1f}" width="{w:.1f}" height="{bar_h}" '
                   f'rx="3"{fill}/>'
                   f'<text x="{x0 + 4:.1f}" y="{yb + bar_h / 2 + 4:.1f}">{e(shown)}</text></g>')
    out.extend(labels)  # last, so the page script can keep them in view over the bars
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- writing


def render_report(context: Mapping[str, Any]) -> str:
    """The report page for a context from :func:`report_context`."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["asdict"] = asdict
    env.filters["fmt_s"] = lambda v: "?" if v is None else f"{float(v):,.3f}"
    return env.get_template("report.html.j2").render(
        **context,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        js=(TEMPLATES / "report.js").read_text(encoding="utf-8"),
        outcome_colours=plots.OUTCOME_COLOURS,
        fault_colours=plots.FAULT_COLOURS,
    )


def write_report(run_dir: Path) -> Path:
    """Build ``report.html`` in a run folder (replacing any older one); returns its path."""
    run = load_run(Path(run_dir))
    page = render_report(report_context(run))
    out = run.run_dir / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
