"""The pytest plugin, tested with pytester as pytest's own plugins are."""

from __future__ import annotations

import shutil

import pytest

from harness.pytest_plugin import require

pytest_plugins = ["pytester"]


def test_options_and_seed_in_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_seed(harness_seed):
            assert harness_seed == 1234
    """)
    result = pytester.runpytest("-p", "no:randomly", "--harness-seed=1234")
    result.stdout.fnmatch_lines(["harness seed: 1234 (replay with --harness-seed=1234)"])
    result.assert_outcomes(passed=1)


def test_help_groups_options_under_one_prefix(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*Jepsen-style harness*", "*--harness-seed*",
                                 "*--harness-backend*", "*--harness-time-limit*"])


def test_corpus_fixture_skips_or_fails_by_ci(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("""
        def test_needs_corpus(harness_corpus):
            pass
    """)
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest("--harness-corpus=/nonexistent")
    result.assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("--harness-corpus=/nonexistent")
    result.assert_outcomes(errors=1)  # the fixture fails during setup
    result.stdout.fnmatch_lines(["*CI=true: a missing prerequisite is a failure*"])


def test_campaign_marker_runs_a_real_campaign(pytester: pytest.Pytester) -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.campaign(workload="register", nemesis="pause", time_limit_s=4,
                              rate_hz=30)
        def test_register(harness_run):
            r = harness_run()
            assert r.error is None
            assert r.valid is True
            assert (r.run_dir / "history.jsonl").exists()
            assert r.seed == 77
    """)
    result = pytester.runpytest("--harness-seed=77", "--harness-time-limit=3")
    result.assert_outcomes(passed=1)
