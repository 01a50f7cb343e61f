"""Reading and writing histories in every format the harness understands.

``read_history`` sniffs the format from the content (``--format`` overrides):

=============  ===============================================================
``jsonl``      ours: one JSON object per line (``history.jsonl`` of a run)
``edn``        Jepsen: a vector of op maps (Knossos) or one map per line
``etcd-log``   Porcupine's Jepsen etcd logs (``INFO jepsen.util - ...``)
``kv-lines``   Porcupine's kv histories (EDN maps with ``:key``)
=============  ===============================================================

A run folder may be given instead of a file: its ``history.jsonl`` is read.
Every reader takes ``(text, *, path, warnings)`` and raises
:class:`~harness.errors.FormatError` naming the file, the line and the cause,
never another exception, whatever the bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import FormatError, FormatWarning
from harness.formats.jepsen import read_edn
from harness.formats.jsonl import HistoryWriter, dumps_op, read_jsonl, write_jsonl
from harness.formats.porcupine import read_etcd_log, read_kv_lines
from harness.history import History

__all__ = [
    "FORMATS",
    "HistoryWriter",
    "LoadedHistory",
    "detect_format",
    "dumps_op",
    "load_history",
    "parse_history",
    "read_history",
    "resolve_history_path",
    "write_jsonl",
]

FORMATS: dict[str, Callable[..., History]] = {
    "jsonl": read_jsonl,
    "edn": read_edn,
    "etcd-log": read_etcd_log,
    "kv-lines": read_kv_lines,
}

MAX_HISTORY_BYTES = 4 << 30


def detect_format(text: str) -> str:
    """Guess the format from the first meaningful line; an empty text is ``jsonl``."""
    for raw in text.splitlines():
        s = raw.strip()
        if not s or s.startswith(";"):
            continue
        if s.startswith("INFO") and "jepsen.util" in s:
            return "etcd-log"
        if s.startswith("{\"") or s.startswith("{ \""):
            return "jsonl"
        if s.startswith("[") or s.startswith("("):
            return "edn"
        if s.startswith("{"):
            return "kv-lines" if ":key" in s else "edn"
        raise FormatError(f"cannot tell the history format from {s[:40]!r}; pass --format")
    return "jsonl"


def resolve_history_path(path: str | os.PathLike[str]) -> Path:
    """A file, or a run folder holding ``history.jsonl``.

    Anything but a regular file is refused before it is opened: reading a FIFO
    would wait forever for a writer, and a device may never end.
    """
    p = Path(path)
    if p.is_dir():
        candidate = p / "history.jsonl"
        if not candidate.exists():
            raise FormatError("folder has no history.jsonl", path=str(p))
        p = candidate
    if not p.exists():
        raise FormatError("no such file", path=str(p))
    if p.is_dir():
        raise FormatError("is a folder, not a history file", path=str(p))
    if not p.is_file():
        raise FormatError("not a regular file (a FIFO, socket or device is not a history)",
                          path=str(p))
    return p


def parse_history(
    text: str,
    *,
    fmt: str | None = None,
    path: str | None = None,
    warnings: list[FormatWarning] | None = None,
) -> History:
    """Parse history text in the given (or sniffed) format.

    ``warnings``, when given, collects what the reader passed over without
    failing (see :class:`~harness.errors.FormatWarning`).
    """
    return _parse(text, fmt=fmt, path=path, warnings=warnings)[0]


def _parse(
    text: str, *, fmt: str | None, path: str | None, warnings: list[FormatWarning] | None
) -> tuple[History, str]:
    if fmt is None:
        try:
            fmt = detect_format(text)
        except FormatError as e:
            raise FormatError(str(e), path=path) from None
    reader = FORMATS.get(fmt)
    if reader is None:
        raise FormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", path=path)
    return reader(text, path=path, warnings=warnings), fmt


@dataclass(frozen=True)
class LoadedHistory:
    """A history read from a file, with what the caller needs to report on it:
    the file actually read (a run folder's ``history.jsonl``), the format used
    (sniffed or given), and the reader's warnings."""

    history: History
    path: Path
    fmt: str
    warnings: tuple[FormatWarning, ...] = ()


def load_history(path: str | os.PathLike[str], fmt: str | None = None) -> LoadedHistory:
    """Read a history file (or a run folder) in any known format, keeping its warnings.

    The file is read once, as bytes, so that text that is not UTF-8 is named
    with its line; every failure is a :class:`FormatError` naming the file.
    """
    p = resolve_history_path(path)
    try:
        if p.stat().st_size > MAX_HISTORY_BYTES:
            raise FormatError("file is larger than 4 GiB", path=str(p))
        data = p.read_bytes()
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", path=str(p)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise FormatError(f"not UTF-8 text (byte {e.start}, column {column})",
                          path=str(p), line=line) from None
    warnings: list[FormatWarning] = []
    history, used = _parse(text, fmt=fmt, path=str(p), warnings=warnings)
    return LoadedHistory(history, p, used, tuple(warnings))


def read_history(path: str | os.PathLike[str], fmt: str | None = None) -> History:
    """Read a history file (or a run folder) in any known format."""
    return load_history(path, fmt).history
