"""Judgements of surviving mutants: read from a JSON file, anchored to what each changes.

A mutant's id (``module:operator:occurrence``) counts occurrences from the top
of its module, so any edit above a judged line gives that id to another
mutant. A judgement kept by id alone would then call some other mutant
"equivalent" and raise the score without anyone noticing. So each judgement
also records the mutant's change (``Mutant.change``: the ``-old``/``+new``
lines), and is applied only to a mutant that makes that change:

- the mutants of the same module and operator that make the recorded change
  are found; when there are as many as when it was judged, the judgement goes
  to the one in the judged place among them (its ``site``, k of n, in the
  order of the module), whatever its id is now: it follows its line;
- else it applies to none and is reported *stale* (its line changed, or the
  same change was added or removed elsewhere), to be judged again.

File format: ``{"<id>": {"judgement": "...", "change": "-old\\n+new", "site": [k, n]}}``. A bare
string (``{"<id>": "..."}``, the older format) has no anchor and is applied by
id alone; ``--anchor-judgements`` records the anchors of such entries from the
current tree, which is right only at the commit where they were judged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.mutants.generate import Mutant
from harness.errors import HarnessError

__all__ = ["Judgement", "Resolved", "anchor", "load", "resolve", "save"]


@dataclass(frozen=True)
class Judgement:
    """A person's reading of one surviving mutant."""

    text: str
    #: the mutant's change when judged; None for an entry of the older format
    change: str | None = None
    #: (k, n): the k-th (from 0) of the n mutants of its module and operator making
    #: that change, when judged
    site: tuple[int, int] = (0, 1)


@dataclass
class Resolved:
    """The judgements that apply to the mutants of the current tree."""

    #: current mutant id -> judgement text
    by_id: dict[str, str] = field(default_factory=dict)
    #: (judged id, current id) of judgements that followed their mutant
    moved: list[tuple[str, str]] = field(default_factory=list)
    #: judged ids whose change no mutant makes any more (or several do)
    stale: list[str] = field(default_factory=list)
    #: entries without an anchor, applied by id alone
    unanchored: int = 0


def load(path: Path) -> dict[str, Judgement]:
    """The file's judgements; :class:`HarnessError` (exit 2) when it is not one."""
    try:
        loaded = json.loads(path.read_text())
    except ValueError as e:
        raise HarnessError(f"{path}: not JSON ({e})") from None
    if not isinstance(loaded, dict):
        raise HarnessError(f"{path}: must be a JSON object (mutant id -> judgement)")
    out: dict[str, Judgement] = {}
    for key, value in loaded.items():
        if isinstance(value, str):
            out[str(key)] = Judgement(value)
        elif (isinstance(value, dict) and isinstance(value.get("judgement"), str)
              and isinstance(value.get("change", ""), str) and _site_ok(value.get("site"))):
            site = value.get("site") or (0, 1)
            out[str(key)] = Judgement(value["judgement"], value.get("change") or None,
                                      (int(site[0]), int(site[1])))
        else:
            raise HarnessError(f"{path}: {key!r} must map to a text or to "
                               '{"judgement": text, "change": text, "site": [k, n]}')
    return out


def _site_ok(site: object) -> bool:
    return site is None or (isinstance(site, list) and len(site) == 2
                            and all(isinstance(x, int) for x in site)
                            and 0 <= site[0] < site[1])


def save(path: Path, judgements: dict[str, Judgement]) -> None:
    """Write ``judgements`` in the anchored format, sorted by id."""
    obj = {k: ({"judgement": j.text, "change": j.change, "site": list(j.site)}
               if j.change is not None else j.text)
           for k, j in sorted(judgements.items())}
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _operator(mutant_id: str) -> tuple[str, str]:
    module, _, rest = mutant_id.partition(":")
    return module, rest.rpartition(":")[0]


def _groups(mutants: Sequence[Mutant]) -> dict[tuple[str, str, str], list[Mutant]]:
    """Mutants by (module, operator, change), each group in the module's order."""
    groups: dict[tuple[str, str, str], list[Mutant]] = {}
    for m in sorted(mutants, key=lambda m: (m.module, m.operator, m.occurrence)):
        groups.setdefault((m.module, m.operator, m.change), []).append(m)
    return groups


def resolve(judgements: dict[str, Judgement], mutants: Sequence[Mutant]) -> Resolved:
    """Which mutant each judgement applies to now (see the module doc)."""
    by_id = {m.id: m for m in mutants}
    groups = _groups(mutants)
    out = Resolved()
    for jid, j in sorted(judgements.items()):
        if j.change is None:
            if jid in by_id:
                out.by_id[jid] = j.text
                out.unanchored += 1
            else:
                out.stale.append(jid)
            continue
        module, operator = _operator(jid)
        group = groups.get((module, operator, j.change), [])
        k, n = j.site
        if len(group) != n:
            out.stale.append(jid)
            continue
        target = group[k].id
        out.by_id[target] = j.text
        if target != jid:
            out.moved.append((jid, target))
    return out


def anchor(judgements: dict[str, Judgement], mutants: Sequence[Mutant]
           ) -> tuple[dict[str, Judgement], list[str]]:
    """Entries without an anchor get their mutant's change and site from ``mutants``; the
    ids that name no mutant are returned apart (and kept as they were)."""
    by_id = {m.id: m for m in mutants}
    groups = _groups(mutants)
    out: dict[str, Judgement] = {}
    missing: list[str] = []
    for jid, j in judgements.items():
        m = by_id.get(jid)
        if j.change is None and m is not None:
            group = groups[(m.module, m.operator, m.change)]
            out[jid] = Judgement(j.text, m.change, (group.index(m), len(group)))
        else:
            if j.change is None:
                missing.append(jid)
            out[jid] = j
    return out, missing
