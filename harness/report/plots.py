"""Latency and throughput plots, drawn by matplotlib and inlined as SVG text.

matplotlib is imported here only, with the SVG backend on a bare
``Figure`` (no pyplot): no display, no global figure registry, and the same
output for the same data. Fonts are left as text (``svg.fonttype: none``),
which keeps the SVG small and uses the browser's fonts, not remote ones.
Each figure's element ids get a prefix, because several figures share one
HTML page and SVG ids are page-wide.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from harness.report.data import (
    FaultInterval,
    LatencySeries,
    QuantileRow,
    ThroughputSeries,
    TimeAxis,
)

__all__ = ["FAULT_COLOURS", "OUTCOME_COLOURS", "latency_figure", "latency_svg", "quantiles_svg",
           "throughput_figure", "throughput_svg"]

OUTCOME_COLOURS = {"ok": "#3a9e5a", "fail": "#d9534f", "info": "#e6a23c"}
FAULT_COLOURS = {"partition": "#7e57c2", "kill": "#c62828", "pause": "#1565c0",
                 "latency": "#f9a825", "stall": "#6d4c41"}
_RC: Any = {  # typed Any: matplotlib types the keys as a Literal of every rc name
       "svg.fonttype": "none", "svg.hashsalt": "harness-report", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}


def _figure(width_in: float = 10.0, height_in: float = 3.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _svg(fig: Any, prefix: str) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None,
                                                      "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: this goes inline
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    if ids:
        pat = re.compile(r'(\bid="|#)(' + "|".join(re.escape(i) for i in
                                                     sorted(ids, key=len, reverse=True))
                         + r')\b')
        text = pat.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text


def _shade(ax: Any, intervals: Sequence[FaultInterval], axis: TimeAxis) -> None:
    seen: set[str] = set()
    for i in intervals:
        colour = FAULT_COLOURS.get(i.kind, "#888888")
        lo = max(i.start_ns, axis.lo_ns) / 1e9
        hi = i.end_ns / 1e9 if i.end_ns is not None else axis.hi_s
        if hi < lo:  # over before the first operation: outside the axis
            continue
        ax.axvspan(lo, hi, color=colour, alpha=0.13, lw=0,
                   label=None if i.kind in seen else f"{i.kind} (fault)")
        seen.add(i.kind)


def _time_x(ax: Any, axis: TimeAxis) -> None:
    """The x axis from the first client operation; the setup before it is said, not drawn."""
    ax.set_xlim(axis.lo_s, max(axis.hi_s, axis.lo_s + 1e-3))
    setup = (f"; the first {axis.setup_ns / 1e9:.1f} s were cluster setup, not drawn"
             if axis.setup_ns >= 1e8 else "")
    ax.set_xlabel(f"time since the run's start (s){setup}")


def latency_figure(series: LatencySeries, intervals: Sequence[FaultInterval], *,
                   axis: TimeAxis, total: int) -> Any:
    """The latency plot as a matplotlib ``Figure`` (see :func:`latency_svg`)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        _shade(ax, intervals, axis)
        for outcome in ("ok", "fail", "info"):
            xs = [t for t, o in zip(series.t_s, series.outcome, strict=True) if o == outcome]
            ys = [max(v, 1e-3) for v, o in zip(series.latency_ms, series.outcome, strict=True)
                  if o == outcome]
            if xs:
                ax.scatter(xs, ys, s=6, marker="o", linewidths=0, alpha=0.7,
                           color=OUTCOME_COLOURS[outcome], label=f"{outcome} ({len(xs)})")
        ax.set_yscale("log")
        _time_x(ax, axis)
        ax.set_ylabel("latency (ms)")
        shown = len(series.t_s)
        note = "" if shown == total else (f"; {shown} of {total} calls shown: the fastest, "
                                          "median and slowest per time bin and outcome")
        ax.set_title(f"latency of each call{note}", loc="left")
        if ax.get_legend_handles_labels()[0]:  # a run with no calls has nothing to name
            ax.legend(loc="upper right", fontsize=8, markerscale=2, framealpha=0.8)
        ax.grid(True, which="major", alpha=0.25)
        return fig


def latency_svg(series: LatencySeries, intervals: Sequence[FaultInterval], *, axis: TimeAxis,
                total: int, prefix: str = "lat") -> str:
    """Every call's latency over time by outcome, log scale, faults shaded.

    ``series`` may be downsampled; ``total`` (the number of calls before
    that) goes in the title so the reader knows. The x axis is ``axis``:
    from the first client operation, not from the run's start.
    """
    return _svg(latency_figure(series, intervals, axis=axis, total=total), prefix)


def throughput_figure(series: ThroughputSeries, intervals: Sequence[FaultInterval], *,
                      axis: TimeAxis) -> Any:
    """The throughput plot as a matplotlib ``Figure`` (see :func:`throughput_svg`)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(height_in=2.6)
        ax = fig.add_subplot()
        _shade(ax, intervals, axis)
        keys = [k for k in ("ok", "fail", "info") if any(series.per_outcome.get(k, ()))]
        if keys and series.t_s:
            xs = [*series.t_s, series.t_s[-1] + series.bin_s]
            ys = [[*series.per_outcome[k], series.per_outcome[k][-1]] for k in keys]
            ax.stackplot(xs, ys, step="post", colors=[OUTCOME_COLOURS[k] for k in keys],
                         labels=keys, alpha=0.85)
        _time_x(ax, axis)
        ax.set_ylabel("completions / s")
        ax.set_title(f"throughput ({series.bin_s:g} s bins)", loc="left")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        ax.grid(True, alpha=0.25)
        return fig


def throughput_svg(series: ThroughputSeries, intervals: Sequence[FaultInterval], *,
                   axis: TimeAxis, prefix: str = "thr") -> str:
    """Completions per second, stacked by outcome, faults shaded, from the first operation."""
    return _svg(throughput_figure(series, intervals, axis=axis), prefix)


def quantiles_svg(rows: Sequence[QuantileRow], *, prefix: str = "qnt") -> str:
    """Latency quantiles per operation type (all outcomes), one line per ``f``."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width_in=6.0, height_in=2.8)
        ax = fig.add_subplot()
        for row in rows:
            if row.outcome != "all":
                continue
            qs = [q for q, _ in row.quantiles]
            ax.plot(range(len(qs)), [max(v, 1e-3) for _, v in row.quantiles], marker="o",
                    label=f"{row.f} ({row.count})")
        labels = [f"p{q * 100:g}" if q < 1 else "max" for q, _ in (rows[0].quantiles if rows
                                                                     else ())]
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title("latency quantiles per operation", loc="left")
        if rows:
            ax.legend(fontsize=8, framealpha=0.8)
        ax.grid(True, alpha=0.25)
        return _svg(fig, prefix)
