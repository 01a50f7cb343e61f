"""``HasLogFiles``: a system's own log files are copied beside each node's output."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.cluster.local import LocalCluster
from harness.pytest_plugin import require
from harness.system import HasLogFiles
from harness.systems.refsys import ReferenceSystem


@dataclass
class WithLogFiles(ReferenceSystem):
    def log_files(self, node: str) -> tuple[str, ...]:
        return ("wal.log", "never-written.log")


def test_local_backend_copies_log_files(tmp_path: Path) -> None:
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    system = WithLogFiles()
    assert isinstance(system, HasLogFiles) and not isinstance(ReferenceSystem(), HasLogFiles)
    with LocalCluster(system, nodes=3, run_dir=tmp_path / "run", run_id="logfiles") as c:
        c.wait_ready(timeout_s=30)
        out = c.collect_logs(tmp_path / "logs")
    for n in ("n1", "n2", "n3"):
        copied = tmp_path / "logs" / f"{n}.wal.log"
        assert copied.is_file() and copied.stat().st_size > 0, sorted(out)
        assert out[f"{n}.wal.log"] == copied
        assert not (tmp_path / "logs" / f"{n}.never-written.log").exists()
