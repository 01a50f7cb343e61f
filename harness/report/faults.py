"""What the nemesis did, in words: one readable line per fault and per nemesis event.

The nemesis records each fault as raw data (a grudge, the toxics it added, the
node it killed), which is what a replay or a checker needs but not what a
reader of the faults table wants; quoting that JSON cut at 400 characters
showed the toxic names and hid the sides of the partition. The sentences here
are built from the same records, per fault kind, with the schedule's own
words where the record lacks them: a kill of ``node: "leader"`` is recorded
with the node it resolved to, and only the schedule says it was the leader.

Pure functions of the history (and the schedule); unit-tested as strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import NEMESIS, History, Op
from harness.report.data import FaultInterval, _partition_groups, compact, settle_text

__all__ = [
    "FaultRow",
    "NemesisEvent",
    "event_text",
    "fault_rows",
    "fault_summary",
    "marks",
    "nemesis_events",
    "schedule_params",
]

_LINK = re.compile(r"^(?P<src>[^-/]+)-to-(?P<dst>[^-/]+)-[^/]+$")
"""A proxy's name, ``<src>-to-<dst>-<role>`` (see ``harness.cluster.backend.link_name``)."""

_ROLES = ("leader", "follower", "cut-off", "majority", "minority", "all")
"""Schedule targets that are rules, not node names: worth saying next to the node."""


def schedule_params(history: History, schedule: Mapping[str, Any] | None
                    ) -> dict[int, Mapping[str, Any]]:
    """The scheduled parameters of each fault, by the index of its ``start-X`` event.

    The fault driver starts faults in schedule order (by start time, then by
    position) and records every start, failed or not, so the k-th
    ``start-X`` of the history is the k-th fault of kind X in that order. A
    run cut short simply has fewer starts; a schedule that is missing or
    malformed gives no parameters, never an error.
    """
    faults = (schedule or {}).get("faults") if isinstance(schedule, Mapping) else None
    if not isinstance(faults, list):
        return {}
    by_kind: dict[str, list[tuple[float, int, Mapping[str, Any]]]] = {}
    for pos, f in enumerate(faults):
        if isinstance(f, Mapping) and isinstance(f.get("start_s"), int | float):
            raw = f.get("params")
            params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            by_kind.setdefault(str(f.get("kind")), []).append((float(f["start_s"]), pos, params))
    for lst in by_kind.values():
        lst.sort(key=lambda x: (x[0], x[1]))
    seen: dict[str, int] = {}
    out: dict[int, Mapping[str, Any]] = {}
    for op in history.nemesis_ops():
        if op.process != NEMESIS or not op.f.startswith("start-"):
            continue
        kind = op.f[6:]
        k = seen.get(kind, 0)
        seen[kind] = k + 1
        if k < len(by_kind.get(kind, ())):
            out[op.index] = by_kind[kind][k][2]
    return out


def fault_summary(interval: FaultInterval, params: Mapping[str, Any] | None = None) -> str:
    """One line saying what a fault did and how it ended, e.g. ``kill n2 (leader), restarted``.

    ``params`` are the fault's scheduled parameters (:func:`schedule_params`);
    they add the target's rule (``leader``) and the latency's direction.
    """
    p = params or {}
    v = interval.start_value if isinstance(interval.start_value, Mapping) else {}
    kind = interval.kind
    own = _kind(kind)
    described = None
    if own is not None and "error" not in v:
        try:
            described = own.describe(v, p)
        except (TypeError, ValueError, KeyError, AttributeError):  # a hand-edited record
            described = None
    if "error" in v:
        text = f"{kind} was not applied: {v['error']}"
    elif described is not None:
        text = described + _fallback(v)
    elif kind == "partition":
        text = "partition" + (f" {v['plan']}" if v.get("plan") else "")
        sides = _sides(v.get("grudge"))
        text += (f": {sides}" if sides else "") + _fallback(v)
    elif kind in ("kill", "pause") and "node" in v:
        text = f"{kind} {v['node']}{_fallback(v) or _target(p, v)}"
    elif kind in ("latency", "stall"):
        text = kind
        if kind == "latency" and "latency_ms" in v:
            text += f" {v['latency_ms']} ms"
            if v.get("jitter_ms"):
                text += f" ±{v['jitter_ms']} ms"
        text += " " + _links_text(v.get("links"), p)
    else:
        text = interval.label
    if "error" not in v:
        text += ", " + _ending(kind, interval)
    recipe = v.get("recipe") or p.get("recipe")
    if recipe and recipe != v.get("plan"):
        text += f" · recipe {recipe}"
    return text


