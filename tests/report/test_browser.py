"""Reports of real runs, opened in headless Chromium: no console errors, sections present.

Two runs of the reference system on the local backend: one with the seeded
``local_reads`` bug under a leader-isolating partition (invalid), one without
a bug (valid). Each report's DOM (after its script ran) is checked and a
screenshot is saved beside it as ``report.png``, for a person to look at.
A synthetic 100,000-op report is opened too, and must be drawn within 3 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_helpers import RunFactory, big_register_run

from harness.generator import Fault, FaultSchedule
from harness.pytest_plugin import require
from harness.report import write_index, write_report
from harness.runner import RunConfig, RunResult, run

pytestmark = pytest.mark.browser

LOAD_MS_MAX = 3000


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    require(exe is not None, "chromium is not installed (apt-get install -y chromium)")
    assert exe is not None
    return exe


def open_page(page: Path, *, screenshot: Path | None = None) -> tuple[str, str]:
    """The DOM after the page's script ran, and Chromium's log (console messages included)."""
    base = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
            "--window-size=1400,2400"]
    url = page.resolve().as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True,
                              text=True, timeout=60)
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    return dom.stdout, dom.stderr


def console_messages(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if ":CONSOLE" in ln]


def check_page(page: Path) -> str:
    """Open a report, save its screenshot beside it, and check what every report must have."""
    dom, log = open_page(page, screenshot=page.with_suffix(".png"))
    assert console_messages(log) == []
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    assert 'data-ready="1"' in body.group(0), body.group(0)
    assert "data-js-errors" not in body.group(0)
    for section in ("summary", "anomalies", "faults", "timeline", "plots", "logs"):
        assert f'id="{section}"' in dom
    assert '<svg class="tl"' in dom  # the script drew the first page of the timeline
    return dom


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """An invalid run (seeded bug) and a valid one, on the local backend."""
    chromium()
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    reports = tmp_path_factory.mktemp("reports")
    out: dict[str, RunResult] = {}
    for attempt in range(3):
        seed = 11 + attempt
        sched = FaultSchedule((Fault("partition", 1.0, 5.0, {"plan": "isolate-leader"}),),
                              seed=seed)
        r = run(RunConfig(workload="register", nemesis=("partition",), time_limit_s=8,
                          seed=seed, schedule=sched, bug="local_reads", reports_dir=reports,
                          rate_hz=60, through_lb=False, test="failing"))
        if r.valid is False:
            out["invalid"] = r
            break
    else:
        pytest.fail("local_reads was not caught in 3 runs: no failing report to look at")
    out["valid"] = run(RunConfig(workload="queue", nemesis=("kill",), time_limit_s=6, seed=5,
                                 reports_dir=reports, test="passing"))
    for r in out.values():
        write_report(r.run_dir)
    write_index(reports)
    return out


def test_failing_run_report_in_a_browser(runs: dict[str, RunResult]) -> None:
    r = runs["invalid"]
    dom = check_page(r.run_dir / "report.html")
    assert 'data-verdict="invalid"' in dom
    assert 'data-checker="linearizable" data-verdict="invalid"' in dom
    assert 'id="linearizability"' in dom and '<svg class="cx"' in dom
    assert 'class="op unplaced"' in dom
    print(f"screenshot: {r.run_dir / 'report.png'}")


def test_passing_run_report_in_a_browser(runs: dict[str, RunResult]) -> None:
    r = runs["valid"]
    assert r.valid is True, r.results
    dom = check_page(r.run_dir / "report.html")
    assert 'data-verdict="valid"' in dom and 'id="no-anomalies"' in dom
    assert 'data-checker="queue" data-verdict="valid"' in dom
    print(f"screenshot: {r.run_dir / 'report.png'}")


def test_index_in_a_browser(runs: dict[str, RunResult]) -> None:
    index = runs["valid"].run_dir.parent.parent / "index.html"
    dom, log = open_page(index, screenshot=index.with_suffix(".png"))
    assert console_messages(log) == []
    assert re.findall(r'<tr class="run" data-verdict="(\w+)">', dom) == ["valid", "invalid"]


def test_a_100k_op_report_draws_within_3_s(make_run: RunFactory) -> None:
    page = write_report(big_register_run(make_run, 100_000))
    dom = check_page(page)
    m = re.search(r'data-render-ms="(\d+)"', dom)
    assert m is not None
    print(f"100k-op report drawn {m.group(1)} ms after navigation start")
    assert int(m.group(1)) < LOAD_MS_MAX
