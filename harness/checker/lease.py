"""Lease exclusivity: no second claim of a work item while the first holder's lease runs.

Fencing tokens make a late holder's *completion* safe, but they do not stop
double execution: if a system hands an item to a second worker while the first
one's lease is still valid, both work on it at once, and the first one's work
is thrown away when its completion is refused. That is invisible to the
queue and fencing checkers, so this checker looks at time.

The contract (the reference system's, and that of most lease-based queues): a
worker may count on its item from the moment it *sends* the claim (or a
renewal) for one lease duration. So, for two ok claims A and B of one item
with different tokens, the history proves a violation when all of these hold:

* A returned before B was invoked (history order), so A took effect first;
* B returned at a time earlier than A's invocation plus one lease (shortened
  by ``drift``, the clock-rate error allowed between the harness and the
  system), extended by each ok renewal of A's token that returned before B
  was invoked. B took effect no later than it returned, so it took effect
  while A's lease certainly still ran;
* no operation that could have given A's item back (an ok or indeterminate
  ``fail`` of A's token) was invoked before B returned, and no completion of
  A's token returned ok before B was invoked (a completed item is no longer
  held; claiming it again is a different anomaly). An indeterminate
  completion excuses nothing: had it taken effect, the item was completed and
  must not have been claimed at all.

A lease can also be cut short with no second claim to show it: the holder
sends its completion (or renewal, or give-up) well inside its lease and the
system refuses it *on the merits*, "you no longer hold this item" (the
system states which errors those are in the history's ``promises`` op, as
:class:`~harness.system.PromisesAvailability` does). The checker flags
``lease-cut-short`` when such a refusal of (item, token) *returned* before the
lease computed as above ended: the system decided within the lease, whose
clock started no earlier than the claim was sent. Nothing excuses it but an
earlier ok or indeterminate completion or give-up of the same token (then the
refusal may answer that). With a backlog, an item whose lease was cut short
goes to the back of the queue and is claimed again long after the lease, so
only this rule sees the bug (a lease timed on the wall clock, expiry on a
leader change, a lease timer off by a factor). Without stated refusals the
rule is off: "no leader" must not read as "not yours".

Only ok operations prove anything; an indeterminate claim names no item.
Renewals that are not proven to precede B are ignored, which can only make
the computed lease shorter: everything here errs towards "valid".

The lease duration is read from each claim's invocation value
(``{"lease_ms": ...}``, stated by the workload) or given as ``lease_s``; a
history in which no claim has a lease has nothing to check. Times come from
the ops' ``time`` field, which must be one monotonic clock (the harness's
recorder): a history whose times go backwards in history order is
``unknown`` for this checker, never judged on a clock it cannot trust.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from harness.checker.details import LeaseDetails
from harness.checker.queue import MAX_LISTED, item_id
from harness.checker.result import UNKNOWN, Result
from harness.history import Call, History, OpType

__all__ = ["lease"]

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class _Claim:
    """An ok claim: who, which token, when it was sent and returned, its lease."""

    index: int  # the claim's invocation index
    token: Any
    process: int | str
    invoke_pos: int
    complete_pos: int
    invoke_ns: int
    complete_ns: int
    lease_ns: int | None


def _lease_ns(value: Any, default_s: float | None) -> int | None:
    if isinstance(value, dict):
        ms = value.get("lease_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
            return int(ms * 1_000_000)
    return None if default_s is None else int(default_s * NS_PER_S)


def _monotonic(history: History) -> bool:
    last = None
    for op in history:
        if last is not None and op.time < last:
            return False
        last = op.time
    return True


def lease(
    history: History,
    *,
    lease_s: float | None = None,
    drift: float = 0.01,
    claim_fs: tuple[str, ...] = ("claim",),
    renew_fs: tuple[str, ...] = ("renew",),
    release_fs: tuple[str, ...] = ("fail",),
    complete_fs: tuple[str, ...] = ("complete",),
) -> Result:
    """Check that no item was claimed again while an earlier claim's lease certainly ran."""
    if not 0 <= drift < 1:
        raise ValueError(f"drift must be in [0, 1), not {drift!r}")
    claims: dict[Hashable, list[_Claim]] = {}
    # (item, token) -> (completion position, invocation ns) of ok renewals
    renewals: dict[tuple[Hashable, Any], list[tuple[int, int]]] = {}
    # (item, token) -> invocation positions of ops that may have given the item back
    releases: dict[tuple[Hashable, Any], list[int]] = {}
    # (item, token) -> completion positions of ok completions
    completions: dict[tuple[Hashable, Any], list[int]] = {}
    pos_of = history.position
    stated = 0
    for call in history.calls():
        f = call.f
        inv, comp = call.invoke, call.complete
        if f in claim_fs:
            if not call.ok or comp is None or type(comp.value) is not dict:
                continue
            iid, tok = item_id(comp.value), comp.value.get("token")
            if iid is None or tok is None:
                continue
            lns = _lease_ns(inv.value, lease_s)
            stated += lns is not None
            claims.setdefault(iid, []).append(_Claim(
                inv.index, tok, inv.process, pos_of(inv.index), pos_of(comp.index),
                inv.time, comp.time, lns))
        elif f in renew_fs or f in release_fs or f in complete_fs:
            key = _named(call)
            if key is None:
                continue
            if f in renew_fs and call.ok and comp is not None:
                renewals.setdefault(key, []).append((pos_of(comp.index), inv.time))
            elif f in release_fs and (call.ok or call.indeterminate):
                releases.setdefault(key, []).append(pos_of(inv.index))
            elif f in complete_fs and call.ok and comp is not None:
                completions.setdefault(key, []).append(pos_of(comp.index))

    details: dict[str, Any] = {"claims_with_lease": stated, "drift": drift}
    if stated and not _monotonic(history):
        return Result(UNKNOWN, checker="lease", details=LeaseDetails.of({
            **details, "reason": "op times go backwards: no single monotonic clock"}))

    cut_short = _cut_short(history, claims, renewals, drift,
                           renew_fs + release_fs + complete_fs, release_fs + complete_fs)
    overlaps: list[dict[str, Any]] = []
    for iid, cs in claims.items():
        if len(cs) < 2:
            continue
        for a in cs:
            if a.lease_ns is None:
                continue
            key = (iid, a.token)
            for b in cs:
                if b.token == a.token or b.invoke_pos < a.complete_pos:
                    continue
                if any(p < b.complete_pos for p in releases.get(key, ())):
                    continue
                if any(p < b.invoke_pos for p in completions.get(key, ())):
                    continue
                start_ns = max([a.invoke_ns, *(t for pos, t in renewals.get(key, ())
                                                if pos < b.invoke_pos)])
                end_ns = start_ns + int(a.lease_ns * (1 - drift))
                if b.complete_ns < end_ns:
                    overlaps.append({
                        "item": iid, "first_claim_op": a.index, "first_token": a.token,
                        "first_process": a.process, "second_claim_op": b.index,
                        "second_token": b.token, "second_process": b.process,
                        "lease_s": a.lease_ns / NS_PER_S,
                        "second_returned_s_before_lease_end": (end_ns - b.complete_ns)
                        / NS_PER_S,
                    })
    details["lease_overlap"] = overlaps[:MAX_LISTED]
    details["lease_overlap_count"] = len(overlaps)
    anomalies = ["lease-overlap"] if overlaps else []
    if cut_short is not None:
        details["lease_cut_short"] = cut_short[:MAX_LISTED]
        details["lease_cut_short_count"] = len(cut_short)
        if cut_short:
            anomalies.append("lease-cut-short")
    details["anomalies"] = anomalies
    return Result(not anomalies, checker="lease", details=LeaseDetails.of(details))


