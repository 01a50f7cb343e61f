from __future__ import annotations

import json
from pathlib import Path

import edn_format
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import FormatError, HarnessError
from harness.formats import detect_format, parse_history, read_history, write_jsonl
from harness.formats.edn import dumps as edn_dumps
from harness.formats.edn import loads as edn_loads
from harness.formats.jsonl import dumps_op
from harness.history import History, Op, OpType
from harness.testing import history, info, invoke, ok

ETCD_LOG = """\
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:cas\t[0 3]
INFO  jepsen.util - 0\t:ok\t:read\t0
INFO  jepsen.util - 1\t:fail\t:cas\t[0 3]
INFO  jepsen.util - 2\t:invoke\t:write\t4
INFO  jepsen.util - 2\t:info\t:write\t:timed-out
"""

KV_LINES = """\
{:process 0, :type :invoke, :f :put, :key "1", :value "x"}
{:process 0, :type :ok, :f :put, :key "1", :value "x"}
{:process 1, :type :invoke, :f :get, :key "1", :value nil}
{:process 1, :type :ok, :f :get, :key "1", :value "x"}
"""

KNOSSOS = """\
; a comment
[{:process 0, :type :invoke, :f :write, :value 1}
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :cas, :value [1 2]}
 {:process 1, :type :fail, :f :cas, :value [1 2], :error :mismatch}]
"""


def test_etcd_log() -> None:
    h = parse_history(ETCD_LOG)
    calls = h.calls()
    assert [c.f for c in calls] == ["read", "cas", "write"]
    assert calls[0].value == 0
    assert calls[1].failed and calls[1].error == "mismatch" and calls[1].value == [0, 3]
    assert calls[2].indeterminate and calls[2].error == "timed-out" and calls[2].value == 4


def test_kv_lines_value_is_key_value_pair() -> None:
    h = parse_history(KV_LINES)
    assert [c.value for c in h.calls()] == [["1", "x"], ["1", "x"]]


def test_knossos_edn() -> None:
    h = parse_history(KNOSSOS)
    assert len(h) == 5
    assert h[1].process == "nemesis" and not h[1].is_client
    assert h.calls()[1].failed and h.calls()[1].error == "mismatch"


def test_jepsen_history_edn_lines_keep_index_and_time() -> None:
    text = (
        "{:index 7, :time 100, :type :invoke, :process 0, :f :read, :value nil}\n"
        "{:index 8, :time 250, :type :ok, :process 0, :f :read, :value 3, :node \"n1\"}\n"
    )
    h = parse_history(text)
    assert [op.index for op in h] == [7, 8] and [op.time for op in h] == [100, 250]
    assert h[1].node == "n1"


def test_detect_format() -> None:
    assert detect_format(ETCD_LOG) == "etcd-log"
    assert detect_format(KV_LINES) == "kv-lines"
    assert detect_format(KNOSSOS) == "edn"
    assert detect_format('{"type":"invoke"}') == "jsonl"
    assert detect_format("") == "jsonl"
    with pytest.raises(FormatError, match="--format"):
        detect_format("hello world")


def test_empty_history_is_empty() -> None:
    assert len(parse_history("")) == 0
    assert len(parse_history("[]", fmt="edn")) == 0


@pytest.mark.parametrize(
    ("text", "fmt", "line", "what"),
    [
        ('{"type":"invoke","process":0,"f":"read"}\n{"type":"ok",\n', "jsonl", 2, "invalid JSON"),
        ('{"type":"nope","process":0,"f":"read"}\n', "jsonl", 1, "'type' must be"),
        ('{"type":"invoke","f":"read"}\n', "jsonl", 1, "missing 'process'"),
        ('{"type":"invoke","process":0}\n', "jsonl", 1, "missing 'f'"),
        ('{"type":"invoke","process":[1],"f":"r"}\n', "jsonl", 1, "'process' must be"),
        ('{"type":"invoke","process":0,"f":"r","time":"x"}\n', "jsonl", 1, "'time' must be"),
        ("[1, 2]\n", "jsonl", 1, "must be a map"),
        ("[{:process 0 :type :invoke :f :read}\n {:process 0 :type}]", "edn", 2, "even number"),
        ("[{:process 0 :type :invoke :f :read}\n\n {:process 0 ", "edn", 3, "never closed"),
        ("[{:process 0 :type :invoke :f :read}\n {:process 0 :type :ok :f :read :value 1x}]",
         "edn", 2, "bad number"),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO garbage\n", "etcd-log", 2,
         "not a jepsen.util op line"),
        ('{:process 0, :type :invoke, :f :get, :value nil}\n', "kv-lines", 1, "missing :key"),
    ],
)
def test_malformed_input_names_file_line_and_cause(text: str, fmt: str, line: int,
                                                   what: str, tmp_path: Path) -> None:
    p = tmp_path / "h.txt"
    p.write_text(text)
    with pytest.raises(FormatError) as e:
        read_history(p, fmt)
    assert e.value.line == line
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert what in str(e.value)


