"""The fault kinds a run can inject: one module per kind, found here by name.

Adding a fault kind used to mean edits in five places (the generator's and
the strategies' parameter draws, the runner's start and end, the nemesis and
the report's words); now a kind is one module, and this registry is how the
rest of the harness finds it. The generator draws a fault's parameters, the
Hypothesis strategies draw them as data, the fault driver
(:mod:`harness.nemesis.driver`) starts and ends it, ``harness run`` refuses a
kind the system or backend cannot take, and the report describes it, all by
asking the kind.

How to add a fault kind
-----------------------

Write ``harness/nemesis/kinds/<name>.py`` (the file name is free; the kind's
``name`` is what ``--nemesis`` and schedules use) that defines a module-level
``KIND``, an instance of a :class:`FaultKind` subclass declaring:

* ``name`` (``"clock"``): the word in ``--nemesis``, in ``schedule.json``
  (``Fault.kind``) and in the history (``start-clock`` / ``stop-clock``);
* ``order`` (an int): where it is listed; the first five kinds keep the order
  they always had (10..50), so seeded schedules of old runs draw as before.
  New kinds take 100 and up;
* ``exclusive``: True when two faults of this kind must not overlap (they
  would set the same toxics twice, as network faults would);
* ``needs``: a tuple of :class:`Ability` (e.g. :data:`BACKEND_PAUSES`,
  :data:`SYSTEM_HAS_LEADER`, or your own ``Ability("backend has a FUSE data
  dir", lambda system, backend: bool(getattr(backend, "fuse_data_dir",
  False)))``); a run whose system or backend lacks one is refused before it
  starts, with a message naming the kind and the ability (exit 2);
* ``label`` (a short noun for the report, ``"clock skew"``) and ``ended``
  (the past participle said when the fault ends: ``"reset"``);
* ``help``: one line for ``harness run --help`` (default: the first line of
  the module's docstring, which should therefore say what the fault does);
* ``draw(rng, nodes) -> dict``: the parameters of one fault, drawn from the
  generator's ``random.Random`` (JSON-ready: they are stored in
  ``schedule.json`` and replayed);
* ``strategy(nodes) -> SearchStrategy[dict]``: the same parameters as a
  Hypothesis strategy, whose simplest example is the mildest fault (it is
  what shrinking goes towards);
* ``start(ctx, params) -> dict`` and ``end(ctx, params, started) -> dict``:
  apply and undo the fault through a :class:`FaultContext` (the cluster, the
  system, the shared :class:`~harness.nemesis.faults.Nemesis`, node rules like
  ``"leader"``); each returns the JSON-ready record the history keeps, and
  ``end`` gets what ``start`` returned. Raise (any exception) when the fault
  cannot be applied: the driver records it as not applied and goes on;
* optionally ``describe(value, params) -> str | None``: the report's sentence
  for a start record (None: the report's generic words);
* optionally ``cluster_options`` (a mapping): keyword options the run's cluster
  must be built with when a run uses the kind (lose-unsynced's layer under the
  data directories must be there from the start);
* optionally ``heal(ctx)``: undo whatever a run stopped mid-fault left behind,
  called once after the last fault (network toxics and killed or paused nodes
  are already healed by the nemesis's ``heal_all``).

Then add tests under ``tests/nemesis/`` (``test_kinds.py`` shows the shape:
the draw and the strategy give parameters that ``start`` accepts, against
:mod:`tests.fault_fakes`). Kinds are found by importing every module of
:mod:`harness.nemesis.kinds` that defines ``KIND``; a module that fails to
import is an error, not a silently missing kind. Code outside the package may
also call :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import sys
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from harness.errors import HarnessError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from harness.cluster.backend import Cluster, Link
    from harness.nemesis.faults import Nemesis
    from harness.system import System

__all__ = [
    "BACKEND_KILLS",
    "BACKEND_PAUSES",
    "BACKEND_PROXIES_LINKS",
    "SYSTEM_HAS_LEADER",
    "Ability",
    "FaultContext",
    "FaultKind",
    "get",
    "help_text",
    "kinds",
    "missing_abilities",
    "names",
    "register",
    "require",
]


@dataclass(frozen=True)
class Ability:
    """Something a fault kind needs from the system or the backend.

    ``test(system, backend)`` gets the system object and the backend's cluster
    class (a run checks before it builds the cluster) or a cluster; it must
    not start anything. ``name`` is what the refusal says is missing.
    """

    name: str
    test: Callable[[Any, Any], bool]

    def held_by(self, system: Any, backend: Any) -> bool:
        try:
            return bool(self.test(system, backend))
        except Exception:  # an ability that cannot even be asked is not there
            return False


def _has_method(*methods: str) -> Callable[[Any, Any], bool]:
    return lambda _system, backend: all(callable(getattr(backend, m, None)) for m in methods)


def _system_has_leader(system: Any, _backend: Any) -> bool:
    from harness.system import HasLeader

    return isinstance(system, HasLeader)


#: the backend kills and restarts nodes (every backend does)
BACKEND_KILLS = Ability("backend can kill and restart a node", _has_method("kill", "restart"))
#: the backend freezes and thaws nodes (SIGSTOP, docker pause)
BACKEND_PAUSES = Ability("backend can pause and resume a node", _has_method("pause", "resume"))
#: the backend puts a Toxiproxy proxy on every link
BACKEND_PROXIES_LINKS = Ability("backend puts a Toxiproxy proxy on every link",
                                _has_method("toxiproxy_url"))
#: the system names its leader (only rules like ``leader`` need it: without it they
#: fall back to the first node up, so no built-in kind requires it)
SYSTEM_HAS_LEADER = Ability("system HasLeader (names its leader)", _system_has_leader)


class FaultContext(Protocol):
    """What a kind's ``start`` and ``end`` may use: the run's cluster, system and nemesis,
    and the fault driver's view of the faults in force (see
    :class:`harness.nemesis.driver.FaultDriver`, which implements it)."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def system(self) -> System: ...

    @property
    def nemesis(self) -> Nemesis: ...

    #: the grudge of the partition in force, if one is (rules ``follower``, ``majority``
    #: ... read it; the partition kind sets and clears it)
    grudge: Mapping[str, frozenset[str]] | None

    def node(self, want: str, exclude: Collection[str] = ()) -> str:
        """A node name, or a rule (``leader``, ``follower``, ...) resolved now."""
        ...

    def links(self, params: Mapping[str, Any]) -> list[Link]:
        """A network fault's links: every link of ``params["node"]`` (``"all"``: every
        link), or with ``to``, only the directed links from ``node`` to ``to``."""
        ...

    def hold(self, node: str, kind: str) -> None:
        """Mark ``node`` held by a process fault; raises if another fault holds it."""
        ...

    def release(self, node: str) -> None: ...