def _cut_short(history: History, claims: dict[Hashable, list[_Claim]],
               renewals: dict[tuple[Hashable, Any], list[tuple[int, int]]], drift: float,
               holder_fs: tuple[str, ...],
               ending_fs: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """Refusals on the merits of a holder's op that returned inside its lease
    (see the module docstring); None when the history states no refusals."""
    from harness.checker.availability import error_text, promise_of

    promise = promise_of(history.nemesis_ops())
    stated = dict((promise or {}).get("refusals") or {})
    refusals = {str(f): {str(e) for e in errs} for f, errs in stated.items()
                if f in holder_fs and isinstance(errs, list | tuple)}
    if not refusals:
        return None
    pos_of = history.position
    # (item, token) -> invocation positions of ok or indeterminate completions/give-ups
    ending: dict[tuple[Hashable, Any], list[int]] = {}
    refused: list[tuple[Call, tuple[Hashable, Any]]] = []
    for call in history.calls():
        if call.f not in holder_fs:
            continue
        key = _named(call)
        if key is None:
            continue
        comp = call.complete
        if call.f in ending_fs and (call.ok or call.indeterminate):
            ending.setdefault(key, []).append(pos_of(call.invoke.index))
        if (comp is not None and comp.type is OpType.FAIL
                and error_text(comp.error) in refusals.get(call.f, ())):
            refused.append((call, key))
    found: list[dict[str, Any]] = []
    seen: set[tuple[Hashable, Any]] = set()
    for call, key in refused:
        if key in seen:
            continue
        comp = call.complete
        assert comp is not None
        iid, tok = key
        holder = [a for a in claims.get(iid, ()) if a.token == tok and a.lease_ns is not None]
        if not holder:
            continue
        a = holder[0]
        inv_pos, ret_pos = pos_of(call.invoke.index), pos_of(comp.index)
        if inv_pos < a.complete_pos:
            continue  # sent before the claim returned: not a holder's op
        if any(p < ret_pos and p != inv_pos for p in ending.get(key, ())):
            continue  # an earlier completion or give-up may be what it answers
        assert a.lease_ns is not None
        start_ns = max([a.invoke_ns, *(t for pos, t in renewals.get(key, ()) if pos < inv_pos)])
        end_ns = start_ns + int(a.lease_ns * (1 - drift))
        if comp.time < end_ns:
            seen.add(key)
            found.append({
                "item": iid, "token": tok, "claim_op": a.index, "process": a.process,
                "op": call.invoke.index, "f": call.f, "error": error_text(comp.error),
                "lease_s": a.lease_ns / NS_PER_S,
                "refused_s_before_lease_end": (end_ns - comp.time) / NS_PER_S,
            })
    return found


def _named(call: Call) -> tuple[Hashable, Any] | None:
    """The (item, token) an operation names, from its invocation."""
    v = call.invoke.value
    if type(v) is not dict:
        return None
    iid, tok = item_id(v), v.get("token")
    if iid is None or tok is None:
        return None
    return iid, tok
