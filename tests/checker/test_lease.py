"""The lease-exclusivity checker: what it must flag, and what it must not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.checker.lease import lease
from harness.checker.result import UNKNOWN
from harness.history import Op
from harness.testing import fail, history, info, invoke, ok

LEASE = {"lease_ms": 1000}


def at(t_s: float, op: Op) -> Op:
    """The op at ``t_s`` seconds on the run's clock."""
    return replace(op, time=int(t_s * 1e9))


def claim(p: int, t0: float, t1: float, item: str, tok: int, value: Any = LEASE
          ) -> tuple[Op, Op]:
    return (at(t0, invoke(p, "claim", value)),
            at(t1, ok(p, "claim", {"id": item, "token": tok})))


def op(kind: Any, p: int, t: float, f: str, item: str, tok: int) -> Op:
    return at(t, kind(p, f, {"id": item, "token": tok}))


def test_second_claim_inside_the_first_lease_is_flagged() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), *claim(1, 0.3, 0.31, "a", 20),
                op(invoke, 0, 0.5, "complete", "a", 10), op(fail, 0, 0.51, "complete", "a", 10))
    r = lease(h)
    assert r.valid is False
    assert r.details["anomalies"] == ["lease-overlap"]
    [o] = r.details["lease_overlap"]
    assert (o["item"], o["first_token"], o["second_token"]) == ("a", 10, 20)
    assert o["second_returned_s_before_lease_end"] == pytest.approx(0.99 - 0.31, abs=1e-6)


def test_second_claim_after_the_lease_ran_out_is_fine() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), *claim(1, 1.2, 1.21, "a", 20))
    assert lease(h).valid is True


def test_a_second_claim_that_may_have_taken_effect_after_the_lease_is_not_flagged() -> None:
    # B was invoked inside the lease but returned after it: it may have taken
    # effect after the lease ran out, which is allowed.
    h = history(*claim(0, 0.0, 0.01, "a", 10), at(0.5, invoke(1, "claim", LEASE)),
                at(1.5, ok(1, "claim", {"id": "a", "token": 20})))
    assert lease(h).valid is True


def test_drift_allowance_keeps_borderline_cases_valid() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), *claim(1, 0.98, 0.995, "a", 20))
    assert lease(h).valid is True  # 0.995 s is inside 1 s but not inside 0.99 s
    assert lease(h, drift=0.0).valid is False


def test_renewal_extends_the_lease_only_when_it_returned_first() -> None:
    base = [*claim(0, 0.0, 0.01, "a", 10),
            op(invoke, 0, 0.8, "renew", "a", 10), op(ok, 0, 0.81, "renew", "a", 10)]
    inside_renewed = history(*base, *claim(1, 1.2, 1.21, "a", 20))
    assert lease(inside_renewed).valid is False
    # the same renewal, but returning only after B was invoked: not proven to precede B
    h = history(*claim(0, 0.0, 0.01, "a", 10), op(invoke, 0, 0.8, "renew", "a", 10),
                at(1.2, invoke(1, "claim", LEASE)), op(ok, 0, 1.205, "renew", "a", 10),
                at(1.21, ok(1, "claim", {"id": "a", "token": 20})))
    assert lease(h).valid is True


@pytest.mark.parametrize("outcome", [ok, info])
def test_a_possible_release_before_the_second_claim_is_not_flagged(outcome: Any) -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), op(invoke, 0, 0.1, "fail", "a", 10),
                op(outcome, 0, 0.11, "fail", "a", 10), *claim(1, 0.3, 0.31, "a", 20))
    assert lease(h).valid is True


def test_a_definitely_failed_release_does_not_excuse_the_second_claim() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), op(invoke, 0, 0.1, "fail", "a", 10),
                op(fail, 0, 0.11, "fail", "a", 10), *claim(1, 0.3, 0.31, "a", 20))
    assert lease(h).valid is False


def test_a_completion_before_the_second_claim_is_not_a_lease_matter() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), op(invoke, 0, 0.1, "complete", "a", 10),
                op(ok, 0, 0.11, "complete", "a", 10), *claim(1, 0.3, 0.31, "a", 20))
    assert lease(h).valid is True


@pytest.mark.parametrize("outcome", [info, fail])
def test_a_completion_not_known_to_have_happened_excuses_nothing(outcome: Any) -> None:
    # Had a timed-out completion taken effect, the item could not be claimed again.
    h = history(*claim(0, 0.0, 0.01, "a", 10), op(invoke, 0, 0.1, "complete", "a", 10),
                op(outcome, 0, 0.11, "complete", "a", 10), *claim(1, 0.3, 0.31, "a", 20))
    assert lease(h).valid is False


def test_concurrent_claims_are_not_ordered_so_not_judged() -> None:
    h = history(at(0.0, invoke(0, "claim", LEASE)), at(0.01, invoke(1, "claim", LEASE)),
                at(0.02, ok(0, "claim", {"id": "a", "token": 10})),
                at(0.03, ok(1, "claim", {"id": "a", "token": 20})))
    assert lease(h).valid is True


