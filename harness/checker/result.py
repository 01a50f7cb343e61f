"""What a checker says: valid, invalid, or unknown, and why.

``valid`` is three-valued on purpose. A checker that ran out of time or memory,
or crashed, must not be read as a pass: it says ``"unknown"``, and the CLI maps
that to exit code 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["UNKNOWN", "Result", "Validity", "merge_validity"]

UNKNOWN: Literal["unknown"] = "unknown"
Validity = bool | Literal["unknown"]


@dataclass(frozen=True)
class Result:
    """A checker's verdict plus the details a report needs to explain it."""

    valid: Validity
    checker: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.valid not in (True, False, UNKNOWN):
            raise ValueError(f"valid must be True, False or 'unknown', not {self.valid!r}")

    @property
    def verdict(self) -> str:
        """``"valid"``, ``"invalid"`` or ``"unknown"``, for tables and reports."""
        if self.valid is True:
            return "valid"
        if self.valid is False:
            return "invalid"
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"valid": self.valid, "checker": self.checker}
        d.update(self.details)
        if self.error is not None:
            d["error"] = self.error
        return d


def merge_validity(values: list[Validity]) -> Validity:
    """Jepsen's rule: any False wins; else any unknown; else True (also for none)."""
    if any(v is False for v in values):
        return False
    if any(v == UNKNOWN for v in values):
        return UNKNOWN
    return True
