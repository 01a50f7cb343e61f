"""Where runs live: ``reports/<test>/<timestamp>/`` with a ``latest`` link per test.

A run folder holds ``history.jsonl`` (streamed and flushed op by op, so a
killed run can still be checked with ``harness check <run dir>``),
``results.json``, ``schedule.json`` (for ``--replay``), and ``logs/``.

``results.json`` is versioned by its top-level ``"format"``: 2 since the
checkers return typed details (same keys as before, so a file without the
key, format 1, is read the same way; see ``harness.checker.result_from_dict``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_FORMAT", "RunStore", "new_run_dir", "new_run_id", "results_format"]

#: the version of ``results.json`` this harness writes (absent in a file = 1)
RESULTS_FORMAT = 2

#: how much of the test's name a run id keeps (Docker names are ``harness-<id>-<part>``)
RUN_ID_NAME_CHARS = 32


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def new_run_id(test: str) -> str:
    """A run's id: the test's name (cut to :data:`RUN_ID_NAME_CHARS` at its end, so its
    readable start stays) and a random suffix of 48 bits, e.g.
    ``refsys-register-partition-3fa9c1d2e07b``.

    It names the run's Docker objects and labels them, so it must be unique
    even for two runs of one test started in the same second (the run folder's
    timestamp is not), and valid in a Docker name: letters, digits, ``_.-``,
    starting with a letter or digit. 24 random bits were too few: 2,000 ids drawn
    at once collided about one time in nine.
    """
    name = re.sub(r"^[^A-Za-z0-9]+", "", _safe(test))[:RUN_ID_NAME_CHARS].rstrip("-_.")
    return f"{name or 'run'}-{secrets.token_hex(6)}"


def new_run_dir(reports: Path, test: str) -> Path:
    """A fresh folder for one run, and the test's ``latest`` link pointed at it."""
    base = Path(reports) / _safe(test)
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run = base / stamp
    n = 1
    while True:
        try:
            run.mkdir()
            break
        except FileExistsError:
            n += 1
            run = base / f"{stamp}-{n}"
    latest = base / "latest"
    tmp = base / f".latest-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(run.name)
    os.replace(tmp, latest)
    return run


class RunStore:
    """The files of one run."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def history_path(self) -> Path:
        return self.dir / "history.jsonl"

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``name`` atomically; ``results.json`` gets its ``"format"`` stamped."""
        if name == "results.json" and isinstance(data, dict):
            data = {**data, "format": RESULTS_FORMAT}
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n")
        os.replace(tmp, path)
        return path


def results_format(results: Any) -> int | None:
    """The format of a loaded ``results.json``: 1 when it says none, None when it is
    not a results object or its ``"format"`` is not a positive whole number."""
    if not isinstance(results, dict):
        return None
    f = results.get("format", 1)
    return f if isinstance(f, int) and not isinstance(f, bool) and f >= 1 else None


def _default(v: Any) -> Any:
    if isinstance(v, set | frozenset | tuple):
        return sorted(v, key=str) if isinstance(v, set | frozenset) else list(v)
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return repr(v)
