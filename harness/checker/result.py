"""What a checker says: valid, invalid, or unknown, and why.

``valid`` is three-valued on purpose. A checker that ran out of time or memory,
or crashed, must not be read as a pass: it says ``"unknown"``, and the CLI maps
that to exit code 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.checker.details import Details, details_for

__all__ = ["UNKNOWN", "Result", "Validity", "merge_validity", "result_from_dict", "typed"]

UNKNOWN: Literal["unknown"] = "unknown"
Validity = bool | Literal["unknown"]


@dataclass(frozen=True)
class Result:
    """A checker's verdict plus the details a report needs to explain it.

    ``details`` is always a :class:`~harness.checker.details.Details` once built
    (a plain mapping is typed by ``checker``'s name); it is a ``Mapping`` too.
    """

    valid: Validity
    checker: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.valid not in (True, False, UNKNOWN):
            raise ValueError(f"valid must be True, False or 'unknown', not {self.valid!r}")
        if not isinstance(self.details, Details):  # a plain dict: typed by the checker's name
            object.__setattr__(self, "details", details_for(self.checker, self.details))

    @property
    def verdict(self) -> str:
        """``"valid"``, ``"invalid"`` or ``"unknown"``, for tables and reports."""
        if self.valid is True:
            return "valid"
        if self.valid is False:
            return "invalid"
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        """``results.json``'s entry: valid, checker, the details' keys, error when set."""
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


_OWN_KEYS = ("valid", "checker", "error")


def result_from_dict(name: str, d: Mapping[str, Any]) -> Result:
    """A typed result rebuilt from its ``results.json`` entry (format 1 or 2: same keys).

    ``name`` is the key it was stored under, used when the entry names no
    checker. Keys the typed details have no field for are kept in their
    ``extra``. A ``valid`` that is not True, False or "unknown" (a hand-edited
    file) raises ``ValueError``; so does an entry that is not a mapping.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"result {name!r}: not an object but {type(d).__name__}")
    checker = d.get("checker")
    checker = checker if isinstance(checker, str) and checker else name
    error = d.get("error")
    return Result(d.get("valid"), checker,  # type: ignore[arg-type]  # checked in __post_init__
                  details_for(checker, {k: v for k, v in d.items() if k not in _OWN_KEYS}),
                  None if error is None else str(error))


def typed(result: Result | Mapping[str, Any], name: str = "") -> Result:
    """``result`` with typed details, whether it is a ``Result`` or its ``results.json`` entry."""
    if isinstance(result, Result):
        if result.checker or not name or type(result.details) is not Details:
            return result
        return Result(result.valid, name, details_for(name, result.details), result.error)
    return result_from_dict(name, result)
