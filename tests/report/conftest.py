"""Fixtures for the report tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The report tests share helpers in report_helpers.py beside this file; make it
# importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_helpers import RunFactory, write_run

from harness.history import History


@pytest.fixture
def make_run(tmp_path: Path) -> RunFactory:
    """``make_run(history, results, name=...)``: a run folder under ``tmp_path/reports``."""

    def make(history: History, results: dict[str, Any], *, name: str = "t/20260101T000000",
             **kw: Any) -> Path:
        return write_run(tmp_path / "reports" / name, history, results, **kw)

    return make
