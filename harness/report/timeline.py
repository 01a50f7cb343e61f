"""The run's timeline as data: op bars per client thread, pages of them, and the LB's view.

A 100,000-op history cannot be one SVG (the browser would take seconds to lay
it out), so the timeline is cut into pages of consecutive calls, each page a
time window the page's script draws on demand. Every call is on exactly one
page: nothing is dropped to make the picture fit.

A row is a client thread (a worker), not a process: after every
indeterminate outcome the worker goes on as a new process (Jepsen's rule,
``worker + k * concurrency``; each resend of a retried operation is a new
process too), so rows per process were 105 to 179 in a 30 s run, most of them
holding one or two bars. The process id stays on each call (its tooltip).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import Call, History
from harness.report.data import FaultInterval, compact, retry_of

__all__ = [
    "FINAL_LANE",
    "FINAL_PROCESS_MIN",
    "LbSegment",
    "Page",
    "TimelineColumns",
    "infer_concurrency",
    "lane_of",
    "lb_lanes",
    "paginate",
    "timeline_columns",
]

FINAL_PROCESS_MIN = 1_000_000
"""The final phase's processes start here (``harness.runner``: ``10 * concurrency +
1_000_000``, then ``+ 1_000_000`` after each unknown outcome), apart from the workers'."""

FINAL_LANE = "final"

TYPE_CODES = {"ok": 0, "fail": 1, "info": 2}
"""Outcome codes in the page data (the script has the same table)."""


@dataclass(frozen=True, slots=True)
class TimelineColumns:
    """Every call of the history, columnwise and compact, in invocation order.

    Times are integer microseconds on the history's clock; ``end_us`` is -1
    for a call that never completed. ``lane`` indexes ``lanes``; ``f`` indexes
    ``fs``. ``info_end_us`` keeps the time an ``info`` completion arrived (the
    op may still take effect after it, so the bar stays open to the right).
    """

    lanes: tuple[str, ...]
    fs: tuple[str, ...]
    start_us: tuple[int, ...]
    end_us: tuple[int, ...]
    lane: tuple[int, ...]
    type: tuple[int, ...]
    f: tuple[int, ...]
    index: tuple[int, ...]
    value: tuple[str, ...]
    error: tuple[str, ...]
    node: tuple[str, ...]
    process: tuple[int, ...]
    retry_of: tuple[int, ...]
    """The invocation's ``retry_of`` (the first attempt's op index), or -1."""

    def __len__(self) -> int:
        return len(self.start_us)

    def to_json(self) -> dict[str, Any]:
        """The page script's view: short keys, because this is most of a big report's bytes."""
        return {"lanes": list(self.lanes), "fs": list(self.fs), "s": list(self.start_us),
                "e": list(self.end_us), "l": list(self.lane), "t": list(self.type),
                "f": list(self.f), "i": list(self.index), "v": list(self.value),
                "x": list(self.error), "n": list(self.node), "p": list(self.process),
                "r": list(self.retry_of)}


def lane_of(process: int, concurrency: int) -> str:
    """The row of a client process: its worker ``w<process mod concurrency>``, or ``final``."""
    if process >= FINAL_PROCESS_MIN:
        return FINAL_LANE
    return f"w{process % concurrency}"


def _lane_key(lane: str) -> tuple[int, int]:
    return (1, 0) if lane == FINAL_LANE else (0, int(lane[1:]))


def infer_concurrency(calls: Sequence[Call]) -> int:
    """The run's concurrency when ``results.json`` does not say it (a killed run).

    A worker runs one call at a time, so the fewest rows ``process mod k``
    in which no two calls overlap is the concurrency or a divisor that the
    picture cannot tell from it; either way no row holds two calls at once.
    A call that never completed lasts to the end.
    """
    never = 1 << 62
    spans = sorted((c.start, c.complete.time if c.complete is not None else never, c.process)
                   for c in calls
                   if isinstance(c.process, int) and c.process < FINAL_PROCESS_MIN)
    if not spans:
        return 1
    top = max(p for _, _, p in spans) + 1
    return next((k for k in range(1, top) if _rows_hold_one_call_at_a_time(spans, k)), top)


def _rows_hold_one_call_at_a_time(spans: Sequence[tuple[int, int, int]], rows: int) -> bool:
    busy_until: dict[int, int] = {}
    for start, end, process in spans:  # sorted by start
        row = process % rows
        if busy_until.get(row, -1) >= start:
            return False
        busy_until[row] = end
    return True


