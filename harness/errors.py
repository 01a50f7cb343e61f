"""One exception root for the harness, so callers can catch everything we raise.

Bad input is a user's mistake, not a bug: the CLI turns any :class:`HarnessError`
into a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FormatError", "FormatWarning", "HarnessError", "HistoryError", "ModelError"]


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""


class HistoryError(HarnessError):
    """A history is malformed (unpaired completion, duplicate index, ...).

    ``position`` is where the offending event stands in the history and
    ``related`` where the event it clashes with stands (if any); ``detail`` is
    the cause without the ``event N:`` prefix. A reader knows the line of
    every position, so it can re-raise this as a :class:`FormatError` naming
    the file and the lines, which is what a user needs to find the event.
    """

    def __init__(self, detail: str, *, index: int | None = None, position: int | None = None,
                 related: int | None = None) -> None:
        self.detail = detail
        self.position = position
        self.related = related
        super().__init__(f"event {index}: {detail}" if index is not None else detail)


class FormatError(HarnessError):
    """A history file cannot be read: names the file, the line and what was wrong."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class ModelError(HarnessError):
    """An operation the chosen model does not know (an unknown ``f``, a bad value)."""


@dataclass(frozen=True)
class FormatWarning:
    """Something a reader passed over without failing (a torn last line).

    Readers append these to a list the caller gives them rather than printing,
    so ``harness check`` can show them on stderr *and* in ``--json``: a
    silently dropped line would make a verdict look better founded than it is.
    """

    message: str
    path: str | None = None
    line: int | None = None
    kind: str = ""

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return f"{where}{self.message}"
