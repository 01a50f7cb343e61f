"""``harness check``: re-analyse stored or foreign histories.

The exit code is a contract that scripts read (see ``harness check --help``):
0 when every history is valid, 1 when some history holds a *proven* anomaly,
2 otherwise (unknown, or an error). An exit of 1 must therefore never come
from a crash or a misread file: every failure to read or check one history is
caught here, becomes one line on stderr naming the file (and the line when
there is one), and counts as "unknown" for the exit code. A proven anomaly in
one history still wins over an error in another, so it is never hidden.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.analysis import CheckPlan, check_history, misfit, plan_checks, summarize
from harness.checker.result import UNKNOWN, Result, Validity, merge_validity
from harness.cli import dump_json, exit_code
from harness.errors import FormatError, FormatWarning, HarnessError, ModelError
from harness.formats import (
    FORMATS,
    MAX_HISTORY_BYTES,
    LoadedHistory,
    detect_format,
    load_history,
    resolve_history_path,
)
from harness.formats.jsonl import stream_jsonl
from harness.history import History, OpType

__all__ = ["check_command", "load_for_check", "verdict_style"]


def verdict_style(verdict: str) -> str:
    return {"valid": "green", "invalid": "bold red", "unknown": "yellow",
            "error": "yellow"}.get(verdict, "")


@dataclass
class _Outcome:
    """What became of one path: a verdict, or the one-line error that stopped it."""

    raw: str
    loaded: LoadedHistory | None = None
    plan: CheckPlan | None = None
    result: Result | None = None
    error: str | None = None
    warnings: list[FormatWarning] = field(default_factory=list)

    @property
    def valid(self) -> Validity:
        return UNKNOWN if self.result is None else self.result.valid


def check_command(args: argparse.Namespace) -> int:
    _check_options(args)
    outcomes = [_check_one(raw, args) for raw in args.paths]
    for o in outcomes:
        if o.error is not None:
            # Only the error: the warnings qualify a verdict, and there is none.
            sys.stderr.write(f"harness: {o.error}\n")
            continue
        for w in o.warnings:
            sys.stderr.write(f"harness: warning: {_one_line(str(w))}\n")
        if o.result is not None:
            for name, r in o.result.details["results"].items():
                if r.error:  # a checker that crashed or met an op its model lacks
                    where = o.loaded.path if o.loaded is not None else o.raw
                    sys.stderr.write(f"harness: {where}: {name}: {_one_line(r.error)}\n")
    if args.json:
        for o in outcomes:
            sys.stdout.write(dump_json(_json_record(o)) + "\n")
    elif any(o.result is not None for o in outcomes):
        _print_table(outcomes)
    return exit_code(merge_validity([o.valid for o in outcomes]))


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that cannot apply, before any file is read: one error, not one per file."""
    from harness.checker.models import MODELS

    if args.fmt is not None and args.fmt not in FORMATS:
        raise HarnessError(f"unknown format {args.fmt!r}; known: {', '.join(FORMATS)}")
    if args.model is not None:
        if args.model not in MODELS:
            raise HarnessError(f"unknown model {args.model!r}; known: {', '.join(sorted(MODELS))}")
        if args.checkers and "linearizable" not in args.checkers:
            raise HarnessError(
                f"--model {args.model} applies only to the linearizable checker, and "
                f"--checker {', '.join(args.checkers)} does not run it")


def _check_one(raw: str, args: argparse.Namespace) -> _Outcome:
    out = _Outcome(raw)
    try:
        out.loaded = load_for_check(raw, args.fmt)
        out.warnings = list(out.loaded.warnings)
        history = out.loaded.history
        if not history.calls():
            n = len(history)
            raise HarnessError("no operations" if n == 0 else
                               f"no client operations (only {n} event{'s' if n > 1 else ''} "
                               "of named processes such as the nemesis)")
        for name in args.checkers or ():
            why = misfit(name, history)
            if why is not None:
                raise HarnessError(why)
        model = args.model or _run_model(raw)
        why = _model_misfit(plan_checks(history, fmt=out.loaded.fmt, model=model,
                                        checkers=args.checkers), history)
        if why is not None:
            raise HarnessError(why)
        out.plan, out.result = check_history(
            history,
            fmt=out.loaded.fmt,
            model=model,
            checkers=args.checkers,
            time_limit_s=args.time_limit_s,
            allow_duplicates=args.allow_duplicates,
        )
    except FormatError as e:
        out.error = _one_line(str(e) if e.path is not None else f"{raw}: {e}")
    except HarnessError as e:
        where = out.loaded.path if out.loaded is not None else raw
        out.error = _one_line(f"{where}: {e}")
    except Exception as e:  # a bug: still one line and exit 2, never a traceback read as 1
        where = out.loaded.path if out.loaded is not None else raw
        out.error = _one_line(f"{where}: internal error ({type(e).__name__}: {e}); "
                              "please report it")
    return out


