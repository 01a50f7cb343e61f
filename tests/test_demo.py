"""The README's main job until campaigns land: ``harness demo``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.analysis import check_history
from harness.examples import EXAMPLES, Example


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_example_gets_its_known_verdict(example: Example, seed: int) -> None:
    _, result = check_history(example.make(seed), model=example.model, checkers=example.checkers)
    assert result.valid is example.expected


@pytest.mark.corpus
def test_demo_command_end_to_end(harness_corpus: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "harness", "demo", "--corpus", str(harness_corpus),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every verdict matches what is known" in r.stdout
    assert "porcupine-kv" in r.stdout and "knossos" in r.stdout
    assert len(list(tmp_path.glob("*.jsonl"))) == len(EXAMPLES)
