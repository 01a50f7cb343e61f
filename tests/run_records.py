"""Reading a finished run's history in campaign tests: its ops, and which fault kinds
really applied (the campaign tests of every system share these)."""

from __future__ import annotations

import json
from typing import Any

from harness.runner import RunResult


def history(r: RunResult) -> list[dict[str, Any]]:
    """Every op of the run's ``history.jsonl``, as recorded."""
    lines = (r.run_dir / "history.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]


def nemesis_ops(r: RunResult) -> list[dict[str, Any]]:
    """The run's nemesis ops."""
    return [o for o in history(r) if o["process"] == "nemesis"]


def applied(r: RunResult) -> set[str]:
    """Fault kinds that were started, none of their starts with an error."""
    starts: dict[str, list[dict[str, Any]]] = {}
    for o in nemesis_ops(r):
        if o["f"].startswith("start-"):
            starts.setdefault(o["f"].removeprefix("start-"), []).append(o)
    return {k for k, ops in starts.items()
            if all("error" not in (o["value"] or {}) for o in ops)}