def test_other_items_same_token_indeterminate_and_failed_claims_are_ignored() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), *claim(1, 0.1, 0.11, "b", 20),
                at(0.2, invoke(2, "claim", LEASE)), at(0.21, info(2, "claim", LEASE)),
                at(0.3, invoke(3, "claim", LEASE)), at(0.31, fail(3, "claim", LEASE)),
                at(0.4, invoke(4, "claim", LEASE)), at(0.41, ok(4, "claim", None)),
                *claim(5, 0.5, 0.51, "a", 10))  # the same token: fencing's business
    assert lease(h).valid is True


def test_without_a_stated_lease_there_is_nothing_to_check() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10, value=None),
                *claim(1, 0.3, 0.31, "a", 20, value=None))
    r = lease(h)
    assert r.valid is True and r.details["claims_with_lease"] == 0
    assert lease(h, lease_s=1.0).valid is False  # the same history, given the lease


def test_times_that_go_backwards_make_the_verdict_unknown() -> None:
    h = history(*claim(0, 5.0, 5.01, "a", 10), *claim(1, 0.3, 0.31, "a", 20))
    assert lease(h).valid == UNKNOWN


def test_bad_drift_is_refused() -> None:
    with pytest.raises(ValueError):
        lease(history(), drift=1.5)


# ------------------------------------------------------------ lease-cut-short

STALE = ("stale", "not_processing")


def promises(t_s: float = 0.0) -> Op:
    """The system's stated refusals on the merits, as the runner records them."""
    from harness.checker.availability import PROMISES
    from harness.history import NEMESIS

    refusals = {"complete": list(STALE), "renew": list(STALE), "fail": list(STALE)}
    return at(t_s, info(NEMESIS, PROMISES, {"availability": {"refusals": refusals}},
                        error=None))


def refused(p: int, t0: float, t1: float, f: str, item: str, tok: int,
            error: Any = "stale") -> tuple[Op, Op]:
    v = {"id": item, "token": tok}
    return at(t0, invoke(p, f, v)), at(t1, fail(p, f, v, error=error))


@pytest.mark.parametrize("f", ["complete", "renew", "fail"])
def test_a_holder_refused_as_stale_inside_its_lease_is_flagged(f: str) -> None:
    # No second claim shows it (the item went to the back of a long queue):
    # the holder's own op, answered "not yours" inside the lease, does.
    h = history(promises(), *claim(0, 0.0, 0.01, "a", 10), *refused(0, 0.4, 0.42, f, "a", 10))
    r = lease(h)
    assert r.valid is False
    assert r.details["anomalies"] == ["lease-cut-short"]
    [c] = r.details["lease_cut_short"]
    assert (c["item"], c["token"], c["f"], c["error"], c["claim_op"]) == ("a", 10, f, "stale", 1)
    assert c["refused_s_before_lease_end"] == pytest.approx(0.99 - 0.42, abs=1e-6)


def test_a_refusal_that_returned_after_the_lease_is_fine() -> None:
    # sent inside the lease, answered after it: the system may have decided late
    h = history(promises(), *claim(0, 0.0, 0.01, "a", 10),
                *refused(0, 0.9, 1.1, "complete", "a", 10))
    assert lease(h).valid is True


def test_only_refusals_on_the_merits_count() -> None:
    # "no leader" says nothing about who holds the item
    h = history(promises(), *claim(0, 0.0, 0.01, "a", 10),
                *refused(0, 0.4, 0.42, "complete", "a", 10, error="no_leader"))
    assert lease(h).valid is True


def test_without_stated_refusals_the_rule_is_off() -> None:
    h = history(*claim(0, 0.0, 0.01, "a", 10), *refused(0, 0.4, 0.42, "complete", "a", 10))
    r = lease(h)
    assert r.valid is True and "lease_cut_short" not in r.details


@pytest.mark.parametrize("earlier", [ok, info])
def test_a_refusal_may_answer_an_earlier_completion(earlier: Any) -> None:
    # an ok or indeterminate completion first: "stale" may be its effect (a resend's answer)
    h = history(promises(), *claim(0, 0.0, 0.01, "a", 10),
                op(invoke, 0, 0.2, "complete", "a", 10), op(earlier, 0, 0.3, "complete", "a", 10),
                *refused(0, 0.4, 0.42, "complete", "a", 10))
    assert lease(h).valid is True


def test_a_definite_failure_before_excuses_nothing() -> None:
    h = history(promises(), *claim(0, 0.0, 0.01, "a", 10),
                *refused(0, 0.2, 0.21, "complete", "a", 10, error="no_leader"),
                *refused(0, 0.4, 0.42, "complete", "a", 10))
    assert lease(h).valid is False


def test_a_renewal_moves_the_lease_end_for_a_refusal_too() -> None:
    base = [promises(), *claim(0, 0.0, 0.01, "a", 10),
            op(invoke, 0, 0.8, "renew", "a", 10), op(ok, 0, 0.81, "renew", "a", 10)]
    assert lease(history(*base, *refused(0, 1.2, 1.21, "complete", "a", 10))).valid is False
    assert lease(history(*base, *refused(0, 1.9, 1.95, "complete", "a", 10))).valid is True
