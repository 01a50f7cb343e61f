"""Deliberately broken adapters: the conformance kit must fail on each, naming the part.

Loaded by ``module:factory`` (this folder on ``PYTHONPATH``), as an adapter
author's module is before it is packaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.client import Outcome, ok
from harness.systems.refsys import ReferenceSystem


class StaleReads:
    """Wraps a correct client but answers every read with "no value": a register
    that forgets, which the linearizability checker must catch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return tuple(self.inner.prepare(f, value))

    def invoke(self, f: str, value: Any) -> Outcome:
        if f == "read":
            return ok([value[0], None])
        return self.inner.invoke(f, value)

    def close(self) -> None:
        self.inner.close()


@dataclass
class StaleReadsSystem(ReferenceSystem):
    workloads: tuple[str, ...] = ("register",)

    def client(self, *args: Any, **kwargs: Any) -> Any:
        return StaleReads(super().client(*args, **kwargs))


@dataclass
class BadRolesSystem(ReferenceSystem):
    """Its clients would dial a port role that does not exist."""

    client_role: str = "http"
    ports: dict[str, int] = field(default_factory=lambda: {"peer": 7000, "client": 8080})


@dataclass
class AcceptsHostileSystem(ReferenceSystem):
    """Reports every malformed request as accepted: fails a test of the kit's shared
    cluster (the module-scoped one), whose run folder must then be kept."""

    def send_hostile(self, request: Any, address: Any, *, timeout_s: float) -> tuple[str, str]:
        return "accepted", "the adapter says so"
