"""compose: verdicts merge Jepsen's way, and a crashing checker is "unknown", never a pass."""

from __future__ import annotations

from harness.checker import Result, compose, merge_validity, stats
from harness.history import History
from harness.testing import history, invoke, ok


def boom(_: History) -> Result:
    raise RuntimeError("kaput")


def valid(_: History) -> Result:
    return Result(True, checker="v")


def invalid(_: History) -> Result:
    return Result(False, checker="i")


H = history(invoke(0, "read"), ok(0, "read", 1))


def test_exception_becomes_unknown_with_the_error() -> None:
    r = compose({"boom": boom, "ok": valid})(H)
    assert r.valid == "unknown"
    sub = r.details["results"]["boom"]
    assert sub.valid == "unknown" and "RuntimeError: kaput" in (sub.error or "")
    assert r.details["results"]["ok"].valid is True


def test_invalid_wins_over_unknown() -> None:
    assert compose({"boom": boom, "bad": invalid})(H).valid is False


def test_merge_validity() -> None:
    assert merge_validity([]) is True
    assert merge_validity([True, "unknown"]) == "unknown"
    assert merge_validity([True, "unknown", False]) is False


def test_non_result_return_is_unknown() -> None:
    def weird(_: History) -> Result:
        return 42  # type: ignore[return-value]

    r = compose({"weird": weird})(H)
    assert r.valid == "unknown" and "returned int" in (r.details["results"]["weird"].error or "")


def test_stats_says_unknown_when_an_operation_never_succeeded() -> None:
    h = history(invoke(0, "write", 1), invoke(1, "read"), ok(1, "read", None))
    r = stats(h)
    assert r.valid == "unknown" and r.details["never_ok"] == ["write"]


def test_stats_only_requires_the_named_operations() -> None:
    h = history(invoke(0, "renew", 1), invoke(1, "read"), ok(1, "read", None))
    assert stats(h, required=["read"]).valid is True
    assert stats(h, required=["read", "write"]).details["never_ok"] == ["write"]
