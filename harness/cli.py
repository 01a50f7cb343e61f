"""The ``harness`` command.

Exit codes are the contract scripts rely on: 0 valid, 1 invalid, 2 unknown or
an error. A user's mistake (a bad file, a bad option) is one line on stderr
naming the cause and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["main"]

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 (argparse's own code too)."""

    def error(self, message: str) -> Any:
        sys.stderr.write(f"harness: {message} (see --help)\n")
        raise SystemExit(EXIT_UNKNOWN)


_RUN_EPILOG = """\
exit codes: 0 valid, 1 invalid, 2 unknown or an error; interrupted by SIGINT,
SIGTERM or SIGHUP: the cluster is torn down, results.json written, and the exit
code is 128 + the signal (130, 143, 129). What a harness killed with SIGKILL
leaves behind, 'harness gc' removes."""


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag's
    False) or the help already says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:  # a paragraph: wrap it; else laid out by hand (the epilog)
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="Find consistency bugs in distributed systems.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from harness.checker.models import MODELS
    from harness.formats import FORMATS

    models = textwrap.fill(", ".join(sorted(MODELS)), width=76, initial_indent="  ",
                           subsequent_indent="  ", break_on_hyphens=False)
    c = sub.add_parser(
        "check", help="check stored or foreign histories",
        description="Check histories (files, or run folders) and print each one's verdict.",
        epilog=f"models (--model):\n{models}\n\n{_CHECK_EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("paths", nargs="+", help="history files, or run folders")
    c.add_argument("--format", dest="fmt",
                   help=f"{', '.join(FORMATS)} (default: sniffed from the content)")
    c.add_argument("--model", metavar="MODEL",
                   help="linearizability model, listed below (default: from the history, or "
                        "a run folder's results.json)")
    c.add_argument(
        "--checker",
        action="append",
        dest="checkers",
        choices=["linearizable", "queue", "fencing", "stats"],
        help="linearizable, queue, fencing, stats (repeatable; default: from the history's "
             "operations)",
    )
    c.add_argument("--time-limit", type=_positive_seconds, default=60.0, dest="time_limit_s",
                   metavar="SECONDS",
                   help="per-history seconds before the linearizability search says unknown "
                        "(default: %(default)g)")
    c.add_argument("--max-memory", type=_size, default=None, metavar="BYTES",
                   help=_MAX_MEMORY_HELP)
    c.add_argument("--allow-duplicates", action="store_true",
                   help="a redelivered queue item is reported but not an anomaly")
    c.add_argument("--json", action="store_true",
                   help="print one JSON object per history instead of a table")

    d = sub.add_parser("demo", help="check example histories (generated, and the shared corpus)")
    d.add_argument("--corpus", help="corpus folder (default: ../shared/corpus beside the project)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", default="reports/examples", help="where generated histories go")

    from harness.nemesis import registry
    from harness.workloads import WORKLOADS

    r = sub.add_parser(
        "run", help="run a fault campaign against a cluster", formatter_class=_DefaultsFormatter,
        description="Run one fault campaign: start a cluster, drive clients while faults are "
                    "injected, heal, run the workload's final reads, tear down, check.",
        epilog=registry.help_text() + "\n\n" + _RUN_EPILOG)
    r.add_argument("--system", default="refsys",
                   help="a system from 'harness systems', or module:factory")
    r.add_argument("--workload", default="register",
                   help=f"what the clients do: {', '.join(WORKLOADS)} (each system supports "
                        "some: 'harness systems')")
    r.add_argument("--nemesis", default="partition",
                   help=f"comma-separated faults: {','.join(registry.names())} (or none; "
                        "each is described below)")
    r.add_argument("--time-limit", type=float, default=30.0, dest="time_limit_s",
                   metavar="SECONDS",
                   help="how long clients and faults run (healing, recovery and the final "
                        "reads come after)")
    r.add_argument("--concurrency", type=int, default=5, metavar="N",
                   help="client workers; each is one process in the history")
    r.add_argument("--rate", type=float, default=None, dest="rate_hz", metavar="OPS",
                   help="operations per second across all clients, 0 for as fast as they "
                        "return (default: the workload's own: 50, takeover 10, which its "
                        "workers can finish)")
    r.add_argument("--backend", choices=["local", "docker"], default="local",
                   help="local processes on loopback, or containers")
    r.add_argument("--nodes", type=int, default=3, metavar="N", help="cluster size")
    r.add_argument("--seed", type=int,
                   help="seed of the fault schedule and the operations (default: a fresh one, "
                        "printed and stored in results.json)")
    r.add_argument("--option", action="append", dest="options", metavar="KEY=VALUE",
                   help="an option of the system under test, e.g. lease_ms=1500 (repeatable; "
                        "value read as JSON when it parses)")
    r.add_argument("--bug", help="start the system with this seeded bug (refsys: "
                                 "reference_system/bugs.py)")
    r.add_argument("--check-time-limit", type=float, default=120.0, dest="check_time_limit_s",
                   metavar="SECONDS",
                   help="seconds the check may take before a checker says unknown (at most "
                        "10 after an interrupt)")
    r.add_argument("--max-memory", type=_size, default=None, metavar="BYTES",
                   help=_MAX_MEMORY_HELP)
    r.add_argument("--test", help="name of the test: the run folder's parent (default: "
                                  "<system>-<workload>-<faults>)")
    r.add_argument("--reports", default="reports", help="where run folders go")
    r.add_argument("--replay",
                   help="a run's results.json (its whole configuration, seed and faults) or a "
                        "schedule.json (its faults, with this command's other options)")
    r.add_argument("--retries", type=int, default=2, metavar="N",
                   help="resend an indeterminate enqueue, write, cas or complete up to N times "
                        "with the same request id, as a real client would (0: never)")
    r.add_argument("--resend-rate", type=float, default=0.05, metavar="P",
                   help="resend this fraction of acknowledged enqueues, writes, cas and "
                        "completes at once with the same request id, as after a lost answer "
                        "(only systems that promise request-id idempotency; 0: never)")
    r.add_argument("--hostile-rate", type=float, default=2.0, metavar="HZ",
                   help="send this many malformed requests per second alongside the workload, "
                        "through the load balancer and to each node, and judge the answers "
                        "(systems whose adapter can draw them, such as refsys; 0: never; "
                        "default: %(default)s)")
    r.add_argument("--pin-clients", action="store_true",
                   help="client i talks to node i mod N directly instead of through the LB")
    r.add_argument("--toxiproxy-url",
                   help="use this running Toxiproxy (e.g. a real toxiproxy-server) instead of "
                        "starting one (local backend)")

    rp = sub.add_parser("report", help="(re)build the HTML report of run folders, and the index")
    rp.add_argument("paths", nargs="+", help="run folders")

    sub.add_parser("systems", help="list the systems installed for testing")

    cf = sub.add_parser("conform", help="run the conformance kit on a system's adapter")
    cf.add_argument("system", help="an installed system, or module:factory")
    cf.add_argument("--backend", choices=["local", "docker"], default="docker")
    cf.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="an option of the system (value read as JSON when it parses)")
    cf.add_argument("-k", dest="keyword", help="only the kit's tests matching this expression")
    cf.add_argument("-v", "--verbose", action="store_true")

    g = sub.add_parser(
        "gc", help="remove what killed runs left behind (processes, containers, ...)",
        description="Remove what runs that could not clean up (killed with SIGKILL, or on a "
                    "machine that went down) left behind: a local run's processes and temp "
                    "folders (from its record in the state dir, $HARNESS_STATE_DIR or "
                    "~/.cache/harness/runs), a Docker run's containers, network and volumes "
                    "(labelled harness=1). A run whose harness process is still alive (same "
                    "pid, host and start time) is skipped unless --force.")
    g.add_argument("--run-id", help="only this run's objects")
    g.add_argument("--force", action="store_true",
                   help="also remove runs whose harness is still alive (they will fail)")
    g.add_argument("--images", action="store_true",
                   help="also remove the Docker images the harness built (labelled "
                        "harness.image; a cache, rebuilt by the next run, which takes minutes)")

    b = sub.add_parser("bench", help="benchmarks that print figures")
    b.add_argument("what", choices=["checker", "queue", "history", "proxy", "driver", "mutants",
                                    "large"])
    b.add_argument("options", nargs="*",
                   help="mutants, large: their own options after --, e.g. 'bench mutants -- "
                        "--quick', 'bench large -- --scale 0.1'")
    b.add_argument("--corpus", help="corpus folder (checker benchmark)")
    b.add_argument("--repeats", type=int, default=5)
    return p


