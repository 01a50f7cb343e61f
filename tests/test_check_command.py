"""``harness check``'s exit-code contract: 0 valid, 1 only for a proven anomaly, 2 otherwise.

Scripts read exit 1 as "the system is broken", so a crash (a traceback exits
1), a misread file or a checker with nothing to judge must never produce it.
Each test here failed before issue 14 was fixed. Most call ``harness.cli.main``
in-process for speed: there an uncaught exception fails the test outright, and
the command's last-resort "internal error" line (a bug turned into exit 2) is
asserted absent, so a crash cannot hide behind either.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checker.models import MODELS
from harness.cli import main
from harness.examples import simulate_queue, simulate_register, simulate_work_items
from harness.formats import dumps_op, write_jsonl
from harness.formats.edn import dumps as edn_dumps
from harness.history import History
from harness.testing import history, invoke, ok

ROOT = Path(__file__).resolve().parent.parent

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def check(capsys: pytest.CaptureFixture[str]) -> Run:
    """``harness check ARGS`` in-process: (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["check", *map(str, args)])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


# --- inputs that crashed (traceback, exit 1) -------------------------------------------

_OP = '{"type":"invoke","process":0,"f":"read"'
_DEEP = "[" * 100_000 + "]" * 100_000
_DIGITS = "1" * 5000

CRASHERS = [
    # (name, content, --format or None, line, cause)
    ("nan.jsonl", _OP + ',"time":NaN}\n', None, 1, "NaN"),
    ("inf.jsonl", _OP + ',"time":1e400}\n', None, 1, "1e400 is out of range"),
    ("infvalue.jsonl", _OP + ',"value":-1e400}\n', None, 1, "out of range"),
    ("digits.jsonl", _OP + f',"value":{_DIGITS}}}\n', None, 1, "more than 4300 digits"),
    ("deep.jsonl", _OP + f',"value":{_DEEP}}}\n', None, 1, "nested deeper than"),
    ("deep2.jsonl", '{"type":"invoke","process":0,"f":"read"}\n' + _OP
     + f',"value":{"[" * 150 + "]" * 150}}}\n', None, 2, "nested deeper than"),
    ("inf.edn", "[{:process 0 :type :invoke :f :read :time 1e400}]\n", None, 1,
     "out of range"),
    ("nan.edn", "[{:process 0 :type :invoke :f :read :value ##NaN}]\n", None, 1, "##NaN"),
    ("digits.edn", f"[{{:process 0 :type :invoke :f :read :value {_DIGITS}}}]\n", None, 1,
     "more than 4300 digits"),
    ("deep.edn", f"[{{:process 0 :type :invoke :f :read\n :value {_DEEP}}}]\n", None, 2,
     "nested deeper than"),
    ("escape.edn", '[{:process 0 :type :invoke :f :read :value "\\uZZZZ"}]\n', None, 1,
     "escape"),
    ("digits.log", f"INFO  jepsen.util - 0\t:invoke\t:write\t{_DIGITS}\n", None, 1,
     "more than 4300 digits"),
    ("deep.log", f"INFO  jepsen.util - 0\t:invoke\t:write\t{_DEEP}\n", None, 1,
     "nested deeper than"),
    ("inf.kv", '{:process 0, :type :invoke, :f :put, :key "1", :value 1e999}\n', "kv-lines", 1,
     "out of range"),
    ("deep.kv", f'{{:process 0, :type :invoke, :f :put, :key "1", :value {_DEEP}}}\n',
     "kv-lines", 1, "nested deeper than"),
]


@pytest.mark.parametrize(("name", "content", "fmt", "line", "cause"), CRASHERS,
                         ids=[c[0] for c in CRASHERS])
