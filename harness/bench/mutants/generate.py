"""Mutants of the reference system: enumerated with cosmic-ray, filtered, sampled, written out.

Why cosmic-ray: its operators rewrite source text (a parso tree), so a
mutant is an ordinary ``.py`` file on disk, which the node processes the local
backend launches (``python -m reference_system.node``) import like any other.
mutmut 3 instead switches mutants at run time through trampolines and its own
runtime, which separately launched nodes would have to carry along.

Only cosmic-ray's operators and its ``mutate_code`` are used, not its runner
(it runs one test command per mutant against the file mutated in place, and
this benchmark must never touch the working tree).

Every candidate is built and compiled before sampling, so the sample is drawn
from real mutants only:

* **syntax errors** are dropped: cosmic-ray 8.7 takes the bare ``*`` of
  ``def f(self, *, x)`` for a binary operator and writes ``def f(self, /, x)``
  and the like; ``compile()`` rejects those. So are mutations cosmic-ray's
  operator cannot build at all (its exception replacer raises on an
  ``except (A, B) as e:`` whose names are dotted): no code, no mutant.
* **equivalent** mutants are excluded and counted: a change that lies wholly
  inside an annotation in a module with ``from __future__ import annotations``
  (``X | None`` -> ``X & None``: annotations are strings there, nothing
  evaluates them), and a change that leaves the text as it was.
* **seeded-bug code** is excluded and counted: the conditions that switch a
  seeded bug (``if "stale_token" in self.bugs``) and the code only a switched-on
  bug runs. The body is dead in the correct system (its mutants are
  equivalent); a mutated switch turns a known bug on, which the campaigns
  benchmark already measures. The score is about bugs nobody planned.

Building each of ~3,000 candidates with ``mutate_code`` re-parses the module
(~80 ms each, minutes in all), so candidates are built on one parsed tree:
the operator mutates the node, the module's code is read, and the subtree is
put back as it was. The sampled mutants are then rebuilt with cosmic-ray's own
``mutate_code`` and must come out identical, so what runs is exactly the
library's mutant.
"""

from __future__ import annotations

import ast
import difflib
import random
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.system import project_root

__all__ = ["MODULES", "Candidate", "Mutant", "Population", "enumerate_mutants",
           "materialize", "sample"]

#: the modules mutated: the protocol core, the queue's state machine, leases,
#: the node runtime (timers, peers, group commit), the HTTP API, the WAL
MODULES: tuple[str, ...] = ("replica", "state_machine", "leases", "node", "api", "storage")
PACKAGE = "reference_system"


@dataclass(frozen=True)
class Mutant:
    """One mutant: a cosmic-ray operator applied at one occurrence in one module.

    ``id`` (``module:operator:occurrence``) is stable while the module's text
    is, and is what a ``--judgements`` file names.
    """

    module: str
    operator: str
    occurrence: int
    line: int
    col: int
    source: str = field(repr=False, compare=False)
    mutated: str = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.module}:{self.operator}:{self.occurrence}"

    @property
    def operator_short(self) -> str:
        """The operator without its provider (``core/``)."""
        return self.operator.split("/", 1)[-1]

    @property
    def change(self) -> str:
        """The lines the mutant changes, ``-old`` then ``+new``, stripped of indentation
        and of where they are: what a judgement is anchored to, so that it follows its
        mutant when code above moves the occurrence count, and is dropped when the
        line itself changed."""
        lines = difflib.unified_diff(self.source.splitlines(), self.mutated.splitlines(),
                                     lineterm="", n=0)
        return "\n".join(ln[0] + ln[1:].strip() for ln in lines
                         if ln[:1] in "+-" and not ln.startswith(("+++", "---")))

    def diff(self) -> str:
        """A unified diff of the mutant against the module, paths as in the repository."""
        path = f"{PACKAGE}/{self.module}.py"
        return "\n".join(difflib.unified_diff(
            self.source.splitlines(), self.mutated.splitlines(),
            fromfile=f"a/{path}", tofile=f"b/{path}", lineterm="", n=2))


@dataclass(frozen=True)
class Candidate:
    """What enumeration found: a valid mutant, or why one was left out."""

    mutant: Mutant
    #: None (kept), "syntax" (does not compile), "equivalent" or "seeded-bug" (and why)
    excluded: str | None = None
    reason: str = ""


@dataclass
class Population:
    """Every candidate per module, and the counts of those left out."""

    candidates: list[Candidate]

    @property
    def valid(self) -> list[Mutant]:
        return [c.mutant for c in self.candidates if c.excluded is None]

    def count(self, excluded: str | None) -> int:
        return sum(1 for c in self.candidates if c.excluded == excluded)

    def by_module(self) -> dict[str, list[Mutant]]:
        out: dict[str, list[Mutant]] = {}
        for m in self.valid:
            out.setdefault(m.module, []).append(m)
        return out


