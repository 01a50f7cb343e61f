"""The clock-offset lane: each node's wall-clock offset over the run, from the history.

A clock fault leaves no trace in the client operations: an item expired
early looks like any other expiry. So the report draws, per node, the
offset each ``start-clock`` / ``stop-clock`` record set (a strobe as a band
between its two offsets), on the same axis as the latency plot, and says in
words whether any fault moved a monotonic clock: the reference system's
leases assume the monotonic clocks of all nodes run at about the same rate
(README), so a record whose ``moved`` names ``monotonic`` is where the run
stopped being judged under that assumption.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from harness.history import NEMESIS, History
from harness.report.data import TimeAxis

__all__ = ["ClockLanes", "Segment", "clock_lanes", "clock_svg", "drift_sentence"]


@dataclass(frozen=True, slots=True)
class Segment:
    """From ``start_ns`` to ``end_ns`` a node's offset was ``offset_s`` (a strobe: it
    flipped between 0 and ``offset_s``)."""

    node: str
    start_ns: int
    end_ns: int
    offset_s: float
    strobe: bool


@dataclass(frozen=True, slots=True)
class ClockLanes:
    """Every node's offsets, and the clock faults that moved a monotonic clock."""

    nodes: tuple[str, ...]
    segments: tuple[Segment, ...]
    #: (time of the start record, its value) of each fault whose record says the
    #: monotonic clock moved
    monotonic: tuple[tuple[int, Mapping[str, Any]], ...]
    faults: int


def clock_lanes(history: History, *, end_ns: int) -> ClockLanes | None:
    """The lanes, or None when the run had no clock fault."""
    open_: dict[str, tuple[int, float, bool]] = {}
    segments: list[Segment] = []
    monotonic: list[tuple[int, Mapping[str, Any]]] = []
    nodes: set[str] = set()
    faults = 0

    def close(node: str, at: int) -> None:
        if node in open_:
            t0, off, strobe = open_.pop(node)
            if off != 0.0:
                segments.append(Segment(node, t0, max(at, t0), off, strobe))

    for op in history:
        if op.process != NEMESIS or not isinstance(op.f, str) or not op.f.endswith("-clock"):
            continue
        value = op.value if isinstance(op.value, Mapping) else {}
        if "error" in value:
            continue
        offsets = value.get("offsets")
        if not isinstance(offsets, Mapping):
            continue
        if op.f == "start-clock":
            faults += 1
            if "monotonic" in (value.get("moved") or []):
                monotonic.append((op.time, value))
        for node, off in offsets.items():
            node = str(node)
            nodes.add(node)
            close(node, op.time)
            try:
                offset = float(off)
            except (TypeError, ValueError):
                continue
            open_[node] = (op.time, offset, value.get("mode") == "strobe"
                           and op.f == "start-clock")
    for node in list(open_):
        close(node, end_ns)
    if not faults:
        return None
    return ClockLanes(tuple(sorted(nodes)), tuple(segments), tuple(monotonic), faults)


def drift_sentence(lanes: ClockLanes) -> str:
    """Whether the leases' bounded-drift assumption held, in words."""
    if not lanes.monotonic:
        return (f"{lanes.faults} clock fault{'s' if lanes.faults != 1 else ''} moved wall "
                "clocks only; no monotonic clock moved, so the leases' bounded-drift "
                "assumption (monotonic clocks run at about the same rate) held throughout.")
    when = ", ".join(f"{t / 1e9:.1f} s" for t, _ in lanes.monotonic)
    return (f"A clock fault moved a monotonic clock (at {when}): from then until it was "
            "reset the leases' bounded-drift assumption did not hold, and a lease "
            "violation there is the assumption's failure, not necessarily the system's.")


def clock_svg(lanes: ClockLanes, *, axis: TimeAxis) -> str:
    """One row per node: a bar above the midline for a forward offset, below for a
    backward one, its height growing with the offset's size (log scale), hatched for
    a strobe; each bar's tooltip gives the offset and when."""
    left, right, top, row_h = 90, 40, 18, 36
    width = 900
    height = top + row_h * len(lanes.nodes) + 22
    span = max(axis.hi_ns - axis.lo_ns, 1)
    biggest = max((abs(s.offset_s) for s in lanes.segments), default=1.0) or 1.0

    def x(t: int) -> float:
        return left + (width - left - right) * (min(max(t, axis.lo_ns), axis.hi_ns)
                                                - axis.lo_ns) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="clock-lane" width="{width}" '
           f'height="{height}" role="img" aria-label="clock offset of each node">',
           '<defs><pattern id="strobe" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="3" height="6" fill="#b45309"/>'
           '</pattern></defs>']
    row = {n: i for i, n in enumerate(lanes.nodes)}
    for n, i in row.items():
        mid = top + i * row_h + row_h / 2
        if i % 2 == 0:  # banded rows: a bar below one node's line is not read as the next's
            out.append(f'<rect x="0" y="{top + i * row_h}" width="{width - right}" '
                       f'height="{row_h}" fill="#f3f4f6"/>')
        out.append(f'<text x="8" y="{mid + 4:.1f}" font-size="12">{escape(n)}</text>')
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{mid:.1f}" y2="{mid:.1f}" '
                   'stroke="#999" stroke-width="0.5"/>')
    for s in lanes.segments:
        mid = top + row[s.node] * row_h + row_h / 2
        # log scale: a 5 s step is still visible beside a 120 s one
        h = (row_h / 2 - 2) * math.log1p(abs(s.offset_s)) / math.log1p(biggest)
        y = mid - h if s.offset_s > 0 else mid
        x0, x1 = x(s.start_ns), x(s.end_ns)
        fill = "url(#strobe)" if s.strobe else ("#2563eb" if s.offset_s > 0 else "#dc2626")
        what = "strobing between 0 and" if s.strobe else "offset"
        title = (f"{s.node}: wall clock {what} {s.offset_s:+g} s, {s.start_ns / 1e9:.2f}"
                 f"–{s.end_ns / 1e9:.2f} s")
        out.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{max(h, 1):.1f}" fill="{fill}"><title>{escape(title)}</title>'
                   '</rect>')
    for t, _ in lanes.monotonic:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" '
                   f'y2="{height - 22}" stroke="#000" stroke-dasharray="3 2"/>')
    base = height - 6
    out.append(f'<text x="{left}" y="{base}" font-size="11">{axis.lo_s:.1f} s</text>')
    out.append(f'<text x="{width - right}" y="{base}" font-size="11" text-anchor="end">'
               f'{axis.hi_s:.1f} s · above the line: ahead, below: behind (log scale)</text>')
    out.append("</svg>")
    return "".join(out)