def test_bad_numbers_and_nesting_exit_2_naming_file_and_line(
        check: Run, tmp_path: Path, name: str, content: str, fmt: str | None, line: int,
        cause: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    rc, out, err = check(*(["--format", fmt] if fmt else []), p)
    assert rc == 2
    msg = _one_error_line(err)
    assert msg.startswith(f"harness: {p}:{line}: "), msg
    assert cause in msg
    assert out == ""


def test_unreadable_inputs_exit_2_naming_the_file(check: Run, tmp_path: Path) -> None:
    """Root reads any file, so unreadability is simulated: bytes that are not UTF-8,
    a FIFO (reading it would hang), a folder without a history, and a run folder whose
    history.jsonl is itself a folder."""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"type":"invoke","process":0,"f":"read"}\n{"f":"\xff"}\n')
    rc, _, err = check(bad)
    assert rc == 2
    assert _one_error_line(err) == f"harness: {bad}:2: not UTF-8 text (byte 47, column 7)"

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rc, _, err = check(fifo)
    assert rc == 2 and _one_error_line(err).startswith(f"harness: {fifo}: not a regular file")

    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    rc, _, err = check(empty_dir)
    assert rc == 2 and _one_error_line(err) == f"harness: {empty_dir}: folder has no history.jsonl"

    run_dir = tmp_path / "run"
    (run_dir / "history.jsonl").mkdir(parents=True)
    rc, _, err = check(run_dir)
    assert rc == 2 and "is a folder" in _one_error_line(err)


