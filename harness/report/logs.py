"""Log excerpts around an anomaly: the node and LB lines written while it happened.

Node logs start each line with Python's ``asctime`` (``2026-11-25 09:53:43,653``,
local time); HAProxy's request lines carry ``[25/Nov/2026:09:53:44.556]``.
Lines without a stamp (tracebacks, HAProxy's warnings) belong to the last
stamped line before them. The history's clock starts at the run's
``started`` wall time, so an anomaly's window maps onto the logs by adding
that offset; the excerpt widens the window by a margin because the two
clocks are read in different processes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Excerpt", "LogLine", "excerpt", "parse_log"]

_ASCTIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})")
_HAPROXY = re.compile(r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2})\.(\d{3})\]")


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line (1-based ``lineno``) and the wall time it was written (``None``: unknown)."""

    lineno: int
    wall_s: float | None
    text: str


def _stamp(line: str) -> float | None:
    m = _ASCTIME.match(line)
    if m:
        dt = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        return dt.timestamp() + int(m.group(2)) / 1000
    m = _HAPROXY.search(line[:80])
    if m:
        dt = datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S")
        return dt.timestamp() + int(m.group(2)) / 1000
    return None


def parse_log(text: str) -> list[LogLine]:
    """Lines with wall times; unstamped lines inherit the previous stamp (local time zone)."""
    out = []
    last: float | None = None
    for n, line in enumerate(text.splitlines(), start=1):
        t = _stamp(line)
        if t is not None:
            last = t
        out.append(LogLine(n, last, line))
    return out


@dataclass(frozen=True, slots=True)
class Excerpt:
    """The lines of one log inside a window, at most ``max_lines`` of them.

    ``total`` is how many lines fell in the window; when it is larger than
    ``len(lines)`` the rest are in the full log, which the report links to.
    """

    lines: tuple[LogLine, ...]
    total: int

    @property
    def omitted(self) -> int:
        return self.total - len(self.lines)


def excerpt(lines: Sequence[LogLine], lo_wall_s: float, hi_wall_s: float, *,
            max_lines: int = 40) -> Excerpt:
    """Lines stamped within ``[lo_wall_s, hi_wall_s]``, the first ``max_lines`` of them."""
    inside = [ln for ln in lines if ln.wall_s is not None and lo_wall_s <= ln.wall_s <= hi_wall_s]
    return Excerpt(tuple(inside[:max_lines]), len(inside))
