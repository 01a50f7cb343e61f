"""The fencing checker on small named cases, with the whole result compared."""

from __future__ import annotations

from typing import Any

from harness.checker.fencing import fencing
from harness.examples import simulate_work_items
from harness.testing import fail, history, info, invoke, ok


def claim(p: int, i: int, tok: int) -> tuple[Any, Any]:
    return invoke(p, "claim"), ok(p, "claim", {"id": i, "token": tok})


def complete(p: int, i: int, tok: int) -> tuple[Any, Any]:
    v = {"id": i, "token": tok, "result": "r"}
    return invoke(p, "complete", v), ok(p, "complete", v)


def test_sane() -> None:
    h = history(
        *claim(0, 1, 10),
        invoke(0, "renew", {"id": 1, "token": 10}), ok(0, "renew", {"id": 1, "token": 10}),
        *claim(1, 1, 12),  # lease expired, re-claimed with a larger token
        invoke(0, "complete", {"id": 1, "token": 10}), fail(0, "complete", {"id": 1, "token": 10},
                                                           error="stale-token"),
        *complete(1, 1, 12),
        *complete(1, 1, 12),  # idempotent retry
        invoke(2, "claim"), info(2, "claim"),
    )
    r = fencing(h)
    assert r.valid is True
    assert dict(r.details) == {
        "claimed_items": 1, "completed_items": 1, "double_completion": [], "token_reuse": [],
        "token_regression": [], "stale_accepted": [], "anomalies": [],
    }


def test_pathological() -> None:
    h = history(
        *claim(0, 1, 10),          # ops 0,1
        *claim(1, 1, 12),          # ops 2,3
        *complete(0, 1, 10),       # ops 4,5: stale, accepted
        *complete(1, 1, 12),       # ops 6,7: a second token completes too
        *claim(2, 2, 20),          # ops 8,9
        *claim(3, 2, 20),          # ops 10,11: same token again
        *claim(3, 2, 15),          # ops 12,13: smaller token after larger returned
    )
    r = fencing(h)
    assert r.valid is False
    assert dict(r.details) == {
        "claimed_items": 2,
        "completed_items": 1,
        "double_completion": [{"item": 1, "tokens": [10, 12], "ops": [4, 6]}],
        "token_reuse": [{"item": 2, "token": 20, "ops": [8, 10]}],
        "token_regression": [
            {"item": 2, "token": 20, "op": 10, "earlier_token": 20, "earlier_op": 8},
            {"item": 2, "token": 15, "op": 12, "earlier_token": 20, "earlier_op": 8},
        ],
        "stale_accepted": [
            {"item": 1, "f": "complete", "token": 10, "op": 4, "newer_token": 12,
             "newer_claim_op": 2},
        ],
        "anomalies": ["double-completion", "token-reuse", "token-regression", "stale-accepted"],
    }


def test_concurrent_claims_do_not_prove_order() -> None:
    """Overlapping claims may return tokens in any order: no regression."""
    h = history(
        invoke(0, "claim"), invoke(1, "claim"),
        ok(1, "claim", {"id": 1, "token": 12}), ok(0, "claim", {"id": 1, "token": 10}),
    )
    assert fencing(h).valid is True


def test_completion_concurrent_with_newer_claim_is_not_proven_stale() -> None:
    v = {"id": 1, "token": 10}
    h = history(
        *claim(0, 1, 10),
        invoke(0, "complete", v), invoke(1, "claim"),
        ok(1, "claim", {"id": 1, "token": 12}), ok(0, "complete", v),
    )
    assert fencing(h).valid is True


def test_simulated_work_items() -> None:
    for seed in range(5):
        assert fencing(simulate_work_items(seed)).valid is True
    found = [fencing(simulate_work_items(s, bug="stale-token")) for s in range(5)]
    assert any(r.valid is False for r in found)
    for r in found:
        if r.valid is False:
            assert "stale-accepted" in r.details["anomalies"]