class FaultKind:
    """One fault kind; subclass it in a module of :mod:`harness.nemesis.kinds` (see above)."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 100
    exclusive: ClassVar[bool] = False
    needs: ClassVar[tuple[Ability, ...]] = ()
    label: ClassVar[str] = ""
    ended: ClassVar[str] = "ended"
    help: ClassVar[str] = ""
    cluster_options: ClassVar[Mapping[str, Any]] = {}

    def draw(self, rng: random.Random, nodes: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def faulty_nodes(self, started: Mapping[str, Any],
                     nodes: Sequence[str]) -> list[str] | None:
        """The nodes this fault, as ``started`` records it, takes down or cuts off from
        the largest fully connected group; None when its effect on serving is not a
        set of nodes (a slow link, a moved clock). The driver records the answer as
        ``faulty``, from which the availability checker tells a fault that leaves a
        majority up and connected (which must keep being served) from one that does
        not. Default: None."""
        return None

    def missing_variants(self, drawn: Sequence[Mapping[str, Any]], rng: random.Random,
                         nodes: Sequence[str]) -> list[dict[str, Any]]:
        """Parameters a random schedule holding this kind should also hold, given the
        parameters ``drawn`` for it: the variants that expose what only this kind can
        (a power loss of every node, a leader's clock jumping past its timeouts).

        The generator rewrites as many of this kind's drawn faults (never adding
        one), so a run asked for a kind meets its decisive shape, not only its
        mild ones. Default: none.
        """
        return []

    def strategy(self, nodes: Sequence[str]) -> SearchStrategy[dict[str, Any]]:
        raise NotImplementedError

    def start(self, ctx: FaultContext, params: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def end(self, ctx: FaultContext, params: Mapping[str, Any],
            started: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, value: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
        """The report's sentence for a start record; None leaves it to the generic words."""
        return None

    def heal(self, ctx: FaultContext) -> dict[str, Any] | None:
        """Undo what an interrupted fault of this kind left; None when nothing was left."""
        return None

    def summary(self) -> str:
        """One line for ``--help``: ``help``, else the first line of the module's docstring."""
        if self.help:
            return self.help
        doc = getattr(sys.modules.get(type(self).__module__), "__doc__", None) or ""
        line = doc.strip().splitlines()[0] if doc.strip() else ""
        return line.split(": ", 1)[1] if line.startswith(f"``{self.name}``: ") else line

    def __repr__(self) -> str:
        return f"<fault kind {self.name}>"