def load_for_check(raw: str, fmt: str | None = None) -> LoadedHistory:
    """:func:`~harness.formats.load_history`, except that a JSONL history is streamed.

    A long run's history is hundreds of MB; reading it whole holds its bytes
    and their decoded text (twice its size) besides the ops, so JSONL (given,
    or sniffed from the file's first 64 KiB) is parsed line by line from the
    file. Every other format, and anything the sniffing cannot place, goes
    through ``load_history`` with its own errors.
    """
    if fmt not in (None, "jsonl"):
        return load_history(raw, fmt)
    p = resolve_history_path(raw)
    try:
        if p.stat().st_size > MAX_HISTORY_BYTES:
            return load_history(raw, fmt)  # it says why
        if fmt is None:
            with open(p, "rb") as fh:
                head = fh.read(1 << 16)
            try:
                if detect_format(head.decode("utf-8", errors="strict")) != "jsonl":
                    return load_history(raw, fmt)
            except (UnicodeDecodeError, FormatError):
                return load_history(raw, fmt)  # a cut multi-byte character, or not ours
        warnings: list[FormatWarning] = []
        history = stream_jsonl(p, warnings=warnings)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", path=str(p)) from None
    return LoadedHistory(history, p, "jsonl", tuple(warnings))


def _model_misfit(plan: CheckPlan, history: History) -> str | None:
    """Why the plan's model cannot judge the history's operations, or None.

    The linearizability search stops at the first illegal partition, so an op
    the model does not know (a ``ModelError``) may never be reached and a
    misfit model could end in a verdict of "invalid". Each operation name is
    therefore tried once, up front, on the model's initial state, with its first
    ok call (a state-dependent refusal is ``INCONSISTENT``, not an error; an
    indeterminate call may legitimately be refused as ambiguous, so none is
    tried). Anything but a ``ModelError`` is left for the checker to report.
    """
    if "linearizable" not in plan.checkers or plan.model is None:
        return None
    from harness.checker.models import Operation, get_model

    model = get_model(plan.model)
    tried: set[str] = set()
    for call in history.calls():
        if call.f in tried or not call.ok:
            continue
        tried.add(call.f)
        try:
            model.step(model.init(), Operation(call.f, call.value, OpType.OK, call.error))
        except ModelError as e:
            cause = str(e) if len(str(e)) <= 200 else str(e)[:200] + "..."  # a drain's items
            return (f"model {plan.model!r} does not fit this history: {cause} "
                    f"(first at index {call.invoke.index})")
        except Exception:  # not a misfit; the checker reports it if it matters
            continue
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _json_record(o: _Outcome) -> dict[str, Any]:
    torn = [w.line for w in o.warnings if w.kind == "torn-line"]
    rec: dict[str, Any] = {
        "path": o.raw,
        "valid": o.valid,
        "warnings": [str(w) for w in o.warnings],
        "ignored_torn_line": torn[0] if torn else None,
    }
    if o.error is not None:  # could not be checked: "valid" is "unknown"
        rec["error"] = o.error
    if o.loaded is not None:
        rec["format"] = o.loaded.fmt
    if o.plan is not None:
        rec["model"] = o.plan.model
    if o.result is not None:
        rec["results"] = o.result.details["results"]
    return rec


def _print_table(outcomes: list[_Outcome]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title="verdicts")
    for col in ("history", "ops", "checker", "verdict", "why"):
        table.add_column(col)
    for o in outcomes:
        name = escape(o.raw)
        if o.result is None or o.plan is None or o.loaded is None:
            table.add_row(name, "", "", f"[{verdict_style('error')}]error[/]",
                          escape(o.error or ""))
            continue
        n = str(len(o.loaded.history))
        if o.warnings:
            n += f" ({len(o.warnings)} warning{'s' if len(o.warnings) > 1 else ''})"
        for checker, r in o.result.details["results"].items():
            label = checker if checker != "linearizable" else f"linearizable ({o.plan.model})"
            table.add_row(name, n, escape(label),
                          f"[{verdict_style(r.verdict)}]{r.verdict}[/]", escape(summarize(r)))
    console.print(table)


def _run_model(raw: str) -> str | None:
    """The model a run folder's own check used (its ``results.json``), so that
    ``harness check <run dir>`` agrees with the run's verdict; None otherwise."""
    p = Path(raw) / "results.json"
    if not p.is_file():
        return None
    try:
        lin = json.loads(p.read_text()).get("results", {}).get("linearizable") or {}
    except (OSError, ValueError, AttributeError):
        return None
    model = lin.get("model") if isinstance(lin, dict) else None
    return model if isinstance(model, str) else None
