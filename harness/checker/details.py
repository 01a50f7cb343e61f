"""Typed details of each checker's result.

Checkers used to hand the report a plain dict that it parsed again by key
name. Each checker now returns one of these frozen dataclasses: the fields the
report and the summaries use are typed attributes, and anything else the
checker or a newer ``results.json`` carries is kept in ``extra`` (never dropped).

Every class is also a read-only ``Mapping`` over exactly the keys the checker
set, in the order it set them, with the values it set: ``Result.to_dict()``
and so ``results.json`` stay key for key what they were, and code that still
reads ``details["lost_count"]`` keeps working while new code reads
``details.lost_count``. A field whose key the checker did not set reads as its
default (``None``, ``0``, empty) and is not a key of the mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = [
    "DETAILS_TYPES",
    "AvailabilityDetails",
    "ConvergenceDetails",
    "Details",
    "FencingDetails",
    "IdempotencyDetails",
    "IntrospectionDetails",
    "LeadershipDetails",
    "LeaseDetails",
    "LinearizableDetails",
    "QueueDetails",
    "ResourcesDetails",
    "RobustnessDetails",
    "StatsDetails",
    "details_for",
]

_OWN = frozenset({"keys_set", "extra"})
_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass(frozen=True, eq=False)
class Details(Mapping[str, Any]):
    """What every checker may say beyond its verdict; the base of the typed details.

    ``keys_set`` is the keys the checker set, in order (the mapping's keys);
    ``extra`` holds the values of keys that have no field here.
    """

    keys_set: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    anomalies: Sequence[str] = ()
    progress: Sequence[str] = ()
    reason: str | None = None
    note: str | None = None
    elapsed_s: float | None = None

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The keys that are typed attributes of this class (not ``extra``)."""
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls)) - _OWN
        return names

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Self:
        """The typed details of a checker's (or ``results.json``'s) key/value pairs."""
        known = cls.field_names()
        return cls(keys_set=tuple(d),
                   extra={k: v for k, v in d.items() if k not in known},
                   **{k: v for k, v in d.items() if k in known})

    @classmethod
    def coerce(cls, d: Mapping[str, Any]) -> Self:
        """``d`` as this class: itself when it already is one, else typed anew."""
        return d if isinstance(d, cls) else cls.of(d)

    def with_(self, **kw: Any) -> Self:
        """A copy with these keys set (added after the others when new)."""
        return type(self).of({**self, **kw})

    def to_dict(self) -> dict[str, Any]:
        """The checker's key/value pairs as a plain dict (what JSON writers call)."""
        return dict(self)

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys_set:
            raise KeyError(key)
        if key in self.extra:
            return self.extra[key]
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_set)

    def __len__(self) -> int:
        return len(self.keys_set)

    def __contains__(self, key: object) -> bool:
        return key in self.keys_set


@dataclass(frozen=True, eq=False)
class QueueDetails(Details):
    """The queue checker's counts and the items behind each anomaly."""

    attempt_count: int = 0
    acknowledged_count: int = 0
    failed_count: int = 0
    delivered_count: int = 0
    lost_count: int = 0
    lost: Sequence[Any] = ()
    lost_ids_certain: bool | None = None
    unresolved_count: int = 0
    unresolved: Sequence[Any] = ()
    unexpected_count: int = 0
    unexpected: Sequence[Any] = ()
    duplicated_count: int = 0
    duplicated: Mapping[str, int] = field(default_factory=dict)
    recovered_count: int = 0
    recovered: Sequence[Any] = ()
    failed_then_seen_count: int = 0
    failed_then_seen: Sequence[Any] = ()
    unfinished_count: int = 0
    unfinished: Sequence[Any] = ()
    stuck_count: int = 0
    stuck: Sequence[Any] = ()
    stuck_for_ms: Mapping[str, float] = field(default_factory=dict)
    vanished_count: int = 0
    vanished: Sequence[Any] = ()
    dead_lettered_count: int = 0
    dead_lettered: Sequence[Any] = ()
    settle: Mapping[str, Any] | None = None


