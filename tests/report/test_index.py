"""The index of runs: newest first by start time, a killed run placed and described too."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from report_helpers import RunFactory, base_results

from harness.report import write_index
from harness.report.index import RunScan, folder_stamp, index_rows, last_record, scan_runs
from harness.testing import history, invoke, ok

T0 = time.mktime(time.strptime("20261130T100000", "%Y%m%dT%H%M%S"))


def finished(started: float, *, valid: bool = True) -> RunScan:
    res = base_results(valid=valid, checkers={}, op_count=2, started=started)
    return RunScan(res, stamp=started)


def test_a_killed_run_sorts_by_its_start_among_the_others() -> None:
    """It once showed "?" and sorted last, though it was among the newest."""
    killed = RunScan(None, "no results.json: the run did not finish (killed?)",
                     stamp=T0 + 60, history_mtime=T0 + 95,
                     last_op={"index": 4120, "time": 31_500_000_000, "type": "ok"},
                     schedule={"seed": 9, "faults": [{"kind": "kill"}, {"kind": "partition"},
                                                     {"kind": "kill"}]})
    rows = index_rows({"t/older": finished(T0), "t/killed": killed,
                       "t/newest": finished(T0 + 120, valid=False)})
    assert [r.folder for r in rows] == ["t/newest", "t/killed", "t/older"]
    row = rows[1]
    assert row.started == T0 + 60 and row.started_from == "folder" and row.date != "?"
    assert not row.finished and row.verdict == "unknown" and "did not finish" in row.problem
    # what is known: how far its history got, the faults it was to inject, its seed
    assert (row.op_count, row.duration_s) == (4121, 31.5)
    assert row.nemesis == "kill,partition" and row.seed == 9
    assert rows[0].started_from == "results" and rows[0].finished


def test_without_a_stamped_folder_the_history_mtime_places_a_run() -> None:
    odd = RunScan(None, "no results.json", stamp=None, history_mtime=T0 + 30)
    unknown = RunScan(None, "no results.json")
    rows = index_rows({"t/a": unknown, "t/b": odd, "t/c": finished(T0)})
    assert [r.folder for r in rows] == ["t/b", "t/c", "t/a"]
    assert rows[0].started_from == "history" and rows[0].nemesis == "?"
    assert rows[2].date == "?"


def test_results_without_a_start_fall_back_to_the_folder_name() -> None:
    res = base_results(valid=True, checkers={}, op_count=2)
    del res["started"]
    (row,) = index_rows({"t/x": RunScan(res, stamp=T0)})
    assert row.started == T0 and row.started_from == "folder"


def test_folder_stamps_and_torn_histories(tmp_path: Path) -> None:
    assert folder_stamp("20261130T100000") == T0 and folder_stamp("20261130T100000-2") == T0
    assert folder_stamp("latest") is None and folder_stamp("20269999T999999") is None
    hist = tmp_path / "history.jsonl"
    big = {"index": 1, "time": 5, "value": "v" * 200_000}  # longer than the first tail read
    hist.write_text(json.dumps({"index": 0, "time": 1}) + "\n" + json.dumps(big) + "\n"
                    + '{"index": 2, "ti')  # killed mid-write
    rec = last_record(hist)
    assert rec is not None and rec["index"] == 1
    hist.write_text("")
    assert last_record(hist) is None
    assert last_record(tmp_path / "missing.jsonl") is None


def test_the_index_page_lists_a_killed_run_where_it_belongs(make_run: RunFactory,
                                                             tmp_path: Path) -> None:
    h = history(invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]))
    reports = tmp_path / "reports"
    make_run(h, base_results(valid=True, checkers={}, op_count=2, started=T0),
             name="t/20261130T100000")
    make_run(h, base_results(valid=False, checkers={}, op_count=2, started=T0 + 120),
             name="t/20261130T100200")
    killed = make_run(h, {}, name="t/20261130T100100")
    (killed / "results.json").unlink()
    (killed / "schedule.json").write_text(json.dumps({"seed": 3, "faults": [
        {"kind": "pause", "start_s": 1.0, "duration_s": 1.0, "params": {}}]}))
    os.utime(killed / "history.jsonl", (T0 + 500, T0 + 500))
    scans = scan_runs(reports)
    assert scans[os.path.join("t", "20261130T100100")].results is None
    page = write_index(reports).read_text()
    links = re.findall(r'href="(t/[0-9T]+)/', page)  # no report.html: the folder
    assert links == ["t/20261130T100200", "t/20261130T100100", "t/20261130T100000"]
    killed_row = re.search(r'<tr class="run unfinished".*?</tr>', page, re.S)
    assert killed_row is not None
    cells = killed_row.group(0)
    assert "2026-11-30 10:01:00" in cells and ">pause<" in cells and ">3<" in cells
    assert "≥ 0.0" in cells and ">2<" in cells  # its two events, its last at 1 ns
