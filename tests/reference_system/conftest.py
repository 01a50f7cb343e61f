"""Fixtures for the reference system's process-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_system.local import LocalCluster, free_base_port

FAST_NODE_ARGS = ("--lease-ms", "1500", "--request-timeout-s", "3", "--log-level", "WARNING")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A 3-node cluster (no workers, no load balancer), killed afterwards."""
    with LocalCluster(
        3, base_port=free_base_port(), data_dir=tmp_path, node_args=FAST_NODE_ARGS, haproxy=False
    ) as c:
        yield c
