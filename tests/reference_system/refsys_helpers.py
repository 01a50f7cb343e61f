"""Shared helpers for the process-level tests of the reference system."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from reference_system.local import LocalCluster, http_json

T = TypeVar("T")

NODE_ARGS = (
    "--lease-ms", "1500",
    "--request-timeout-s", "3",
    # roomier than the default 300 ms: a loaded 2-core CI box must not see
    # spurious elections in tests that are not about elections
    "--election-timeout-ms", "600",
    "--log-level", "WARNING",
)  # fmt: skip


def until(pred: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write(c: LocalCluster, key: str, value: Any, *, timeout_s: float = 15.0) -> None:
    """Write through whichever node leads, retrying across a leader change
    (with a request id, so a retry never writes twice)."""
    rid = f"w-{key}-{time.monotonic_ns()}"

    def attempt() -> bool:
        for i in c.ids:
            try:
                code, _ = http_json(
                    c.http_port(i),
                    "POST",
                    f"/kv/{key}",
                    {"value": value, "request_id": rid},
                    timeout_s=5,
                )
            except OSError:
                continue
            if code == 200:
                return True
        return False

    until(attempt, timeout_s, f"a write of {key}")
