"""One exception root for the harness, so callers can catch everything we raise.

Bad input is a user's mistake, not a bug: the CLI turns any :class:`HarnessError`
into a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

__all__ = ["FormatError", "HarnessError", "HistoryError", "ModelError"]


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""


class HistoryError(HarnessError):
    """A history is malformed (unpaired completion, duplicate index, ...)."""


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
