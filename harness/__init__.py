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
    get_model,
    linearizable,
    merge_validity,
    queue,
    stats,
)
from harness.client import Client, Outcome
from harness.clock import ClockControl
from harness.errors import FormatError, HarnessError, HistoryError, ModelError
from harness.formats import HistoryWriter, parse_history, read_history, write_jsonl
from harness.history import NEMESIS, Call, History, Op, OpType
from harness.runner import RunConfig, RunResult, run
from harness.system import (
    Address,
    CheckReady,
    CpuBound,
    HasLeader,
    HasLogFiles,
    HasReplicaState,
    HealthCheck,
    LoadBalanced,
    NodeContext,
    NodeLaunch,
    PromisesCpuBound,
    ReadsReplicaAt,
    System,
)
from harness.systems import get_system, installed_systems

__all__ = [
    "NEMESIS",
    "UNKNOWN",
    "Address",
    "Call",
    "CheckPlan",
    "CheckReady",
    "Checker",
    "Client",
    "ClockControl",
    "CpuBound",
    "FormatError",
    "HarnessError",
    "HasLeader",
    "HasLogFiles",
    "HasReplicaState",
    "HealthCheck",
    "History",
    "HistoryError",
    "HistoryWriter",
    "LoadBalanced",
    "ModelError",
    "NodeContext",
    "NodeLaunch",
    "Op",
    "OpType",
    "Outcome",
    "PromisesCpuBound",
    "ReadsReplicaAt",
    "Result",
    "RunConfig",
    "RunResult",
    "System",
    "Validity",
    "check_history",
    "compose",
    "fencing",
    "get_model",
    "get_system",
    "installed_systems",
    "linearizable",
    "merge_validity",
    "parse_history",
    "plan_checks",
    "queue",
    "read_history",
    "run",
    "stats",
    "write_jsonl",
]

__version__ = "0.1.0"