_CHECK_EPILOG = """\
exit codes:
  0  every history is valid
  1  some history is invalid: a proven anomaly (shown even when another
     history has an error, so it is never hidden)
  2  no history is invalid, but one is unknown (undecided, e.g. the time
     limit) or could not be checked (a bad file, no operations, a checker or
     model that does not fit); each error is one line on stderr naming the
     file, the line and the cause

A torn last line of a JSONL history (a run killed mid-write) is skipped with a
warning on stderr; --json lists it under "warnings" and "ignored_torn_line".
With --json, a history that could not be checked has "valid": "unknown" and
its one-line "error".
"""


_MAX_MEMORY_HELP = (
    "what the linearizability search may hold before it says unknown, in bytes or with a "
    "suffix: 512M, 2G (default: 1G; the tracked size of the search's memo and tables, not "
    "the process's RSS, which also holds the history)")


def _size(text: str) -> int:
    """argparse type for ``--max-memory``: bytes, or a number with K, M, G or T."""
    from harness.checker.linearizable import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_seconds(text: str) -> float:
    """argparse type for a time limit: a finite number of seconds above zero.

    ``float()`` alone takes "nan" (every comparison with it is false, so it
    meant "no limit") and negative numbers; both are refused.
    """
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive, finite number of seconds, got {text!r}")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if getattr(args, "max_memory", None) is not None:
        from harness.checker.linearizable import set_default_max_memory

        prev = set_default_max_memory(args.max_memory)
        try:
            return _dispatch(args)
        finally:
            set_default_max_memory(prev)
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "check":
            from harness.commands.check import check_command

            return check_command(args)
        if args.command == "demo":
            from harness.commands.demo import demo_command

            return demo_command(args)
        if args.command == "run":
            from harness.commands.run import run_command

            return run_command(args)
        if args.command == "report":
            from harness.commands.report import report_command

            return report_command(args)
        if args.command == "systems":
            from harness.commands.systems import systems_command

            return systems_command(args)
        if args.command == "conform":
            from harness.commands.conform import conform_command

            return conform_command(args)
        if args.command == "gc":
            from harness.commands.gc import gc_command

            return gc_command(args)
        if args.command == "bench":
            from harness.commands.bench import bench_command

            return bench_command(args)
    except HarnessError as e:
        sys.stderr.write(f"harness: {e}\n")
        return EXIT_UNKNOWN
    except KeyboardInterrupt as e:
        # SIGINT, SIGTERM or SIGHUP (harness.interrupts): 128 + the signal, and where the
        # interrupted run's files are, checkable with 'harness check <run dir>'
        where = getattr(e, "run_dir", None)
        sys.stderr.write(f"harness: interrupted ({getattr(e, 'signal_name', 'SIGINT')})"
                         + (f"; run folder: {where}" if where else "") + "\n")
        return int(getattr(e, "exit_code", 130))
    except BrokenPipeError:
        return EXIT_UNKNOWN
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


def exit_code(valid: object) -> int:
    """The process exit code for a verdict."""
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def dump_json(obj: Any) -> str:
    """``obj`` as one line of JSON, whatever values a history put in it.

    Foreign histories can carry map keys JSON cannot have, or keys of mixed
    types that cannot be sorted (EDN ``{1 :a, :b 2}``); then every key is
    written as text rather than the output failing.
    """
    try:
        return json.dumps(obj, default=_json_default, sort_keys=True)
    except TypeError:
        return json.dumps(_str_keys(obj), default=_json_default, sort_keys=True)


def _str_keys(v: Any) -> Any:
    if hasattr(v, "to_dict"):
        v = v.to_dict()
    if isinstance(v, dict):
        return {k if isinstance(k, str) else json.dumps(_str_keys(k), default=_json_default):
                _str_keys(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_str_keys(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, set | frozenset | tuple):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return repr(v)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
