"""Jepsen's EDN histories: Knossos ``data/`` files and jepsen.history files.

Two layouts exist in the wild: one EDN vector (or list) of op maps, as in
Knossos's ``data/`` folder, and one op map per line, as Jepsen's store writes
``history.edn``. Both may carry ``:index`` and ``:time`` (jepsen.history
style) or not (Knossos style, where file order is time order). Keywords read
as plain names, so ``:f :read`` gives ``f="read"``.
"""

from __future__ import annotations

from harness.errors import FormatWarning
from harness.formats.edn import iter_located
from harness.formats.records import build_history, op_from_record
from harness.history import History, Op

__all__ = ["read_edn"]


def read_edn(
    text: str, *, path: str | None = None, warnings: list[FormatWarning] | None = None
) -> History:
    ops: list[Op] = []
    lines: list[int] = []
    for line, rec in iter_located(text, path=path, unwrap=True):
        ops.append(op_from_record(rec, position=len(ops), path=path, line=line))
        lines.append(line)
    # Knossos files have no :index; jepsen.history files do. Keep real indices
    # so reports and counterexamples point at the user's own numbering.
    return build_history(ops, lines, path=path, reindex=not _has_indices(ops))


def _has_indices(ops: list[Op]) -> bool:
    seen = {op.index for op in ops}
    return len(seen) == len(ops)
