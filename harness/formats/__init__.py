"""Reading and writing histories in every format the harness understands.

``read_history`` sniffs the format from the content (``--format`` overrides):

=============  ===============================================================
``jsonl``      ours: one JSON object per line (``history.jsonl`` of a run)
``edn``        Jepsen: a vector of op maps (Knossos) or one map per line
``etcd-log``   Porcupine's Jepsen etcd logs (``INFO jepsen.util - ...``)
``kv-lines``   Porcupine's kv histories (EDN maps with ``:key``)
=============  ===============================================================

A run folder may be given instead of a file: its ``history.jsonl`` is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harness.errors import FormatError
from harness.formats.jepsen import read_edn
from harness.formats.jsonl import HistoryWriter, dumps_op, read_jsonl, write_jsonl
from harness.formats.porcupine import read_etcd_log, read_kv_lines
from harness.history import History

__all__ = [
    "FORMATS",
    "HistoryWriter",
    "detect_format",
    "dumps_op",
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
    """A file, or a run folder holding ``history.jsonl``."""
    p = Path(path)
    if p.is_dir():
        candidate = p / "history.jsonl"
        if not candidate.exists():
            raise FormatError("folder has no history.jsonl", path=str(p))
        return candidate
    if not p.exists():
        raise FormatError("no such file", path=str(p))
    return p


def parse_history(text: str, *, fmt: str | None = None, path: str | None = None) -> History:
    """Parse history text in the given (or sniffed) format."""
    if fmt is None:
        try:
            fmt = detect_format(text)
        except FormatError as e:
            raise FormatError(str(e), path=path) from None
    reader = FORMATS.get(fmt)
    if reader is None:
        raise FormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", path=path)
    return reader(text, path=path)


def read_history(path: str | os.PathLike[str], fmt: str | None = None) -> History:
    """Read a history file (or a run folder) in any known format."""
    p = resolve_history_path(path)
    if p.stat().st_size > MAX_HISTORY_BYTES:
        raise FormatError("file is larger than 4 GiB", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text (byte {e.start})", path=str(p)) from None
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", path=str(p)) from None
    return parse_history(text, fmt=fmt, path=str(p))
