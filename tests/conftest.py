"""Shared test helpers beside this file (``fault_fakes``) importable whatever
pytest's import mode, as ``tests/reference_system/conftest.py`` does for its own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
