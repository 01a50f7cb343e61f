"""The shared corpus of published histories with known verdicts (Knossos, Porcupine).

The corpus is other projects' data and is never copied into this one: it is
read in place, from ``$HARNESS_CORPUS`` or ``../shared/corpus`` beside the
project. Its ``MANIFEST.md`` is the source of truth for which files exist and
what verdict each must get; this module parses that table rather than keeping
a list of its own, so the tests follow the manifest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["CorpusEntry", "default_corpus_dir", "read_manifest"]

_ROW = re.compile(r"^\|\s*((?:porcupine|knossos)/\S+)\s*\|(.*)\|\s*$")


@dataclass(frozen=True)
class CorpusEntry:
    """One history of the corpus: where it is, how to read it, what it must be."""

    path: Path
    relpath: str
    fmt: str
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    expected: bool = True
    porcupine_ms: float | None = None

    @property
    def suite(self) -> str:
        if self.relpath.startswith("porcupine/test_data/jepsen/"):
            return "porcupine-etcd"
        if self.relpath.startswith("porcupine/test_data/kv/"):
            return "porcupine-kv"
        return "knossos"


def default_corpus_dir() -> Path:
    env = os.environ.get("HARNESS_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def _model_for(rel: str) -> tuple[str, str, dict[str, Any]]:
    """(format, model, model args) as the MANIFEST's "Formats" section prescribes."""
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("porcupine/test_data/jepsen/"):
        return "etcd-log", "etcd", {}
    if rel.startswith("porcupine/test_data/kv/"):
        return "kv-lines", "kv", {}
    if "/cas-register/" in rel:
        # knossos uses (cas-register nil) for the rethink files, (cas-register 0) otherwise
        initial = None if name.startswith("rethink-fail") else 0
        return "edn", "cas-register", {"initial": initial}
    if "/multi-register/" in rel:
        return "edn", "multi-register", {}
    if "/mutex/" in rel:
        return "edn", "mutex", {}
    raise HarnessError(f"corpus MANIFEST names {rel!r}, whose model this harness does not know")


def read_manifest(corpus_dir: Path | None = None) -> list[CorpusEntry]:
    """Every history row of ``MANIFEST.md`` with its expected verdict."""
    root = corpus_dir or default_corpus_dir()
    manifest = root / "MANIFEST.md"
    if not manifest.exists():
        raise HarnessError(f"no corpus manifest at {manifest}")
    entries: list[CorpusEntry] = []
    header: list[str] | None = None
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.startswith("| file "):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
            continue
        m = _ROW.match(line)
        if not m or header is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        row = dict(zip(header, cells, strict=False))
        rel = m.group(1)
        expected = row.get("expected")
        if expected not in ("true", "false"):
            raise HarnessError(f"MANIFEST row {rel!r} has no true/false expected verdict")
        fmt, model, args = _model_for(rel)
        ms = row.get("porc ms") or row.get("porc ms (partitioned)")
        porc: float | None
        try:
            porc = float(ms) if ms else None
        except ValueError:
            porc = None
        entries.append(CorpusEntry(root / rel, rel, fmt, model, args, expected == "true", porc))
    return entries
