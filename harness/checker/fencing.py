"""Fencing: at most one accepted completion per work item, and tokens that only grow.

A lease-based work queue hands each claim a fencing token. Safety rests on
three facts this checker verifies from the client's side:

* **double-completion**: two *different* tokens both had a completion of the
  same item accepted (a retry with the same token is idempotent and fine);
* **token-reuse** / **token-regression**: two ok claims of one item got the
  same token, or a claim that began after another claim of the item had
  returned got a token that is not larger;
* **stale-accepted**: a ``complete`` (or ``renew``) was accepted with token
  ``t`` although a claim of the same item with a larger token had already
  returned before the completion was invoked: the system let a fenced-off
  worker through.

Only facts the history proves are used: indeterminate claims say nothing about
their token, and real-time order comes from the history's own event order.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from typing import Any

from harness.checker.details import FencingDetails
from harness.checker.queue import MAX_LISTED, item_id
from harness.checker.result import Result
from harness.history import History, OpType

__all__ = ["fencing"]


def fencing(
    history: History,
    *,
    claim_fs: tuple[str, ...] = ("claim",),
    complete_fs: tuple[str, ...] = ("complete",),
    renew_fs: tuple[str, ...] = ("renew",),
) -> Result:
    """Check fencing-token discipline per work item."""
    # Events in history order: (position, kind, item, token, call index)
    pos_of = history.position
    claims: dict[Hashable, list[tuple[int, int, Any, int]]] = {}
    accepted: dict[Hashable, dict[Any, int]] = {}  # item -> token -> first op index
    uses: list[tuple[int, Hashable, Any, int, str]] = []  # (invoke pos, item, token, idx, f)
    ok = OpType.OK
    for call in history.calls():
        comp = call.complete
        if comp is None or comp.type is not ok:
            continue  # only accepted operations prove anything about tokens
        inv = call.invoke
        f = inv.f
        if f in claim_fs:
            v = comp.value
            if type(v) is not dict:
                continue
            iid = item_id(v)
            tok = v.get("token")
            if iid is None or tok is None:
                continue
            claims.setdefault(iid, []).append(
                (pos_of(inv.index), pos_of(comp.index), tok, inv.index)
            )
        elif f in complete_fs or f in renew_fs:
            v = comp.value if type(comp.value) is dict else inv.value
            if type(v) is not dict:
                continue
            iid = item_id(v)
            tok = v.get("token")
            if iid is None or tok is None:
                continue
            if f in complete_fs:
                accepted.setdefault(iid, {}).setdefault(tok, inv.index)
            uses.append((pos_of(inv.index), iid, tok, inv.index, f))

    double: list[dict[str, Any]] = []
    for iid, toks in accepted.items():
        if len(toks) > 1:
            double.append(
                {"item": iid, "tokens": sorted(toks, key=str), "ops": sorted(toks.values())}
            )

    reuse: list[dict[str, Any]] = []
    regress: list[dict[str, Any]] = []
    # For stale checks: per item, claims sorted by completion position, with a
    # running max token, so "largest token returned before position p" is a bisect.
    returned: dict[Hashable, tuple[list[int], list[Any], list[int]]] = {}
    for iid, cs in claims.items():
        if len(cs) == 1:  # the common case: nothing to compare within the item
            _, end, tok, idx = cs[0]
            returned[iid] = ([end], [tok], [idx])
            continue
        by_tok: dict[Any, int] = {}
        for _, _, tok, idx in cs:
            if tok in by_tok:
                reuse.append({"item": iid, "token": tok, "ops": [by_tok[tok], idx]})
            else:
                by_tok[tok] = idx
        by_end = sorted(cs, key=lambda c: c[1])
        ends: list[int] = []
        maxes: list[Any] = []
        max_idx: list[int] = []
        best: Any = None
        best_idx = -1
        for _, end, tok, idx in by_end:
            if best is None or tok > best:
                best, best_idx = tok, idx
            ends.append(end)
            maxes.append(best)
            max_idx.append(best_idx)
        returned[iid] = (ends, maxes, max_idx)
        for start, _, tok, idx in cs:
            prior = _max_before(returned[iid], start)
            if prior is not None and not tok > prior[0]:
                regress.append(
                    {"item": iid, "token": tok, "op": idx, "earlier_token": prior[0],
                     "earlier_op": prior[1]}
                )

    stale: list[dict[str, Any]] = []
    for start, iid, tok, idx, f in uses:
        r = returned.get(iid)
        if r is None or r[0][0] > start:
            continue
        prior = _max_before(r, start)
        if prior is not None and tok < prior[0]:
            stale.append(
                {"item": iid, "f": f, "token": tok, "op": idx, "newer_token": prior[0],
                 "newer_claim_op": prior[1]}
            )

    details: dict[str, Any] = {
        "claimed_items": len(claims),
        "completed_items": len(accepted),
        "double_completion": double[:MAX_LISTED],
        "token_reuse": reuse[:MAX_LISTED],
        "token_regression": regress[:MAX_LISTED],
        "stale_accepted": stale[:MAX_LISTED],
    }
    anomalies = [
        name
        for name, found in (
            ("double-completion", double),
            ("token-reuse", reuse),
            ("token-regression", regress),
            ("stale-accepted", stale),
        )
        if found
    ]
    details["anomalies"] = anomalies
    return Result(not anomalies, checker="fencing", details=FencingDetails.of(details))


def _max_before(r: tuple[list[int], list[Any], list[int]], pos: int) -> tuple[Any, int] | None:
    """The largest token among claims of an item that returned before ``pos``."""
    ends, maxes, idxs = r
    i = bisect.bisect_left(ends, pos)
    if i == 0:
        return None
    return maxes[i - 1], idxs[i - 1]
