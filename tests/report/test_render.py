"""The report page and the index, rendered from synthetic run folders (no cluster, no browser)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from report_helpers import RunFactory, base_results, big_register_run

from harness.checker import fencing, get_model, linearizable, queue
from harness.cli import main
from harness.errors import HarnessError
from harness.history import History, Op, OpType
from harness.report import write_index, write_report
from harness.report.render import load_run, replay_command
from harness.testing import history, invoke, ok

SIZE_LIMIT_BYTES = 5 * 1024 * 1024


def assert_self_contained(page: str) -> None:
    """Nothing the browser would fetch: no remote src/href, stylesheet links or imports."""
    assert not re.search(r'\b(?:src|href)\s*=\s*"(?:https?:)?//', page)
    assert "<link" not in page and "@import" not in page and "url(http" not in page


def invalid_register_run(make_run: RunFactory, **kw: Any) -> Path:
    h = History([replace_time(op, i) for i, op in enumerate(history(
        Op(-1, -1, OpType.INFO, "nemesis", "start-partition",
           {"grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}, "plan": "isolate-one"}),
        invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]),
        invoke(1, "write", ["x", 2]), ok(1, "write", ["x", 2]),
        invoke(2, "read", ["x", None]), ok(2, "read", ["x", 1]),
        Op(-1, -1, OpType.INFO, "nemesis", "stop-partition", {"fault": "heal-network"}),
    ))])
    lin = linearizable(h, model=get_model("cas-register-per-key")).to_dict()
    res = base_results(valid=False, checkers={"linearizable": lin}, op_count=len(h))
    logs = {"n1.log": "2026-11-25 09:53:43,653 node1 INFO hello\n",
            "haproxy.log": "[WARNING] (1) : Server nodes/n1 is DOWN\n"}
    lb = [{"time": 0, "server": "n1", "status": "UP", "check": "L7OK"},
          {"time": 3_000_000, "server": "n1", "status": "DOWN", "check": "L7STS"}]
    return make_run(h, res, logs=logs, lb=lb, **kw)


def replace_time(op: Op, i: int) -> Op:
    from dataclasses import replace

    return replace(op, time=i * 1_000_000)


def test_report_of_a_failing_run_has_the_counterexample(make_run: RunFactory) -> None:
    run = invalid_register_run(make_run)
    out = write_report(run)
    assert out == run / "report.html"
    page = out.read_text()
    assert_self_contained(page)
    assert 'data-verdict="invalid"' in page
    assert 'id="linearizability"' in page and 'class="cx"' in page
    assert 'data-checker="linearizable" data-verdict="invalid"' in page
    assert "partition isolate-one: n1 | n2 n3, healed" in page  # the fault table
    assert "harness run --system refsys" in page and "--seed 7" in page
    assert 'href="logs/n1.log"' in page and 'href="history.jsonl"' in page
    assert page.count("<svg") >= 4  # counterexample, latency, throughput, quantiles


def test_report_of_a_queue_run_has_trails(make_run: RunFactory) -> None:
    def q(i: str, **kw: Any) -> dict[str, Any]:
        return {"id": i, **kw}

    h = history(invoke(0, "enqueue", q("a")), ok(0, "enqueue", q("a")),
                invoke(1, "claim"), ok(1, "claim", q("a", token=1)),
                invoke(2, "claim"), ok(2, "claim", q("a", token=2)),
                invoke(1, "complete", q("a", token=1)), ok(1, "complete", q("a", token=1)),
                invoke(2, "complete", q("a", token=2)), ok(2, "complete", q("a", token=2)),
                invoke(0, "enqueue", q("b")), ok(0, "enqueue", q("b")))
    results = {"queue": queue(h).to_dict(), "fencing": fencing(h).to_dict()}
    run = make_run(h, base_results(valid=False, checkers=results, op_count=len(h),
                                   workload="queue"))
    page = write_report(run).read_text()
    assert_self_contained(page)
    for section in ('id="queue-lost"', 'id="queue-duplicated"',
                    'id="fencing-double-completion"', 'id="item-lost-b"'):
        assert section in page
    assert 'id="linearizability"' not in page


def test_report_of_a_valid_run_says_no_anomalies(make_run: RunFactory) -> None:
    h = history(invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]))
    lin = linearizable(h, model=get_model("cas-register-per-key")).to_dict()
    run = make_run(h, base_results(valid=True, checkers={"linearizable": lin}, op_count=2))
    page = write_report(run).read_text()
    assert 'data-verdict="valid"' in page and 'id="no-anomalies"' in page


def test_an_unfinished_run_still_gets_a_report(make_run: RunFactory) -> None:
    run = invalid_register_run(make_run)
    (run / "results.json").unlink()
    (run / "schedule.json").write_text(json.dumps({"seed": 41, "faults": [
        {"kind": "partition", "start_s": 0.0, "duration_s": 1.0,
         "params": {"plan": "isolate-one"}}]}))
    page = write_report(run).read_text()
    assert "did not finish" in page and 'data-verdict="unknown"' in page
    # what a killed run left says when it began, what it was doing, and how far it got
    assert "started 2026-01-01 00:00:00 (from the folder name)" in page
    assert "<td>partition (from schedule.json)</td>" in page and "<code>41</code>" in page
    assert "at least 0.007 s" in page and "(ok 3)" in page


def test_not_a_run_folder_is_a_harness_error(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(HarnessError, match=r"no history\.jsonl"):
        load_run(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run folder" in err


def test_report_command_writes_reports_and_the_index(make_run: RunFactory, tmp_path: Path,
                                                     capsys: Any) -> None:
    older = invalid_register_run(make_run, name="alpha/20260101T000000")
    newer_h = history(invoke(0, "write", ["x", 1]), ok(0, "write", ["x", 1]))
    newer = make_run(newer_h, base_results(valid=True, checkers={}, op_count=2,
                                           started=1_795_700_000.0, test="beta"),
                     name="beta/20260102T000000")
    broken = tmp_path / "reports" / "gamma" / "20260103T000000"
    broken.mkdir(parents=True)
    (broken / "history.jsonl").write_text("")
    (broken / "results.json").write_text("{not json")
    (tmp_path / "reports" / "beta" / "latest").symlink_to("20260102T000000")
    assert main(["report", str(older), str(newer)]) == 0
    printed = capsys.readouterr().out.split()
    index = tmp_path / "reports" / "index.html"
    assert printed == [str(older / "report.html"), str(newer / "report.html"), str(index)]
    page = index.read_text()
    assert_self_contained(page)
    rows = re.findall(r'<tr class="run[\w ]*" data-verdict="(\w+)">', page)
    # newest first; the unreadable run by its folder's name (2026-01-03, the oldest)
    assert rows == ["valid", "invalid", "unknown"]
    assert page.index("beta/20260102T000000/report.html") < page.index(
        "alpha/20260101T000000/report.html")
    assert "unreadable results.json" in page
    assert page.count("beta/20260102T000000/report.html") == 1  # latest links skipped


def test_write_index_of_an_empty_folder(tmp_path: Path) -> None:
    assert "No runs yet" in write_index(tmp_path / "nothing").read_text()


def test_replay_command_repeats_the_run() -> None:
    res = base_results(valid=True, checkers={}, op_count=0)
    res["config"]["bug"] = "local_reads"
    cmd = replay_command(res, Path("/r/t/1"))
    assert cmd == ("harness run --system refsys --workload register --time-limit 10.0 "
                   "--concurrency 5 --rate 50.0 --backend local --nodes 3 --bug local_reads "
                   "--test synthetic --nemesis partition --seed 7 --replay /r/t/1/results.json")


def test_a_100k_op_report_stays_under_5_mb(make_run: RunFactory) -> None:
    run = big_register_run(make_run, 100_000)
    t0 = time.perf_counter()
    out = write_report(run)
    elapsed = time.perf_counter() - t0
    size = out.stat().st_size
    print(f"100k-op report: {size / 1e6:.2f} MB in {elapsed:.1f} s")
    assert size < SIZE_LIMIT_BYTES
    page = out.read_text()
    assert_self_contained(page)
    assert "calls shown: the fastest" in page  # the latency plot says it is downsampled
    blob = re.search(r'id="timeline-data">([^<]+)</script>', page)
    assert blob is not None
    tl = json.loads(gzip.decompress(base64.b64decode(blob.group(1))))
    # every call is in the timeline's data, none dropped to fit, on several pages
    assert len(tl["cols"]["s"]) == len(load_run(run).history.calls())
    assert len(tl["pages"]) > 1


def timeline_data(page: str) -> dict[str, Any]:
    blob = re.search(r'id="timeline-data">([^<]+)</script>', page)
    assert blob is not None
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(blob.group(1))))
    return data


def test_retries_and_replica_reads_render_without_clutter(make_run: RunFactory) -> None:
    """Rows per worker, retries and process ids in the data, the replicas' reads (each a
    whole replica's state) neither as timeline marks nor as faults."""
    from dataclasses import replace as dc_replace

    from test_timeline import two_workers

    ops = list(two_workers())  # 14 client events, then the replicas' reads
    heal = Op(14, 40_000_000_000, OpType.INFO, "nemesis", "heal-all",
              {"fault": "heal-all", "resumed": [], "restarted": ["n1"], "removed": []})
    h = History([*ops[:14], heal, *(dc_replace(op, index=op.index + 1) for op in ops[14:])])
    res = base_results(valid=True, checkers={}, op_count=len(h))
    res["config"]["concurrency"] = 2
    page = write_report(make_run(h, res)).read_text()
    tl = timeline_data(page)
    assert tl["cols"]["lanes"] == ["w0", "w1", "final"]
    assert tl["cols"]["p"] == [0, 1, 2, 1, 4, 1_000_020, 2_000_020]
    assert tl["cols"]["r"][2] == 0  # the retry of op 0
    assert [m["f"] for m in tl["marks"]] == ["heal-all"]
    assert tl["marks"][0]["v"] == "heal-all: restarted n1"
    assert tl["pages"][0][2] == 20_000_000  # µs: the first call, not the run's start
    assert "big state" not in page
    assert "heal-all: restarted n1" in page  # the faults table, in words
    assert "one row per client thread" in page


def test_the_fault_table_says_what_was_done(make_run: RunFactory) -> None:
    run = invalid_register_run(make_run)
    page = write_report(run).read_text()
    table = re.search(r'<table class="ops faults".*?</table>', page, re.S)
    assert table is not None
    cells = re.findall(r'<td class="what"[^>]*>([^<]*)</td>', table.group(0))
    assert cells == ["partition isolate-one: n1 | n2 n3, healed"]