def _sides(grudge: Any) -> str:
    """``n1 | n2 n3`` for a clean split; else who is cut from whom (a ring has no sides)."""
    if not isinstance(grudge, Mapping):
        return ""
    groups = _partition_groups(grudge)
    if groups:
        return " | ".join(" ".join(g) for g in groups)
    # grudge[dst] lists the nodes whose traffic dst drops: name each dropped direction
    cut = {(str(src), str(dst)) for dst, srcs in grudge.items() for src in srcs or ()}
    parts = []
    for src, dst in sorted(cut):
        if (dst, src) not in cut:
            parts.append(f"{src}→{dst}")
        elif src < dst:
            parts.append(f"{src}↔{dst}")
    return "cut " + " ".join(parts) if parts else "nothing cut"


def _fallback(value: Mapping[str, Any]) -> str:
    """The fault driver's mark (``leader: null``) that it asked for the leader and got
    none, so its leader rule fell back to the first node up."""
    if "leader" in value and value["leader"] is None:
        return " (meant the leader; none was named, so the first node up)"
    return ""


def _target(params: Mapping[str, Any], value: Mapping[str, Any]) -> str:
    want = params.get("node")
    if isinstance(want, str) and want in _ROLES and want != value.get("node"):
        return f" ({want})"
    return ""


def _links_text(links: Any, params: Mapping[str, Any]) -> str:
    """The links a network fault slowed or stalled, as arrows; a two-way pair as ``a↔b``."""
    pairs: list[tuple[str, str]] = []
    unknown = 0
    for name in links if isinstance(links, list) else []:
        m = _LINK.match(str(name))
        if m is None:
            unknown += 1
        elif (m["src"], m["dst"]) not in pairs:
            pairs.append((m["src"], m["dst"]))
    both = {(a, b) for a, b in pairs if (b, a) in pairs}
    parts = []
    for a, b in pairs:
        if (a, b) in both:
            if a < b:
                parts.append(f"{a}↔{b}")
        else:
            parts.append(f"{a}→{b}")
    if unknown:
        parts.append(f"{unknown} other link{'s' if unknown != 1 else ''}")
    if not parts:
        node = params.get("node")
        return f"on the links of {node}" if node else "on no link"
    return " ".join(parts)


def _kind(name: str) -> Any:
    """The registered fault kind of that name, or None (a history from elsewhere may name
    kinds this harness does not have; its report still shows them, in generic words)."""
    from harness.nemesis import registry

    try:
        return registry.get(name)
    except ValueError:
        return None


def _ending(kind: str, interval: FaultInterval) -> str:
    if interval.end_ns is None:
        return "still in force when the history ended"
    end = interval.end_value if isinstance(interval.end_value, Mapping) else {}
    if interval.end_index == interval.start_index:
        return "never in force"
    if "error" in end:
        return f"could not be undone: {end['error']}"
    own = _kind(kind)
    done = own.ended if own is not None else "ended"
    return f"{done} by heal-all" if end.get("fault") == "heal-all" else done


@dataclass(frozen=True, slots=True)
class NemesisEvent:
    """A nemesis record that is not a fault's start or stop: ``heal-all``, ``recovered``,
    ``settle`` (the final phase's wait for the backlog) and any other note."""

    index: int
    time_ns: int
    f: str
    text: str


