"""Checkers: pure functions from a history to a :class:`Result`.

``valid`` is True, False or ``"unknown"``; an exception inside a checker run
through :func:`compose` becomes ``"unknown"`` with the error, never a crash.
A result's ``details`` are typed (:mod:`harness.checker.details`);
:func:`result_from_dict` rebuilds a result from its ``results.json`` entry.
"""

from harness.checker.compose import Checker, compose, run_checker
from harness.checker.convergence import convergence
from harness.checker.details import Details, details_for
from harness.checker.fencing import fencing
from harness.checker.linearizable import linearizable
from harness.checker.models import INCONSISTENT, MODELS, get_model
from harness.checker.queue import queue
from harness.checker.result import UNKNOWN, Result, Validity, merge_validity, result_from_dict
from harness.checker.stats import stats

__all__ = [
    "INCONSISTENT",
    "MODELS",
    "UNKNOWN",
    "Checker",
    "Details",
    "Result",
    "Validity",
    "compose",
    "convergence",
    "details_for",
    "fencing",
    "get_model",
    "linearizable",
    "merge_validity",
    "queue",
    "result_from_dict",
    "run_checker",
    "stats",
]