def test_pairing_errors_are_harness_errors() -> None:
    with pytest.raises(HarnessError, match="no open invocation"):
        parse_history('{"type":"ok","process":0,"f":"read","value":1}\n')


def test_torn_last_jsonl_line_is_ignored() -> None:
    text = '{"type":"invoke","process":0,"f":"read"}\n{"type":"ok","pro'
    h = parse_history(text, fmt="jsonl")
    assert len(h) == 1 and h.indeterminate()


def test_run_folder_reads_its_history(tmp_path: Path) -> None:
    h = history(invoke(0, "read"), ok(0, "read", 1))
    write_jsonl(h, tmp_path / "history.jsonl")
    assert read_history(tmp_path) == h
    with pytest.raises(FormatError, match=r"no history\.jsonl"):
        read_history(tmp_path / "..")


def test_missing_file_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        read_history(tmp_path / "nope.jsonl")
    b = tmp_path / "b.jsonl"
    b.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_history(b)


# --- property tests ---------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=8,
)


@st.composite
def op_lists(draw: st.DrawFn) -> list[Op]:
    n = draw(st.integers(0, 12))
    ops = []
    open_: dict[int, str] = {}
    for i in range(n):
        p = draw(st.integers(0, 3))
        if p in open_:
            t = draw(st.sampled_from([OpType.OK, OpType.FAIL, OpType.INFO]))
            f = open_.pop(p)
        else:
            t, f = OpType.INVOKE, draw(st.sampled_from(["read", "write", "cas"]))
            open_[p] = f
        ops.append(Op(i, i * 10, t, p, f, draw(json_values),
                      draw(st.none() | st.text(max_size=5)), draw(st.none() | st.just("n1"))))
    return ops


@settings(max_examples=150, deadline=None)
@given(op_lists())
def test_jsonl_round_trip(ops: list[Op]) -> None:
    h = History(ops)
    text = "".join(dumps_op(op) + "\n" for op in h)
    assert parse_history(text, fmt="jsonl") == h


edn_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
    | st.sampled_from(["read", "write", "x", "timed-out"]).map(edn_format.Keyword)
)
edn_values = st.recursive(
    edn_scalars,
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]).map(edn_format.Keyword), kids, max_size=3),
    max_leaves=10,
)


def _plain(v: object) -> object:
    if isinstance(v, edn_format.Keyword):
        return v.name
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


@settings(max_examples=300, deadline=None)
@given(edn_values)
def test_edn_reader_agrees_with_edn_format(value: object) -> None:
    """Our fast reader reads what the edn-format package writes, exactly."""
    assert edn_loads(edn_format.dumps(value)) == _plain(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from([None, "jsonl", "edn", "etcd-log", "kv-lines"]))
def test_fuzz_readers_never_crash(text: str, fmt: str | None) -> None:
    """Any text either parses or raises a HarnessError with a message: never anything else."""
    try:
        parse_history(text, fmt=fmt, path="fuzz")
    except HarnessError as e:
        assert str(e)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(
    ['{"type":"invoke","process":0,"f":"read"}', '{"type":"ok","process":0,"f":"read"}',
     "{:type :invoke :process 1 :f :write :value 1}", "[", "]", "{", "}", ":f", "nil", "\"",
     "#_", "1.5", "\\c", "INFO  jepsen.util - 0\t:invoke\t:read\tnil", ";;", "#inst \"x\""]),
    max_size=12), st.sampled_from([None, "jsonl", "edn", "etcd-log", "kv-lines"]))