def timeline_columns(history: History, *, concurrency: int | None = None,
                     value_chars: int = 80) -> TimelineColumns:
    """All client calls as columns, one row per worker; values cut to ``value_chars`` (the
    full record is in ``history.jsonl``, which the report links).

    ``concurrency`` is the run's (``results.json``'s ``config.concurrency``);
    without it, it is inferred from the calls (:func:`infer_concurrency`).
    """
    calls = history.calls()
    workers = concurrency if concurrency and concurrency > 0 else infer_concurrency(calls)
    lane_names = [lane_of(int(c.process), workers) for c in calls]
    lanes = sorted(set(lane_names), key=_lane_key)
    lane_index = {name: i for i, name in enumerate(lanes)}
    fs = sorted({c.f for c in calls})
    f_of = {f: i for i, f in enumerate(fs)}
    s, e, ln, ty, fc, ix, val, err, nd, pr, rt = [], [], [], [], [], [], [], [], [], [], []
    for c, lane in zip(calls, lane_names, strict=True):
        s.append(c.start // 1000)
        e.append(-1 if c.complete is None else c.complete.time // 1000)
        ln.append(lane_index[lane])
        ty.append(TYPE_CODES[c.type.value])
        fc.append(f_of[c.f])
        ix.append(c.invoke.index)
        val.append(compact(c.value, limit=value_chars))
        err.append("" if c.error is None else compact(c.error, limit=value_chars))
        nd.append((c.complete.node or "") if c.complete is not None else "")
        pr.append(int(c.process))
        retry = retry_of(c)
        rt.append(-1 if retry is None else retry)
    return TimelineColumns(tuple(lanes), tuple(fs), tuple(s), tuple(e),
                           tuple(ln), tuple(ty), tuple(fc), tuple(ix), tuple(val), tuple(err),
                           tuple(nd), tuple(pr), tuple(rt))


@dataclass(frozen=True, slots=True)
class Page:
    """Calls ``[first, last)`` of the timeline, drawn over ``[lo_us, hi_us]``."""

    first: int
    last: int
    lo_us: int
    hi_us: int


def paginate(cols: TimelineColumns, *, per_page: int = 600, end_us: int | None = None
             ) -> list[Page]:
    """Consecutive pages of at most ``per_page`` calls; together they hold every call.

    A page spans from its first invocation to the next page's first
    invocation (the last page: to the history's end), so pages tile the run's
    time from the first client operation on, and a fault or LB change after
    it always falls on some page. The first page starts at the first call, not
    at 0: the time before it is cluster setup, which has no calls to draw.
    """
    n = len(cols)
    if per_page < 1:
        raise ValueError("per_page must be positive")
    hi_end = max([end_us or 0, *(x for x in cols.end_us[-per_page:] if x >= 0)],
                 default=0) if n else (end_us or 0)
    pages = []
    for first in range(0, n, per_page):
        last = min(n, first + per_page)
        lo = cols.start_us[first]
        hi = cols.start_us[last] if last < n else max(hi_end, cols.start_us[n - 1] + 1)
        pages.append(Page(first, last, lo, max(hi, lo + 1)))
    if not pages:
        pages.append(Page(0, 0, 0, max(1, end_us or 1)))
    return pages


@dataclass(frozen=True, slots=True)
class LbSegment:
    """One server's state in the load balancer's view, from ``start_ns`` to ``end_ns``."""

    server: str
    status: str
    check: str
    start_ns: int
    end_ns: int


def lb_lanes(events: Iterable[Mapping[str, Any]], *, end_ns: int) -> dict[str, list[LbSegment]]:
    """Per server, its UP / DOWN / ... segments from the LB observer's change records.

    A record says a server's state changed at ``time``; the state holds until
    the server's next record, the last one until ``end_ns``. Malformed records
    (no time, no server) are skipped: the lane is a view, not evidence.
    """
    by_server: dict[str, list[tuple[int, str, str]]] = {}
    for ev in events:
        t, server = ev.get("time"), ev.get("server")
        if not isinstance(t, int) or not isinstance(server, str):
            continue
        by_server.setdefault(server, []).append(
            (t, str(ev.get("status", "?")), str(ev.get("check") or "")))
    out: dict[str, list[LbSegment]] = {}
    for server in sorted(by_server):
        evs = sorted(by_server[server], key=lambda x: x[0])
        segs = []
        for i, (t, status, check) in enumerate(evs):
            nxt = evs[i + 1][0] if i + 1 < len(evs) else max(end_ns, t)
            segs.append(LbSegment(server, status, check, t, nxt))
        out[server] = segs
    return out


def faults_json(intervals: Sequence[FaultInterval], end_ns: int) -> list[dict[str, Any]]:
    """Fault intervals for the page script, in microseconds (open ones end with the run)."""
    return [{"kind": i.kind, "label": i.label, "s": i.start_ns // 1000,
             "e": (i.end_ns if i.end_ns is not None else end_ns) // 1000,
             "open": i.end_ns is None} for i in intervals]
