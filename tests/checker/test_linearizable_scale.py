"""The checker's representation at scale: the window memo, retired indeterminate ops,
the memory bound in bytes, and partitions checked in worker processes.

Nothing here is timed: the speed goals are printed by ``harness bench large``.
These tests pin what makes the speed possible (the memo stays proportional to
the ops, not to their square) and that every shortcut keeps the verdict.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.bench.large import generate
from harness.checker import wgl
from harness.checker.linearizable import linearizable, parse_bytes
from harness.checker.models import get_model, strict_cas_register
from harness.checker.wgl import Search
from harness.cli import main
from harness.formats.jsonl import read_jsonl
from harness.history import History
from harness.testing import history, info, invoke, ok

MODEL = "strict-cas-register-per-key"


def _generated(ops: int, keys: int, concurrency: int, *, stale: bool = False) -> History:
    buf = io.StringIO()
    generate(buf, ops=ops, keys=keys, concurrency=concurrency, seed=7, stale_read=stale)
    return read_jsonl(buf.getvalue())


def test_a_long_single_key_history_keeps_a_memo_proportional_to_its_ops() -> None:
    h = _generated(20_000, 1, 5)
    r = linearizable(h, model=get_model(MODEL), workers=1)
    assert r.valid is True
    (stats,) = r.details["partition_stats"]
    # With the old whole-partition bitset, each of these entries was an int of 20,000 bits.
    assert stats["states"] <= 4 * stats["ops"]


def test_a_stale_read_in_a_long_history_is_found_and_named() -> None:
    buf = io.StringIO()
    gen = generate(buf, ops=20_000, keys=4, concurrency=8, seed=3, stale_read=True)
    stale = gen["stale_read"]
    assert stale is not None
    r = linearizable(read_jsonl(buf.getvalue()), model=get_model(MODEL), workers=1)
    assert r.valid is False
    cx = r.details["counterexample"]
    assert cx["key"] == stale["key"]
    assert stale["index"] in cx["could_not_place"]


def test_an_unobserved_indeterminate_write_is_dropped_and_an_observed_one_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wgl, "_RETIRE_MIN_OPS", 0)  # small partitions skip it otherwise
    model = strict_cas_register()
    h = history(
        invoke(0, "write", 1), info(0, "write", 1),     # read below: kept
        invoke(1, "write", 7), info(1, "write", 7),     # nobody reads 7: dropped
        invoke(2, "write", 2), ok(2, "write", 2),
        invoke(3, "read"), ok(3, "read", 1),
    )
    r = linearizable(h, model=model)
    assert r.valid is True
    from harness.checker.linearizable import prepare

    parts, _, _ = prepare(h, model)
    s = Search(model, parts[None])
    assert s.dropped_unobserved == 1
    assert [op.value for op in s.ops] == [1, 2, 1]


def test_a_retired_write_cannot_take_effect_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wgl, "_RETIRE_MIN_OPS", 0)
    # write(1) timed out; reads see 2, 1, then 2 again: write(1) took effect once, and
    # nothing wrote 2 after it, so the last read is impossible.
    h = history(
        invoke(0, "write", 1), info(0, "write", 1),
        invoke(1, "write", 2), ok(1, "write", 2),
        invoke(2, "read"), ok(2, "read", 2),
        invoke(3, "read"), ok(3, "read", 1),
        invoke(4, "read"), ok(4, "read", 2),
    )
    assert linearizable(h, model=strict_cas_register()).valid is False


@pytest.mark.parametrize("stale", [False, True])
def test_workers_agree_with_one_process(stale: bool) -> None:
    h = _generated(4_000, 4, 6, stale=stale)
    one = linearizable(h, model=get_model(MODEL), workers=1)
    two = linearizable(h, model=get_model(MODEL), workers=2)
    assert one.details["workers"] == 1 and two.details["workers"] == 2
    assert one.valid is two.valid is (not stale)
    if stale:
        assert one.details["counterexample"]["key"] == two.details["counterexample"]["key"]
    else:
        keys = [p["key"] for p in one.details["partition_stats"]]
        assert keys == [p["key"] for p in two.details["partition_stats"]]


def test_small_histories_stay_in_process() -> None:
    h = _generated(2_000, 4, 4)
    assert linearizable(h, model=get_model(MODEL)).details["workers"] == 1


def test_the_memory_bound_is_in_bytes_and_reaching_it_says_why() -> None:
    h = _generated(5_000, 1, 5)
    r = linearizable(h, model=get_model(MODEL), max_memory=100_000, workers=1)
    assert r.valid == "unknown"
    assert "memory bound reached" in r.details["reason"]
    assert "MiB" in r.details["reason"]


@pytest.mark.parametrize(("text", "n"), [
    ("1024", 1024), ("512M", 512 << 20), ("1G", 1 << 30), ("1.5g", 3 << 29),
    ("2GiB", 2 << 30), ("64k", 64 << 10), ("3MB", 3 << 20),
])
def test_sizes_parse(text: str, n: int) -> None:
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "nan", "12X", "inf"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_check_command_takes_max_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        generate(fh, ops=3_000, keys=1, concurrency=5, seed=1)
    code = main(["check", str(path), "--model", MODEL, "--max-memory", "50K", "--json"])
    rec = json.loads(capsys.readouterr().out)
    assert code == 2
    assert "memory bound reached" in rec["results"]["linearizable"]["reason"]
    assert main(["check", str(path), "--model", MODEL, "--max-memory", "1G"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["check", str(path), "--max-memory", "lots"])
    assert e.value.code == 2


def test_the_default_bound_is_what_the_cli_sets_for_run_and_check() -> None:
    from harness.checker.linearizable import DEFAULT_MEMORY_BYTES, set_default_max_memory

    h = _generated(3_000, 1, 5)
    prev = set_default_max_memory(50_000)
    try:
        r = linearizable(h, model=get_model(MODEL))
    finally:
        assert set_default_max_memory(prev) == 50_000
    assert r.valid == "unknown" and "memory bound reached" in r.details["reason"]
    assert set_default_max_memory(None) == DEFAULT_MEMORY_BYTES
    assert linearizable(h, model=get_model(MODEL)).valid is True