@dataclass(frozen=True, eq=False)
class FencingDetails(Details):
    """Fencing-token anomalies, each a list of ``{"item": ..., "op": ...}`` records."""

    claimed_items: int = 0
    completed_items: int = 0
    double_completion: Sequence[Mapping[str, Any]] = ()
    token_reuse: Sequence[Mapping[str, Any]] = ()
    token_regression: Sequence[Mapping[str, Any]] = ()
    stale_accepted: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class LeaseDetails(Details):
    """Overlapping leases found from the claims' stated lease times."""

    claims_with_lease: int = 0
    lease_overlap: Sequence[Mapping[str, Any]] = ()
    lease_overlap_count: int = 0
    lease_cut_short: Sequence[Mapping[str, Any]] = ()
    lease_cut_short_count: int = 0


@dataclass(frozen=True, eq=False)
class LinearizableDetails(Details):
    """The search's size and, when invalid, where it got stuck."""

    model: str = ""
    op_count: int | None = None
    partitions: int | None = None
    counterexample: Mapping[str, Any] | None = None
    counterexamples: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class StatsDetails(Details):
    """Completions by operation and type."""

    by_f: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    count: int = 0
    never_ok: Sequence[str] = ()


@dataclass(frozen=True, eq=False)
class ConvergenceDetails(Details):
    """Each replica's state at the end, and how the replicas differ."""

    position: Any = None
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference: Sequence[str] = ()
    differences: Sequence[Mapping[str, Any]] = ()
    difference_count: Mapping[str, int] = field(default_factory=dict)
    lagging: Sequence[str] = ()
    quiet_lagging: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class AvailabilityDetails(Details):
    """Requests a quiet cluster did not serve."""

    recovery_grace_ms: float = 0
    windows: Sequence[Sequence[float | None]] = ()
    judged: int = 0
    unserved_count: int = 0
    unserved: Sequence[Mapping[str, Any]] = ()
    unserved_by_error: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class IdempotencyDetails(Details):
    """Resends and how the system answered them."""

    resends: int = 0
    same_answer: int = 0
    no_evidence: int = 0
    anomalous_count: int = 0
    anomalous: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class LeadershipDetails(Details):
    """Leaders' tenures, those a rejoining node ended, and terms that broke election safety."""

    tenures: int = 0
    changes: int = 0
    excused: int = 0
    elsewhere: int = 0
    disrupted_count: int = 0
    disrupted: Sequence[Mapping[str, Any]] = ()
    regression_count: int = 0
    regressions: Sequence[Mapping[str, Any]] = ()
    shared_count: int = 0
    shared_terms: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class IntrospectionDetails(Details):
    """The probes of the adapter's stated introspection, and those that never answered."""

    probes: int = 0
    failed: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class ResourcesDetails(Details):
    """The promised idle CPU bound, each node's use over the idle window, and the runaways."""

    idle_cores: float | None = None
    window_s: float | None = None
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    runaways: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, eq=False)
class RobustnessDetails(Details):
    """Malformed requests and how the system answered them."""

    requests: int = 0
    answers: Mapping[str, int] = field(default_factory=dict)
    by_why: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    accepted_bad_input: Sequence[Mapping[str, Any]] = ()
    error_on_bad_input: Sequence[Mapping[str, Any]] = ()
    dropped_bad_input: Sequence[Mapping[str, Any]] = ()
    drops_near_faults: int = 0
    anomalous_count: int = 0


DETAILS_TYPES: Mapping[str, type[Details]] = {
    "queue": QueueDetails, "fencing": FencingDetails, "lease": LeaseDetails,
    "linearizable": LinearizableDetails, "stats": StatsDetails,
    "convergence": ConvergenceDetails, "availability": AvailabilityDetails,
    "idempotency": IdempotencyDetails, "robustness": RobustnessDetails,
    "leadership": LeadershipDetails, "introspection": IntrospectionDetails,
    "resources": ResourcesDetails,
}


def details_for(checker: str, d: Mapping[str, Any]) -> Details:
    """``d`` typed as ``checker``'s details (already typed details are returned as they are)."""
    return DETAILS_TYPES.get(checker, Details).coerce(d)
