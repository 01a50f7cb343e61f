"""Every history of the shared corpus gets the verdict its MANIFEST states.

The list of files, their expected verdicts and models come from the corpus'
own ``MANIFEST.md`` (through :func:`harness.corpus.read_manifest`), never
from a copy here. Where the corpus is absent the tests skip, except in CI
(``CI=true``), where a missing corpus is a failure.
"""

from __future__ import annotations

import os

import pytest

from harness.checker.linearizable import linearizable
from harness.checker.models import get_model
from harness.corpus import CorpusEntry, default_corpus_dir, read_manifest
from harness.formats import read_history

CORPUS = default_corpus_dir()
PRESENT = (CORPUS / "MANIFEST.md").exists()
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.corpus


def _entries() -> list[CorpusEntry]:
    return read_manifest(CORPUS) if PRESENT else []


ENTRIES = _entries()


def test_corpus_is_present() -> None:
    if not PRESENT:
        if IN_CI:
            pytest.fail(f"CI=true but the shared corpus is missing at {CORPUS}")
        pytest.skip(f"no shared corpus at {CORPUS}")
    suites = {e.suite for e in ENTRIES}
    assert suites == {"porcupine-etcd", "porcupine-kv", "knossos"}
    assert any(not e.expected for e in ENTRIES) and any(e.expected for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.relpath for e in ENTRIES])
def test_corpus_verdict(entry: CorpusEntry) -> None:
    history = read_history(entry.path, entry.fmt)
    model = get_model(entry.model, **entry.model_args)
    result = linearizable(history, model=model, time_limit_s=60)
    assert result.error is None, result.error
    assert result.valid is entry.expected, (entry.relpath, result.details.get("reason"))
    if result.valid is False:
        ce = result.details["counterexample"]
        assert ce["could_not_place"]
        assert isinstance(ce["state"], str)
