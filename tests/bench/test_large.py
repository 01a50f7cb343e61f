"""``harness bench large``'s generator, and the JSONL fast path it leans on.

The generator's histories are only worth timing if their verdicts are known:
the valid one is checked valid and the stale-read one invalid, at a small
size. The fast path of the JSONL reader must build exactly the ops the
generic record path builds, line for line, and streaming a file must equal
parsing its text.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.bench.large import MODEL, generate
from harness.checker.linearizable import linearizable
from harness.checker.models import get_model
from harness.commands.check import load_for_check
from harness.errors import FormatError, FormatWarning
from harness.formats.jsonl import _decode, read_jsonl, stream_jsonl
from harness.formats.records import build_history, op_from_record
from harness.history import History


def _text(**kw: object) -> str:
    buf = io.StringIO()
    generate(buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _generic(text: str) -> History:
    """The reader's generic path alone: every line through ``op_from_record``."""
    lines = [s for s in text.split("\n") if s.strip()]
    ops = [op_from_record(_decode(s), position=i, path=None, line=i + 1)
           for i, s in enumerate(lines)]
    return build_history(ops, list(range(1, len(ops) + 1)), path=None)


def test_the_generator_is_seeded() -> None:
    a = _text(ops=500, keys=3, concurrency=4, seed=5)
    assert a == _text(ops=500, keys=3, concurrency=4, seed=5)
    assert a != _text(ops=500, keys=3, concurrency=4, seed=6)
    h = read_jsonl(a)
    assert len(h.calls()) == 500
    assert sum(c.indeterminate for c in h.calls()) > 0


def test_generated_verdicts_are_the_expected_ones() -> None:
    model = get_model(MODEL)
    good = read_jsonl(_text(ops=3_000, keys=3, concurrency=6, seed=2))
    assert linearizable(good, model=model).valid is True
    buf = io.StringIO()
    gen = generate(buf, ops=3_000, keys=3, concurrency=6, seed=2, stale_read=True)
    assert gen["stale_read"] is not None
    assert linearizable(read_jsonl(buf.getvalue()), model=model).valid is False


def test_the_fast_path_builds_what_the_generic_path_builds() -> None:
    text = _text(ops=2_000, keys=4, concurrency=5, seed=9)
    odd = [  # lines the fast path must leave to the generic one, or parse identically
        {"index": 4000, "time": 1, "type": "invoke", "process": 900, "f": "write",
         "value": [1, 2], "error": "x"},
        {"index": 4001, "time": 2, "type": "info", "process": 900, "f": "write",
         "value": [1, 2], "node": "n1"},
        {"index": 4002, "time": 3, "type": "invoke", "process": 901, "f": "read",
         "value": {"a": [1, {"b": None}], "c": "},\"value\":"}},
        {"index": 4003, "time": 4, "type": "ok", "process": 901, "f": "read",
         "value": 1.5, "extra_key": True},
        {"index": 4004, "time": 5, "type": "invoke", "process": 902, "f": "read",
         "value": "x" * 100},
        {"index": 4005, "time": 6, "type": "ok", "process": 902, "f": "read",
         "value": "x" * 100},
    ]
    text += "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in odd)
    text += '{"index":4006,"time":7,"type":"invoke","process":903,"f":"read","value":null}\r\n'
    fast = read_jsonl(text)
    assert list(fast) == list(_generic(text))
    assert [c.value for c in fast.calls()] == [c.value for c in _generic(text).calls()]


@pytest.mark.parametrize("bad", [
    '{"index":0,"time":0,"type":"invoke","process":0,"f":"read","value":NaN}',
    '{"index":0,"time":0,"type":"invoke","process":0,"f":"read","value":1e400}',
    '{"index":01,"time":0,"type":"invoke","process":0,"f":"read","value":1}',
    '{"index":0,"time":0,"type":"invoke","process":0,"f":"read","value":[1,}',
])
def test_values_the_decoder_refuses_are_errors_on_both_paths(bad: str) -> None:
    with pytest.raises(FormatError) as e:
        read_jsonl(bad + "\n")
    assert e.value.line == 1


def test_streaming_a_file_equals_parsing_its_text(tmp_path: Path) -> None:
    text = _text(ops=1_000, keys=2, concurrency=4, seed=4)
    torn = text + '{"index":2000,"time":9,"type":"inv'
    path = tmp_path / "h.jsonl"
    path.write_text(torn, encoding="utf-8")
    w1: list[FormatWarning] = []
    w2: list[FormatWarning] = []
    assert list(stream_jsonl(path, warnings=w1)) == list(read_jsonl(torn, warnings=w2))
    assert [w.line for w in w1] == [w.line for w in w2] == [2001]
    loaded = load_for_check(str(path))
    assert loaded.fmt == "jsonl" and len(loaded.warnings) == 1
    assert list(loaded.history) == list(read_jsonl(text))


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(_text(ops=3, keys=1, concurrency=1, seed=1).encode() + b'{"f":"\xff"}\n')
    with pytest.raises(FormatError) as e:
        load_for_check(str(path))
    assert e.value.line == 7
    assert "not UTF-8" in str(e.value)


def test_streaming_names_a_line_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    good = _text(ops=3, keys=1, concurrency=1, seed=1).encode()
    path.write_bytes(good + b'{"f":"\r\xff"}\n' + good)
    with pytest.raises(FormatError) as e:
        stream_jsonl(path)
    assert e.value.line == 7
    assert f"byte {len(good) + 7}, column 8" in str(e.value)


def test_the_bench_prints_right_verdicts_at_a_small_scale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.bench.large import main

    assert main(["--scale", "0.002", "--parse-mb", "0"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if " ops, " in ln]
    assert len(rows) == 3
    assert [ln.split()[-6:-4] for ln in rows] == [
        ["valid", "valid"], ["invalid", "invalid"], ["valid", "valid"]]
