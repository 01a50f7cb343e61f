"""``python -m reference_system.local`` without ``--base-port`` picks free ports (it once put
HAProxy on port 0 and node 1 on port 1, then died with a traceback), and a bad port
range is one line and exit 2."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from reference_system.local import http_json

ROOT = Path(__file__).resolve().parents[2]


def test_default_ports_are_free_ones(tmp_path: Path) -> None:
    p = subprocess.Popen(
        [sys.executable, "-m", "reference_system.local", "--nodes", "3", "--data-dir",
         str(tmp_path), "--", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        assert p.stdout is not None
        lines = [p.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("cluster in"), lines
        ports = [int(m) for ln in lines for m in re.findall(r"127\.0\.0\.1:(\d+)", ln)]
        assert len(ports) >= 3 and all(port > 1024 for port in ports), lines
        assert http_json(ports[0], "POST", "/kv/k", {"value": 1})[0] == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_a_port_range_past_65535_is_one_line_and_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "reference_system.local", "--base-port", "65500"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "base port 65500" in r.stderr
