"""A Jepsen-style harness for finding consistency bugs in distributed systems.

The public API lives here; everything else is an implementation detail that
may move. See ``docs/architecture.md`` for what each module is for.
"""

from harness.analysis import CheckPlan, check_history, plan_checks
from harness.checker import (
    UNKNOWN,
    Checker,
    Result,
    Validity,
    compose,
    fencing,
    merge_validity,
    queue,
    stats,
)
from harness.errors import FormatError, HarnessError, HistoryError, ModelError
from harness.formats import HistoryWriter, parse_history, read_history, write_jsonl
from harness.history import NEMESIS, Call, History, Op, OpType

__all__ = [
    "NEMESIS",
    "UNKNOWN",
    "Call",
    "CheckPlan",
    "Checker",
    "FormatError",
    "HarnessError",
    "History",
    "HistoryError",
    "HistoryWriter",
    "ModelError",
    "Op",
    "OpType",
    "Result",
    "Validity",
    "check_history",
    "compose",
    "fencing",
    "merge_validity",
    "parse_history",
    "plan_checks",
    "queue",
    "read_history",
    "stats",
    "write_jsonl",
]

__version__ = "0.1.0"
