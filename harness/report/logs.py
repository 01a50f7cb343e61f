"""Log excerpts around an anomaly: the node and LB lines written while it happened.

Node logs start each line with Python's ``asctime`` (``2026-11-25 09:53:43,653``,
local time); HAProxy's request lines carry ``[25/Nov/2026:09:53:44.556]``;
other systems' logs are read too: ISO 8601 stamps anywhere near the start of a
line (etcd's JSON lines: ``"ts":"2026-11-30T10:40:01.123Z"``, with a zone or
in local time) and Redis's ``1:M 30 Nov 2026 10:40:01.123``.
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
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
                  r"(Z|[+-]\d{2}:?\d{2})?")
_REDIS = re.compile(r"^\d+:[XCSM] (\d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2})\.(\d{3})")
_HAPROXY = re.compile(r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2})\.(\d{3})\]")


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line (1-based ``lineno``) and the wall time it was written (``None``: unknown)."""

    lineno: int
    wall_s: float | None
    text: str


#: stamps in local time with milliseconds: (pattern, strptime format of group 1)
_LOCAL_STAMPS = ((_ASCTIME, "%Y-%m-%d %H:%M:%S"), (_HAPROXY, "%d/%b/%Y:%H:%M:%S"),
                 (_REDIS, "%d %b %Y %H:%M:%S"))


def _stamp(line: str) -> float | None:
    head = line[:80]
    for pattern, fmt in _LOCAL_STAMPS:
        m = pattern.search(head)
        if m:
            return datetime.strptime(m.group(1), fmt).timestamp() + int(m.group(2)) / 1000
    m = _ISO.search(line[:120])
    if m:
        zone = m.group(4) or ""
        if zone == "Z":
            zone = "+00:00"
        try:
            dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{zone}")
        except ValueError:
            return None
        frac = m.group(3) or ""
        return dt.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
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
