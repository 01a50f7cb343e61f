"""The availability and idempotency checkers' results as report sections.

Both list what they found as ops of the history (an unserved request, a
resend and its first attempt), so the report shows those rows with links to
the timeline; None when the checker passed or did not run (the verdict table
then says enough). Both read the typed details (``results.json`` entries are
typed first by :func:`harness.report.data.checker_result`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checker.details import (
    AvailabilityDetails,
    IdempotencyDetails,
    IntrospectionDetails,
    LeadershipDetails,
    ResourcesDetails,
    RobustnessDetails,
)
from harness.report.data import checker_result, compact

__all__ = ["availability_view", "idempotency_view", "introspection_view", "leadership_view",
           "resources_view",
           "robustness_view"]


def availability_view(result: Any) -> dict[str, Any] | None:
    """The requests a quiet cluster, or a majority while a minority was faulty, did not
    serve, when that was a finding: one part per kind of window with a finding."""
    r = checker_result(result, "availability")
    if r is None:
        return None
    d = AvailabilityDetails.coerce(r.details)
    if not d.progress:
        return None
    parts = [_availability_part(
        dict(d), "while no fault was in force",
        "after the last fault ended", float(d.recovery_grace_ms or 0) / 1000)]
    minority = d.get("minority")
    if isinstance(minority, Mapping) and minority.get("unserved_count"):
        parts.append(_availability_part(
            minority, "while only a minority of nodes was faulty",
            "after such a fault started", float(minority.get("failover_grace_ms") or 0) / 1000))
    parts = [p for p in parts if p["total"]] or parts[:1]
    return {"reason": str(d.reason or ""), "parts": parts, **parts[0]}


def _availability_part(d: Mapping[str, Any], title: str, after: str,
                       grace_s: float) -> dict[str, Any]:
    rows = [{"index": u.get("index"), "at_s": u.get("at_s"), "process": u.get("process"),
             "f": u.get("f"), "type": u.get("type"), "error": str(u.get("error"))[:80],
             "node": u.get("node") or ""}
            for u in d.get("unserved") or [] if isinstance(u, Mapping)]
    by_error = d.get("unserved_by_error") or {}
    return {
        "title": title, "after": after,
        "windows": [w for w in d.get("windows") or [] if isinstance(w, list)],
        "grace_s": grace_s,
        "rows": rows,
        "total": int(d.get("unserved_count") or len(rows)),
        "by_error": [{"what": str(k), "count": v} for k, v in by_error.items()]
        if isinstance(by_error, Mapping) else [],
    }


def idempotency_view(result: Any) -> dict[str, Any] | None:
    """Resends the system judged anew or answered differently, when there were any."""
    r = checker_result(result, "idempotency")
    if r is None or r.valid is not False:
        return None
    d = IdempotencyDetails.coerce(r.details)
    rows = [{"anomaly": str(a.get("anomaly")), "f": a.get("f"), "process": a.get("process"),
             "first": a.get("first"), "resend": a.get("resend"),
             "request": compact(a.get("request")),
             "first_answer": compact(a.get("first_answer")),
             "resend_answer": compact(a.get("resend_answer"))}
            for a in d.anomalous or [] if isinstance(a, Mapping)]
    return {"anomalies": [str(a) for a in d.anomalies or []], "rows": rows,
            "total": int(d.anomalous_count or len(rows)),
            "resends": int(d.resends or 0)}


def robustness_view(result: Any) -> dict[str, Any] | None:
    """Malformed requests the system accepted or failed on, when there were any."""
    r = checker_result(result, "robustness")
    if r is None or r.valid is not False:
        return None
    d = RobustnessDetails.coerce(r.details)
    rows = [{"anomaly": anomaly, "index": e.get("index"), "at_s": e.get("at_s"),
             "target": e.get("target"), "why": e.get("why"),
             "request": compact(e.get("request")), "detail": e.get("detail")}
            for anomaly, listed in (("accepted-bad-input", d.accepted_bad_input),
                                    ("error-on-bad-input", d.error_on_bad_input),
                                    ("dropped-bad-input", d.dropped_bad_input))
            for e in listed or [] if isinstance(e, Mapping)]
    return {"anomalies": [str(a) for a in d.anomalies or []], "rows": rows,
            "requests": int(d.requests or 0),
            "total": int(d.anomalous_count or len(rows))}


def leadership_view(result: Any) -> dict[str, Any] | None:
    """Leaders deposed right after a fault that spared them ended, terms that went down
    on a running node and terms two nodes led at, when there were any."""
    r = checker_result(result, "leadership")
    if r is None or not (r.details.get("progress") or r.details.get("anomalies") or []):
        return None
    d = LeadershipDetails.coerce(r.details)
    rows = [{k: e.get(k) for k in ("leader", "term", "since_s", "ended_s", "ended_by", "after",
                                    "after_s")}
            for e in d.disrupted or [] if isinstance(e, Mapping)]
    regressions = [{k: e.get(k) for k in ("node", "from", "to", "seen_s", "at_s", "leader")}
                   for e in d.regressions or [] if isinstance(e, Mapping)]
    shared = [{"term": e.get("term"), "leaders": ", ".join(str(x) for x in e.get("leaders") or []),
               "first_s": e.get("first_s"), "at_s": e.get("at_s")}
              for e in d.shared_terms or [] if isinstance(e, Mapping)]
    return {"reason": str(d.reason or ""), "rows": rows,
            "total": int(d.disrupted_count or len(rows)), "tenures": int(d.tenures or 0),
            "regressions": regressions, "regression_total": int(d.regression_count or 0),
            "shared": shared, "shared_total": int(d.shared_count or 0),
            "safety": bool(regressions or shared)}


def introspection_view(result: Any) -> dict[str, Any] | None:
    """Introspection probes that never answered on the healthy cluster, when there were."""
    r = checker_result(result, "introspection")
    if r is None or not (r.details.get("progress") or []):
        return None
    d = IntrospectionDetails.coerce(r.details)
    rows = [{k: e.get(k) for k in ("probe", "attempts", "answer", "consequence")}
            for e in d.failed or [] if isinstance(e, Mapping)]
    return {"reason": str(d.reason or ""), "rows": rows, "probes": int(d.probes or 0)}


def resources_view(result: Any) -> dict[str, Any] | None:
    """Nodes that used more CPU in the idle cluster than their system promises."""
    r = checker_result(result, "resources")
    if r is None or r.valid is not False:
        return None
    d = ResourcesDetails.coerce(r.details)
    rows = [{"node": str(n), "cores": v.get("cores"), "cpu_s": v.get("cpu_s"),
             "runaway": any(x.get("node") == n for x in d.runaways or [])}
            for n, v in sorted((d.nodes or {}).items()) if isinstance(v, Mapping)]
    return {"reason": str(d.reason or ""), "rows": rows, "idle_cores": d.idle_cores,
            "window_s": d.window_s, "total": len(d.runaways or [])}
