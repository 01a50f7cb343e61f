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

__all__ = ["harness_corpus", "harness_seed"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "Jepsen-style harness")
    group.addoption("--harness-seed", type=int, default=None,
                    help="seed for generated histories and campaigns (default: random)")
    group.addoption("--harness-corpus", default=None,
                    help="folder of the shared corpus (default: $HARNESS_CORPUS or "
                         "../shared/corpus beside the project)")


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


@pytest.fixture(scope="session")
def harness_corpus(request: pytest.FixtureRequest) -> Path:
    """The shared corpus folder; skips where absent, fails in CI."""
    from harness.corpus import default_corpus_dir

    opt: Any = request.config.getoption("--harness-corpus")
    path = Path(opt) if opt else default_corpus_dir()
    require((path / "MANIFEST.md").exists(), f"shared corpus not found at {path}")
    return path