_lock = threading.Lock()
_kinds: dict[str, FaultKind] = {}
_loaded = False


def register(kind: FaultKind) -> FaultKind:
    """Add a kind (a package's own kinds are found without this); a second kind with
    the same name is an error, so two modules cannot silently shadow each other."""
    if not kind.name or not isinstance(kind.name, str) or "," in kind.name:
        raise ValueError(f"a fault kind needs a name without commas, not {kind.name!r}")
    with _lock:
        old = _kinds.get(kind.name)
        if old is not None and type(old) is not type(kind):
            raise ValueError(f"two fault kinds are named {kind.name!r}: {old!r} and {kind!r}")
        _kinds[kind.name] = kind
    return kind


def _load() -> None:
    global _loaded
    if _loaded:
        return
    from harness.nemesis import kinds as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if isinstance(kind, FaultKind):
            register(kind)
    _loaded = True


def kinds() -> tuple[FaultKind, ...]:
    """Every kind, in listing order (``order``, then name)."""
    _load()
    return tuple(sorted(_kinds.values(), key=lambda k: (k.order, k.name)))


def names() -> tuple[str, ...]:
    """Every kind's name, in listing order."""
    return tuple(k.name for k in kinds())


def get(name: str) -> FaultKind:
    """The kind called ``name``; ValueError naming the known kinds when there is none."""
    _load()
    kind = _kinds.get(name)
    if kind is None:
        raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(names())}")
    return kind


def missing_abilities(kind: FaultKind, system: Any, backend: Any) -> list[Ability]:
    """The abilities ``kind`` needs that ``system`` or ``backend`` lacks."""
    return [a for a in kind.needs if not a.held_by(system, backend)]


def require(kind_names: Sequence[str], system: Any, backend: Any, *,
            system_name: str = "the system", backend_name: str = "the backend") -> None:
    """Refuse (HarnessError: exit 2) a kind that is unknown or whose needs are not met,
    naming every such kind and what it lacks, before anything starts."""
    problems = []
    for name in kind_names:
        try:
            kind = get(name)
        except ValueError as e:
            problems.append(str(e))
            continue
        lacks = missing_abilities(kind, system, backend)
        if lacks:
            problems.append(f"fault kind {name!r} needs: {'; '.join(a.name for a in lacks)} "
                            f"({system_name} on the {backend_name} backend has not)")
    if problems:
        raise HarnessError("; ".join(problems))


def help_text(width: int = 78) -> str:
    """The kinds for ``harness run --help``: each name, what it does, and what it needs."""
    import textwrap

    lines = ["fault kinds (--nemesis, comma-separated):"]
    for kind in kinds():
        text = kind.summary()
        if kind.needs:
            text += f" [needs: {'; '.join(a.name for a in kind.needs)}]"
        lines += textwrap.wrap(text, width, initial_indent=f"  {kind.name:<14}",
                               subsequent_indent=" " * 16)
    return "\n".join(lines)
