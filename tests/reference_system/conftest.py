"""Fixtures for the reference system's process-level tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_system.local import LocalCluster, free_base_port

# The process-level tests share helpers in refsys_helpers.py beside this file;
# make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from refsys_helpers import NODE_ARGS


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A 3-node cluster (no workers, no load balancer), killed afterwards."""
    with LocalCluster(
        3, base_port=free_base_port(), data_dir=tmp_path, node_args=NODE_ARGS, haproxy=False
    ) as c:
        yield c