def test_a_crash_end_to_end_is_one_line_without_traceback(tmp_path: Path) -> None:
    """The process as scripts see it (a traceback would exit 1)."""
    p = tmp_path / "h.jsonl"
    p.write_text(_OP + ',"time":NaN}\n')
    r = subprocess.run([sys.executable, "-m", "harness", "check", str(p)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr == f"harness: {p}:1: invalid JSON: NaN is not a number JSON allows\n"


# --- nothing to check ------------------------------------------------------------------

@pytest.mark.parametrize(("content", "cause"), [
    ("", "no operations"),
    ("\n\n", "no operations"),
    ("[]\n", "no operations"),
    ('{"type":"info","process":"nemesis","f":"start"}\n',
     "no client operations (only 1 event of named processes such as the nemesis)"),
    ('{"type":"invoke","process":"w","f":"x"}\n{"type":"ok","process":"w","f":"x"}\n',
     "no client operations (only 2 events of named processes such as the nemesis)"),
])
def test_a_history_without_operations_is_not_valid(check: Run, tmp_path: Path, content: str,
                                                   cause: str) -> None:
    p = tmp_path / "h.txt"
    p.write_text(content)
    for extra in ([], ["--model", "cas-register"], ["--checker", "stats"]):
        rc, out, err = check(*extra, p)
        assert rc == 2 and _one_error_line(err) == f"harness: {p}: {cause}"
        assert out == ""


# --- torn last line --------------------------------------------------------------------

def _torn(tmp_path: Path) -> Path:
    p = tmp_path / "torn.jsonl"
    h = history(invoke(0, "write", 1), ok(0, "write", 1))
    p.write_text("".join(dumps_op(op) + "\n" for op in h) + '{"type":"ok","pro')
    return p


def test_torn_last_line_is_a_warning_on_stderr(check: Run, tmp_path: Path) -> None:
    p = _torn(tmp_path)
    rc, out, err = check(p)
    assert rc == 0
    assert err == f"harness: warning: {p}:3: torn last line ignored (no newline at the end " \
                  "and not valid JSON, as a run killed mid-write leaves it)\n"
    assert "1 warning" in out


def test_torn_last_line_is_a_field_of_the_json_output(check: Run, tmp_path: Path) -> None:
    p = _torn(tmp_path)
    rc, out, err = check("--json", p)
    assert rc == 0 and "torn last line" in err
    rec = json.loads(out)
    assert rec["ignored_torn_line"] == 3
    assert rec["warnings"] == [f"{p}:3: torn last line ignored (no newline at the end and not "
                               "valid JSON, as a run killed mid-write leaves it)"]
    whole = tmp_path / "whole.jsonl"
    whole.write_text(p.read_text().rsplit("\n", 1)[0] + "\n")
    rc, out, err = check("--json", whole)
    assert rc == 0 and err == ""
    rec = json.loads(out)
    assert rec["ignored_torn_line"] is None and rec["warnings"] == []


# --- checkers and models that do not fit -----------------------------------------------

@pytest.fixture
def register_file(tmp_path: Path) -> Path:
    p = tmp_path / "register.jsonl"
    write_jsonl(simulate_register(1, ops=40), p)
    return p


@pytest.mark.parametrize("checker", ["queue", "fencing"])
def test_a_checker_that_does_not_fit_the_history_is_an_error(
        check: Run, register_file: Path, checker: str) -> None:
    rc, out, err = check("--checker", checker, register_file)
    assert rc == 2 and out == ""
    msg = _one_error_line(err)
    assert msg.startswith(f"harness: {register_file}: the {checker} checker does not fit")
    assert "read, write" in msg


def test_a_fitting_checker_still_runs(check: Run, tmp_path: Path) -> None:
    p = tmp_path / "w.jsonl"
    write_jsonl(simulate_work_items(1, items=5, bug="stale-token"), p)
    rc, out, _ = check("--checker", "fencing", "--json", p)
    assert rc == 1 and json.loads(out)["results"]["fencing"]["anomalies"]


def test_model_with_a_checker_that_ignores_it_is_an_error(check: Run, tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    write_jsonl(simulate_queue(1, ops=30), p)
    rc, out, err = check("--checker", "queue", "--model", "register", p)
    assert rc == 2 and out == ""
    assert _one_error_line(err) == ("harness: --model register applies only to the "
                                    "linearizable checker, and --checker queue does not run it")
    assert check("--checker", "queue", "--checker", "linearizable", "--model", "work-item",
                 p)[0] in (0, 2)


def test_unknown_model_lists_every_model(check: Run, register_file: Path) -> None:
    rc, _, err = check("--model", "nope", register_file)
    assert rc == 2
    assert _one_error_line(err) == ("harness: unknown model 'nope'; known: "
                                    + ", ".join(sorted(MODELS)))


def test_a_model_that_lacks_the_histories_operations_says_so(check: Run,
                                                             register_file: Path) -> None:
    rc, out, err = check("--model", "mutex", register_file)
    assert rc == 2 and out == ""
    assert _one_error_line(err).startswith(
        f"harness: {register_file}: model 'mutex' does not fit this history: model 'mutex' "
        "has no operation")


def test_a_misfit_model_is_not_invalid_even_after_an_illegal_read(check: Run,
                                                                  tmp_path: Path) -> None:
    """The search stops at the first illegal op, before it meets one the model lacks:
    that once gave exit 1 for a model that cannot judge the history."""
    p = tmp_path / "h.jsonl"
    write_jsonl(history(invoke(0, "write", 1), ok(0, "write", 1), invoke(0, "read"),
                        ok(0, "read", 2), invoke(0, "frob", 1), ok(0, "frob", 1)), p)
    rc, _, err = check("--model", "cas-register", p)
    assert rc == 2
    assert _one_error_line(err) == (
        f"harness: {p}: model 'cas-register' does not fit this history: model 'cas-register' "
        "has no operation 'frob' (value 1) (first at index 4)")
    rc, _, err = check("--model", "cas-register-per-key", p)
    assert rc == 2 and "value must be [key, value]" in err


# --- --time-limit ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0", "soon"])
def test_time_limit_must_be_positive_and_finite(check: Run, register_file: Path,
                                                value: str) -> None:
    with pytest.raises(SystemExit) as e:
        check(f"--time-limit={value}", register_file)
    assert e.value.code == 2


def test_time_limit_refusal_is_one_line(capsys: pytest.CaptureFixture[str],
                                        register_file: Path) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--time-limit", "nan", str(register_file)])
    assert _one_error_line(capsys.readouterr().err) == (
        "harness: argument --time-limit: must be a positive, finite number of seconds, "
        "got 'nan' (see --help)")
    assert main(["check", "--time-limit", "0.5", str(register_file)]) == 0


# --- history errors name the file and the line ------------------------------------------

@pytest.mark.parametrize(("name", "content", "fmt", "want"), [
    ("h.jsonl", '{"type":"invoke","process":0,"f":"read"}\n\n'
                '{"type":"ok","process":7,"f":"read","value":1}\n', None,
     ":3: process 7 completes 'read' with no open invocation"),
    ("h.jsonl", '{"type":"invoke","process":0,"f":"read"}\n'
                '{"type":"invoke","process":0,"f":"write","value":1}\n', None,
     ":2: process 0 invokes 'write' while its invocation at index 0 is still open "
     "(see line 1)"),
    ("h.edn", "[{:process 0 :type :invoke :f :read}\n\n {:process 0 :type :ok :f :write}]\n",
     None, ":3: completion f 'write' does not match invocation f 'read' at index 0 "
           "(see line 1)"),
    ("h.jsonl", '{"index":4,"type":"invoke","process":0,"f":"read"}\n'
                '{"index":4,"type":"invoke","process":1,"f":"read"}\n', None,
     ":2: duplicate index 4 (see line 1)"),
    ("h.log", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
              "INFO  jepsen.util - 1\t:ok\t:read\t1\n", None,
     ":2: process 1 completes 'read' with no open invocation"),
    ("h.kv", '{:process 0, :type :ok, :f :get, :key "1", :value nil}\n', "kv-lines",
     ":1: process 0 completes 'get' with no open invocation"),
])
def test_history_errors_name_file_and_line(check: Run, tmp_path: Path, name: str, content: str,
                                           fmt: str | None, want: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    rc, _, err = check(*(["--format", fmt] if fmt else []), p)
    assert rc == 2 and _one_error_line(err) == f"harness: {p}{want}"


# --- several files ---------------------------------------------------------------------

@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good, bad, err, slow = (tmp_path / n for n in ("good.jsonl", "bad.jsonl", "err.jsonl",
                                                    "empty.jsonl"))
    write_jsonl(simulate_queue(3, ops=60), good)
    write_jsonl(simulate_queue(3, ops=200, bug="lost"), bad)
    err.write_text('{"type":"ok","process":3,"f":"read"}\n')
    slow.write_text("")
    return {"good": good, "bad": bad, "err": err, "empty": slow}


def test_several_files_show_each_verdict_and_each_error(
        check: Run, files: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short names, so table cells do not wrap
    rc, out, err = check("good.jsonl", "err.jsonl", "bad.jsonl", "empty.jsonl")
    assert rc == 1  # the proven anomaly is not hidden by the errors
    assert err.splitlines() == [
        "harness: err.jsonl:1: process 3 completes 'read' with no open invocation",
        "harness: empty.jsonl: no operations",
    ]
    rows = {ln.split("│")[1].strip(): ln.split("│")[4].strip()
            for ln in out.splitlines() if ln.count("│") >= 5 and ln.split("│")[1].strip()}
    assert rows == {"good.jsonl": "valid", "bad.jsonl": "invalid", "err.jsonl": "error",
                    "empty.jsonl": "error"}


@pytest.mark.parametrize(("which", "want"), [
    (["good", "good"], 0),
    (["good", "err"], 2),
    (["err", "good"], 2),
    (["bad", "err"], 1),
    (["empty", "bad"], 1),
    (["good", "bad"], 1),
])
def test_several_files_exit_with_the_worst(check: Run, files: dict[str, Path],
                                           which: list[str], want: int) -> None:
    rc, out, _ = check("--json", *(files[w] for w in which))
    assert rc == want
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert [r["path"] for r in recs] == [str(files[w]) for w in which]
    for w, r in zip(which, recs, strict=True):
        assert r["valid"] == {"good": True, "bad": False}.get(w, "unknown")
        assert ("error" in r) == (w in ("err", "empty"))


# --- help ------------------------------------------------------------------------------

def test_help_shows_defaults_models_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 60)" in text
    for m in MODELS:
        assert re.search(rf"(?<![\w-]){re.escape(m)}(?![\w-])", text), m
    for code in ("0 every history is valid", "1 some history is invalid",
                 "2 no history is invalid"):
        assert code in text


def test_readme_lists_every_model() -> None:
    readme = (ROOT / "README.md").read_text()
    para = readme[readme.index("Checkers: `linearizable`"):]
    para = para[:para.index("\n\n")]
    models = set(re.findall(r"`([\w-]+)`", para[para.index("models"):para.index("), `queue`")]))
    assert models == set(MODELS)


# --- fuzz: any bytes, any damage to a valid history -------------------------------------

def _samples() -> list[tuple[str, bytes]]:
    """Valid histories in every format, small enough to check in milliseconds."""
    reg = simulate_register(2, ops=16, keys=1)
    reg_bad = simulate_register(3, ops=16, keys=1, bug="stale-read")
    q = simulate_queue(2, ops=16)
    w = simulate_work_items(2, items=3)

    def jsonl(h: History) -> bytes:
        return "".join(dumps_op(op) + "\n" for op in h).encode()

    def edn_vector(h: History) -> bytes:
        return ("[" + "\n ".join(edn_dumps(op.to_dict()) for op in h) + "]\n").encode()

    def edn_lines(h: History) -> bytes:
        return "".join(edn_dumps(op.to_dict()) + "\n" for op in h).encode()

    def etcd_log(h: History) -> bytes:
        def v(x: object) -> str:
            return "nil" if x is None else json.dumps(x).replace(",", "")
        return "".join(f"INFO  jepsen.util - {op.process}\t:{op.type}\t:{op.f}\t{v(op.value)}\n"
                       for op in h if op.is_client).encode()

    def kv_lines(h: History) -> bytes:
        out = []
        for op in h:
            key, val = op.value if isinstance(op.value, list) else ("k", op.value)
            out.append(f'{{:process {op.process}, :type :{op.type}, :f :{op.f}, :key "{key}", '
                       f':value {"nil" if val is None else val}}}\n')
        return "".join(out).encode()

    return [("jsonl", jsonl(reg)), ("jsonl", jsonl(reg_bad)), ("jsonl", jsonl(q)),
            ("jsonl", jsonl(w)), ("edn", edn_vector(reg)), ("edn", edn_lines(q)),
            ("etcd-log", etcd_log(reg)), ("kv-lines", kv_lines(reg))]


SAMPLES = _samples()


_NASTY = [b"NaN", b"-Infinity", b"1e400", b"-1e999", b"##NaN", b"##Inf", b"1" * 5000,
          b"[" * 300 + b"]" * 300, b"{" * 300, b'"\\uZZZZ"', b'"\\ud800"', b"1N", b"2.5M",
          b"\\u0041", b"#{1 1}", b'{[1] 2, "a" 3}', b"#_", b"1.5e3", b"-0"]
"""Values that crashed a reader or a checker, or might: put in place of a number."""


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """A valid sample with bytes or lines flipped, inserted, deleted or duplicated, or
    plain random bytes; the format is sniffed or forced (sometimes wrongly)."""
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=300))
        fmt = None
    else:
        fmt, data = draw(st.sampled_from(SAMPLES))
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            kind = rng.randrange(7)
            i = rng.randrange(len(buf) + 1)
            numbers = list(re.finditer(rb"-?\d+(\.\d+)?", buf))
            if kind == 6 and numbers:
                m = rng.choice(numbers)
                buf[m.start():m.end()] = rng.choice(_NASTY)
            elif kind == 0 and buf:
                buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
            elif kind == 1:
                buf[i:i] = bytes([rng.choice(b'[]{}":,\n\\ 019eE-#N')])
            elif kind == 2:
                del buf[i:i + rng.randrange(1, 8)]
            else:
                lines = bytes(buf).split(b"\n")
                j = rng.randrange(len(lines))
                if kind == 3:
                    del lines[j]
                elif kind == 4:
                    lines.insert(rng.randrange(len(lines) + 1), lines[j])
                else:
                    lines[j], lines[-1] = lines[-1], lines[j]
                buf = bytearray(b"\n".join(lines))
        data = bytes(buf)
        fmt = draw(st.sampled_from([None, None, None, fmt, fmt, "jsonl", "edn", "etcd-log",
                                    "kv-lines"]))
    return fmt, data


_EVIDENCE = {
    "linearizable": lambda r: bool(r.get("counterexample")),
    "queue": lambda r: any(r.get(f"{k}_count") for k in
                           ("lost", "duplicated", "unexpected", "failed_then_seen")),
    "fencing": lambda r: bool(r.get("anomalies")),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_fuzz_check_exits_0_1_or_2_and_1_only_with_an_anomaly(
        tmp_path_factory: pytest.TempPathFactory, sample: tuple[str | None, bytes]) -> None:
    fmt, data = sample
    p = tmp_path_factory.getbasetemp() / "fuzz.history"
    p.write_bytes(data)
    args = ["check", "--json", "--time-limit", "5", *(["--format", fmt] if fmt else []), str(p)]
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    assert rc in (0, 1, 2)
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue(), \
        err.getvalue()
    recs = [json.loads(ln) for ln in out.getvalue().splitlines()]
    if rc == 1:
        (rec,) = recs
        assert rec["valid"] is False
        bad = {k: r for k, r in rec["results"].items() if r["valid"] is False}
        assert bad and all(_EVIDENCE[k](r) for k, r in bad.items()), rec
    elif rc == 0:
        assert [r["valid"] for r in recs] == [True]
    else:
        assert err.getvalue().strip() or recs[0]["valid"] == "unknown"
        for line in err.getvalue().splitlines():
            assert line.startswith(f"harness: {p}") or line.startswith("harness: warning"), line