def nemesis_events(history: History) -> tuple[NemesisEvent, ...]:
    """The nemesis's marks, in history order, each with a readable line.

    Only the ``nemesis`` process: the ``replicas`` reads at the end of a run
    are evidence for the convergence checker, shown in its section, not
    fault events (each carries a whole replica's state).
    """
    return tuple(NemesisEvent(op.index, op.time, op.f, event_text(op.f, op.value))
                 for op in _nemesis(history)
                 if not op.f.startswith(("start-", "stop-")))


def _nemesis(history: History) -> Iterable[Op]:
    return (op for op in history.nemesis_ops() if op.process == NEMESIS)


def _stop_text(op: Op) -> str:
    v = op.value if isinstance(op.value, Mapping) else {}
    if "error" in v:
        return f"{op.f}: could not be undone: {v['error']}"
    text = str(v.get("fault") or op.f)
    if "node" in v:
        text += f" {v['node']}"
    if isinstance(v.get("removed"), list):
        n = len(v["removed"])
        text += f": removed {n} toxic{'s' if n != 1 else ''}"
    return text


def event_text(f: str, value: Any) -> str:
    """One line for a nemesis record that is not a fault interval."""
    v = value if isinstance(value, Mapping) else {}
    if f == "heal-all":
        if "error" in v:
            return f"heal-all failed: {v['error']}"
        done = [f"{what} {' '.join(map(str, v[key]))}" for key, what in
                (("restarted", "restarted"), ("resumed", "resumed")) if v.get(key)]
        removed = v.get("removed")
        if removed:
            done.append(f"removed {len(removed)} toxic{'s' if len(removed) != 1 else ''}")
        return "heal-all: " + ("; ".join(done) if done else "nothing was left to undo")
    if f == "recovered":
        return "recovered: the cluster was ready again after the heal"
    if f == "not-recovered":
        return f"not recovered after the heal: {v.get('error', '?')}"
    if f == "settle":
        try:
            return "settle: " + settle_text(v)
        except (TypeError, ValueError):  # a hand-edited record: show it as it is
            pass
    return f"{f} {compact(value, limit=120)}" if value not in (None, {}) else f


def marks(history: History, intervals: Sequence[FaultInterval],
          params: Mapping[int, Mapping[str, Any]]) -> list[tuple[int, int, str, str]]:
    """(time, index, f, text) of every nemesis record, for the timeline's dashed marks."""
    by_start = {i.start_index: i for i in intervals}
    out = []
    for op in _nemesis(history):
        if op.f.startswith("start-") and op.index in by_start:
            text = fault_summary(by_start[op.index], params.get(op.index))
        elif op.f.startswith("stop-"):
            text = _stop_text(op)
        else:
            text = event_text(op.f, op.value)
        out.append((op.time, op.index, op.f, text))
    return out


@dataclass(frozen=True, slots=True)
class FaultRow:
    """One row of the report's faults table: a fault (``end_s`` set) or a nemesis event.

    ``what`` is the sentence a reader wants; ``raw`` the start record as
    JSON (the row's tooltip), since the table no longer quotes it.
    """

    kind: str
    label: str
    start_s: float
    end_s: float | None
    open: bool
    start_index: int
    end_index: int | None
    what: str
    raw: str

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s


def fault_rows(intervals: Sequence[FaultInterval], events: Sequence[NemesisEvent],
               params: Mapping[int, Mapping[str, Any]], end_ns: int) -> list[FaultRow]:
    """The faults table: each fault and each other nemesis event, in time order.

    A fault still in force when the history ended is drawn to ``end_ns``.
    """
    rows = [FaultRow(kind=i.kind, label=i.label, start_s=i.start_ns / 1e9,
                     end_s=(i.end_ns if i.end_ns is not None else end_ns) / 1e9,
                     open=i.end_ns is None, start_index=i.start_index, end_index=i.end_index,
                     what=fault_summary(i, params.get(i.start_index)),
                     raw=compact(i.start_value, limit=2000))
            for i in intervals]
    rows += [FaultRow(kind=ev.f, label=ev.f, start_s=ev.time_ns / 1e9, end_s=None, open=False,
                      start_index=ev.index, end_index=None, what=ev.text, raw="")
             for ev in events]
    rows.sort(key=lambda r: (r.start_s, r.start_index))
    return rows