@cache
def _operators() -> tuple[tuple[str, Any], ...]:
    """cosmic-ray's operators that take no arguments (the others need a configuration)."""
    import cosmic_ray.plugins as plugins

    out = []
    for name in plugins.operator_names():
        cls = plugins.get_operator(name)
        if not cls.arguments():
            out.append((name, cls))
    return tuple(out)


def _has_future_annotations(source: str) -> bool:
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__" \
                and any(a.name == "annotations" for a in node.names):
            return True
    return False


def _is_bug_check(node: ast.AST) -> bool:
    """``"name" in <...>.bugs`` (or ``not in``): a seeded-bug switch."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
        return False
    c = node.comparators[0]
    name = c.id if isinstance(c, ast.Name) else c.attr if isinstance(c, ast.Attribute) else None
    return name == "bugs"


def _bug_lines(source: str) -> set[int]:
    """Lines of seeded-bug code: every ``if`` condition that tests a seeded bug, and
    the body of one that runs only with the bug on (``"x" in bugs [and ...]``).

    The correct system never runs such a body (a mutant there is equivalent),
    and a mutant of such a condition switches a seeded bug on or off, which
    ``harness.bench.campaigns`` measures with a recipe per bug: neither is an
    unplanned bug.
    """
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        parts = test.values if isinstance(test, ast.BoolOp) else [test]
        checks = [p for p in parts if _is_bug_check(p)]
        if not checks:
            continue
        lines.update(range(test.lineno, (test.end_lineno or test.lineno) + 1))
        only_with_bug = (not isinstance(test, ast.BoolOp) or isinstance(test.op, ast.And)) \
            and any(isinstance(c, ast.Compare) and isinstance(c.ops[0], ast.In) for c in checks)
        if only_with_bug:
            lines.update(range(node.body[0].lineno, (node.body[-1].end_lineno or 0) + 1))
    return lines


def _in_annotation(node: Any) -> bool:
    """``node`` lies inside a parameter's, a return's or a variable's annotation."""
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "param" and child is getattr(parent, "annotation", None):
            return True
        if parent.type == "tfpdef" and len(parent.children) == 3 and child is parent.children[2]:
            return True  # `name: annotation` of a parameter
        if parent.type in ("funcdef", "async_funcdef") and \
                child is getattr(parent, "annotation", None):
            return True
        if parent.type == "annassign" and len(parent.children) > 1 \
                and child is parent.children[1]:
            return True
        if parent.type in ("file_input", "classdef", "suite"):
            return False
        child, parent = parent, parent.parent
    return False


