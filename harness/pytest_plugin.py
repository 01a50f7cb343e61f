"""The harness's pytest plugin (registered through the ``pytest11`` entry point).

It imports the harness only when a fixture is used, so installing the package
costs other projects' test runs nothing. Options share one prefix,
``--harness-``, in one group.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["harness_corpus", "harness_run", "harness_seed", "in_ci", "require"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "Jepsen-style harness")
    group.addoption("--harness-seed", type=int, default=None,
                    help="seed for generated histories and campaigns (default: random)")
    group.addoption("--harness-corpus", default=None,
                    help="folder of the shared corpus (default: $HARNESS_CORPUS or "
                         "../shared/corpus beside the project)")
    group.addoption("--harness-backend", default="local", choices=["local", "docker"],
                    help="where campaign clusters run (default: local processes)")
    group.addoption("--harness-time-limit", type=float, default=None,
                    help="seconds of faults and load per campaign run (overrides markers)")
    group.addoption("--harness-system", default=None,
                    help="the system the conformance kit checks: an installed name "
                         "(harness systems) or module:factory")
    group.addoption("--harness-system-option", action="append", default=[],
                    metavar="KEY=VALUE", help="an option of that system (repeatable)")
    group.addoption("--harness-reports", default=None,
                    help="where campaign runs are stored (default: the test's tmp_path)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "campaign(system='refsys', workload='register', nemesis=('partition',), "
        "time_limit_s=10, **options): a fault campaign; the harness_run fixture runs it",
    )


def _seed(config: pytest.Config) -> int:
    seed = config.stash.get(_SEED_KEY, None)
    if seed is None:
        opt = config.getoption("--harness-seed")
        seed = int(opt) if opt is not None else int.from_bytes(os.urandom(4), "big")
        config.stash[_SEED_KEY] = seed
    return seed


_SEED_KEY = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> str:
    return f"harness seed: {_seed(config)} (replay with --harness-seed={_seed(config)})"


def in_ci() -> bool:
    """CI sets CI=true; there a missing prerequisite is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, except in CI where it fails the test."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing prerequisite is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def harness_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed: printed in the header, so any failure can be replayed."""
    return _seed(request.config)


@pytest.fixture
def harness_run(request: pytest.FixtureRequest, tmp_path: Path, harness_seed: int) -> Any:
    """A function that runs the test's campaign once: ``harness_run(**overrides)``.

    The ``campaign`` marker's keywords (and the ``--harness-*`` options) give the
    run's configuration; keyword overrides win, so a test can vary the seed or
    the schedule across runs. Returns a :class:`harness.runner.RunResult`.
    """
    from harness.generator import FaultSchedule
    from harness.runner import RunConfig, run

    marker = request.node.get_closest_marker("campaign")
    base: dict[str, Any] = dict(marker.kwargs) if marker else {}
    opt = request.config.getoption
    reports = opt("--harness-reports")
    counter = [0]

    def go(**overrides: Any) -> Any:
        kw = {**base, **overrides}
        kw.setdefault("backend", opt("--harness-backend"))
        if opt("--harness-time-limit") is not None:
            kw["time_limit_s"] = opt("--harness-time-limit")
        kw.setdefault("seed", harness_seed + counter[0])
        counter[0] += 1
        if isinstance(kw.get("nemesis"), str):
            kw["nemesis"] = tuple(x for x in kw["nemesis"].split(",") if x)
        if isinstance(kw.get("schedule"), dict):
            kw["schedule"] = FaultSchedule.from_dict(kw["schedule"])
        kw.setdefault("test", request.node.name)
        kw["reports_dir"] = Path(reports) if reports else tmp_path / "reports"
        return run(RunConfig(**kw))

    return go


@pytest.fixture(scope="session")
def harness_corpus(request: pytest.FixtureRequest) -> Path:
    """The shared corpus folder; skips where absent, fails in CI."""
    from harness.corpus import default_corpus_dir

    opt: Any = request.config.getoption("--harness-corpus")
    path = Path(opt) if opt else default_corpus_dir()
    require((path / "MANIFEST.md").exists(), f"shared corpus not found at {path}")
    return path