def test_fuzz_readers_with_format_fragments(parts: list[str], fmt: str | None) -> None:
    text = "\n".join(parts)
    try:
        parse_history(text, fmt=fmt, path="fuzz")
    except HarnessError as e:
        assert str(e)


def test_edn_writer_round_trips_an_op() -> None:
    inv = Op(2, 40, OpType.INVOKE, 1, "cas", [1, 2], None, "n2")
    op = Op(3, 42, OpType.FAIL, 1, "cas", [1, 2], "mismatch", "n2")
    text = edn_dumps(inv.to_dict()) + "\n" + edn_dumps(op.to_dict())
    back = parse_history(text, fmt="edn")
    assert back.ops == (inv, op)


def test_info_op_value_and_json_are_plain() -> None:
    h = history(invoke(0, "write", 1), info(0, "write", 1))
    assert json.loads(json.dumps([op.to_dict() for op in h]))[1]["error"] == "timeout"


# --- issue 14: nothing a reader meets may crash it ----------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "edn-vector", "edn-lines"])
def test_nesting_limit_is_the_same_in_every_reader(fmt: str) -> None:
    """A value nested MAX_DEPTH - 1 deep (inside its op's map) reads; one more level is
    refused with the line, in JSON and in both EDN layouts alike."""
    from harness.formats.records import MAX_DEPTH

    def text(depth: int) -> str:
        v = "[" * depth + "]" * depth
        if fmt == "jsonl":
            return ('{"type":"invoke","process":0,"f":"write"}\n'
                    f'{{"type":"invoke","process":1,"f":"write","value":{v}}}\n')
        op = f"{{:type :invoke :process 1 :f :write :value {v}}}"
        first = "{:type :invoke :process 0 :f :write}"
        return f"[{first}\n {op}]\n" if fmt == "edn-vector" else f"{first}\n{op}\n"

    parsed = parse_history(text(MAX_DEPTH - 1), fmt=fmt.split("-")[0], path="h")
    assert len(parsed) == 2
    with pytest.raises(FormatError, match=f"^h:2: nested deeper than {MAX_DEPTH} levels$"):
        parse_history(text(MAX_DEPTH), fmt=fmt.split("-")[0], path="h")


@pytest.mark.parametrize(("text", "fmt"), [
    ('{"type":"invoke","process":0,"f":"w","value":Infinity}\n', "jsonl"),
    ('{"type":"invoke","process":0,"f":"w","value":1e309}\n', "jsonl"),
    ('{"type":"invoke","process":0,"f":"w","time":NaN}\n', "jsonl"),
    ("{:type :invoke :process 0 :f :w :value ##Inf}\n", "edn"),
    ("{:type :invoke :process 0 :f :w :value -1e309}\n", "edn"),
    ("INFO  jepsen.util - 0\t:invoke\t:write\t1e309\n", "etcd-log"),
])
def test_non_finite_numbers_are_refused_with_their_line(text: str, fmt: str) -> None:
    """NaN never equals itself and 1e309 reads as infinity: either would turn a read into
    a false anomaly, so readers refuse them rather than pass them to a checker."""
    with pytest.raises(FormatError, match=r"^h:1: "):
        parse_history(text, fmt=fmt, path="h")


def test_load_history_reports_a_torn_line_as_a_warning(tmp_path: Path) -> None:
    from harness.formats import load_history

    p = tmp_path / "h.jsonl"
    p.write_text('{"type":"invoke","process":0,"f":"read"}\n{"type":"ok","pro')
    loaded = load_history(p)
    assert len(loaded.history) == 1 and loaded.fmt == "jsonl" and loaded.path == p
    (w,) = loaded.warnings
    assert (w.kind, w.path, w.line) == ("torn-line", str(p), 2)
    p.write_text('{"type":"invoke","process":0,"f":"read"}\n')
    assert load_history(p).warnings == ()