def _snapshot(node: Any) -> list[tuple[Any, Any, Any]]:
    """Everything an operator may change in ``node``'s subtree, to put back afterwards."""
    saved: list[tuple[Any, Any, Any]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        children = getattr(n, "children", None)
        if children is not None:
            saved.append((n, n.parent, list(children)))
            stack.extend(children)
        else:
            saved.append((n, n.parent, (n.value, n.prefix)))
    return saved


def _restore(saved: list[tuple[Any, Any, Any]]) -> None:
    for n, parent, state in saved:
        n.parent = parent
        if isinstance(state, list):
            n.children = state
        else:
            n.value, n.prefix = state


def _mutated_code(tree: Any, node: Any, operator: Any, index: int) -> str:
    """The module's code with ``operator`` applied to ``node``; the tree is left as it was.

    Mirrors cosmic-ray's ``MutationVisitor``: the operator's return value
    replaces the node in its parent, None removes it.
    """
    parent = node.parent
    slot = next(i for i, c in enumerate(parent.children) if c is node)
    saved = _snapshot(node)
    parent_children = list(parent.children)
    try:
        new = operator.mutate(node, index)
        if new is None:
            del parent.children[slot]
        else:
            parent.children[slot] = new
        return str(tree.get_code())
    finally:
        parent.children = parent_children
        _restore(saved)


def _compiles(code: str, filename: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # `x is "a"` is a valid mutant
        try:
            compile(code, filename, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


def _module_candidates(module: str, root: Path) -> Iterator[Candidate]:
    from cosmic_ray.ast import ast_nodes, get_ast

    path = root / PACKAGE / f"{module}.py"
    source = path.read_text(encoding="utf-8")
    future = _has_future_annotations(source)
    bug_lines = _bug_lines(source)
    tree = get_ast(source)
    nodes = list(ast_nodes(tree))
    for name, cls in _operators():
        op = cls()
        occurrence = 0
        for node in nodes:
            for index, (start, _end) in enumerate(list(op.mutation_positions(node))):
                try:
                    code = _mutated_code(tree, node, op, index)
                except Exception as e:  # the operator itself failed: no such mutant
                    m = Mutant(module, name, occurrence, start[0], start[1], source, source)
                    occurrence += 1
                    yield Candidate(m, "syntax", f"cosmic-ray could not build it: "
                                                 f"{type(e).__name__}: {e}")
                    continue
                m = Mutant(module, name, occurrence, start[0], start[1], source, code)
                occurrence += 1
                if start[0] in bug_lines:
                    yield Candidate(m, "seeded-bug", "a seeded bug's switch or its code")
                elif code == source:
                    yield Candidate(m, "equivalent", "the text is unchanged")
                elif future and _in_annotation(node):
                    yield Candidate(m, "equivalent",
                                    "annotation only, inert under `from __future__ import "
                                    "annotations`")
                elif not _compiles(code, str(path)):
                    yield Candidate(m, "syntax", "does not compile")
                else:
                    yield Candidate(m)


def enumerate_mutants(modules: Sequence[str] = MODULES, *, root: Path | None = None
                      ) -> Population:
    """Every cosmic-ray mutant of ``modules``, each built and judged (see the module doc)."""
    root = root or project_root()
    unknown = [m for m in modules if not (root / PACKAGE / f"{m}.py").is_file()]
    if unknown:
        raise HarnessError(f"no module(s) {', '.join(unknown)} in {PACKAGE}/")
    return Population([c for m in modules for c in _module_candidates(m, root)])


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """How many of ``n`` to draw per module: one each first (the largest modules
    first when ``n`` is smaller than their number), the rest in proportion to
    each module's mutants (largest remainders), never more than a module has."""
    alloc = dict.fromkeys(sizes, 0)
    n = min(n, sum(sizes.values()))
    for k in sorted((k for k in sizes if sizes[k]), key=lambda k: (-sizes[k], k))[:n]:
        alloc[k] = 1
    while sum(alloc.values()) < n:
        left = n - sum(alloc.values())
        room = {k: sizes[k] - alloc[k] for k in sizes if sizes[k] > alloc[k]}
        total = sum(sizes[k] for k in room)
        shares = {k: left * sizes[k] / total for k in room}
        whole = {k: min(int(v), room[k]) for k, v in shares.items()}
        if sum(whole.values()) == 0:  # hand out the rest by largest remainder
            for k in sorted(room, key=lambda k: (-(shares[k] - int(shares[k])), k))[:left]:
                whole[k] = 1
        for k, v in whole.items():
            alloc[k] += v
    return alloc


def sample(population: Population, n: int, seed: int) -> list[Mutant]:
    """A seeded sample of ``n`` valid mutants, stratified by module (see :func:`_allocate`).

    The same population, ``n`` and ``seed`` give the same sample.
    """
    groups = population.by_module()
    alloc = _allocate({k: len(v) for k, v in groups.items()}, n)
    rng = random.Random(seed)
    out: list[Mutant] = []
    for module in sorted(groups):
        out += rng.sample(groups[module], alloc[module])
    rng.shuffle(out)
    return out


def _library_mutant(m: Mutant) -> str:
    """The mutant as cosmic-ray's own ``mutate_code`` writes it."""
    import cosmic_ray.plugins as plugins
    from cosmic_ray.mutating import mutate_code

    code = mutate_code(m.source, plugins.get_operator(m.operator)(), m.occurrence)
    if code is None:
        raise HarnessError(f"cosmic-ray made no mutant {m.id}")
    return str(code)


#: written into each copy: the name cosmic-ray's ExceptionReplacer puts into
#: ``except`` clauses, defined as cosmic-ray's own runner would have it
#: (an exception nothing raises), so such a mutant means "this handler catches
#: nothing", not "this handler raises NameError"
_SITECUSTOMIZE = (
    '"""Written by harness.bench.mutants into a mutant\'s copy of reference_system."""\n'
    "import builtins\n\n"
    "from cosmic_ray.exceptions import CosmicRayTestingException\n\n"
    "builtins.CosmicRayTestingException = CosmicRayTestingException\n"
)


def materialize(m: Mutant | None, dest: Path, *, root: Path | None = None) -> Path:
    """A copy of ``reference_system/`` under ``dest`` with ``m`` applied (None: unmutated).

    Returns ``dest``, the folder to put first on the nodes' ``PYTHONPATH``. The
    working tree is only read. The mutated text is cosmic-ray's own and must
    equal what enumeration built and judged.
    """
    root = root or project_root()
    dest.mkdir(parents=True, exist_ok=True)
    pkg = dest / PACKAGE
    shutil.copytree(root / PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    if m is not None:
        code = _library_mutant(m)
        if code != m.mutated:
            raise HarnessError(f"mutant {m.id}: cosmic-ray's text differs from the one judged")
        target = pkg / f"{m.module}.py"
        if target.read_text(encoding="utf-8") != m.source:
            raise HarnessError(f"{target}: the module changed since mutants were enumerated")
        target.write_text(code, encoding="utf-8")
    return dest
