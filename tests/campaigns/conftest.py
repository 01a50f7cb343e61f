"""Fixtures the campaign tests share."""

from __future__ import annotations

import shutil

import pytest

from harness.lazyfs import available
from harness.pytest_plugin import require


@pytest.fixture
def lose_unsynced_layer() -> None:
    """HAProxy and the lose-unsynced FUSE layer, which the lose-unsynced and disk-error
    campaigns run on (a failure in CI, a skip elsewhere)."""
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    why = available()
    require(why is None, f"cannot mount the lose-unsynced layer: {why}")
