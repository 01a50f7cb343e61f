"""After the final heal: the system's stated introspection works on the healthy cluster.

An adapter states abilities the harness leans on without a client ever seeing
them: a leader lookup (:class:`harness.system.HasLeader`) aims the leader
faults, per-node state reads (:class:`harness.system.HasReplicaState`) feed the
convergence checker, per-node views of who leads
(:class:`harness.system.PromisesStableLeader`) feed the leadership checker.
When one of them is broken (a route that answers 404 or 500, an adapter that
parses the wrong field), the harness used to degrade in silence: leader faults
fell back to the first node, and a run that never isolated a leader still said
"valid" for a recipe named after doing so.

So once the faults are healed and the cluster is ready again, before the
final reads, the runner asks each stated ability once per node, retrying for
up to a wait (a healthy cluster may still be settling an election). Not before
the workload: some systems' leaders are per structure (a NATS stream, a
RabbitMQ queue) that the workload's first call creates. A cluster that did not
recover is not probed: the runner's ``not-recovered`` already says so. What it
saw is recorded as one invocation and completion of the non-client process
``"probes"``; the
``introspection`` checker (:mod:`harness.checker.introspection`) turns a probe
that never succeeded into an unknown verdict with the reason. It is never
invalid: a broken introspection route proves that the run tested less than it
says, not that the system lost data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.history import Op, OpType
from harness.replicas import read_replica
from harness.system import Address, HasLeader, HasReplicaState, PromisesStableLeader

__all__ = ["INTROSPECTION", "PROBES", "WAIT_S", "probe_introspection"]

PROBES = "probes"
"""The process of the probes' record in the history."""
INTROSPECTION = "introspection"
"""The ``f`` of the probes' record."""
WAIT_S = 10.0
"""How long a probe is retried before it counts as failed: longer than any election
a healthy cluster of the harness's systems needs to settle after it reported ready."""
POLL_S = 0.5

Record = Callable[[OpType, str, str, Any, Any], Op]
Probe = Callable[[], tuple[bool, str]]


def _leader_probe(system: HasLeader, client_addresses: Mapping[str, Address],
                  timeout_s: float) -> Probe:
    names = set(client_addresses)

    def probe() -> tuple[bool, str]:
        found = system.leader(client_addresses, timeout_s=timeout_s)
        if found is None:
            return False, "no leader found"
        if str(found) not in names:
            return False, f"answered {found!r}, which is not a node of the cluster"
        return True, str(found)
    return probe


def _replica_probe(system: HasReplicaState, node: str, addresses: Mapping[str, Address],
                   timeout_s: float) -> Probe:
    def probe() -> tuple[bool, str]:
        state, why = read_replica(system, node, addresses, timeout_s=timeout_s)
        if state is None:
            return False, str(why)
        return True, f"applied {state.get('applied')!r}"
    return probe


def _leadership_probe(system: PromisesStableLeader, node: str,
                      addresses: Mapping[str, Address], timeout_s: float) -> Probe:
    def probe() -> tuple[bool, str]:
        leader, term = system.leadership(node, addresses, timeout_s=timeout_s)
        if leader is None:
            return False, "the node knows no leader"
        return True, f"{leader} at term {term!r}"
    return probe


def probes(system: Any, nodes: Mapping[str, Mapping[str, Address]],
           client_addresses: Mapping[str, Address], *, timeout_s: float) -> dict[str, Probe]:
    """Every probe the system's stated abilities call for, by name."""
    out: dict[str, Probe] = {}
    if isinstance(system, HasLeader):
        out["leader"] = _leader_probe(system, client_addresses, timeout_s)
    if isinstance(system, HasReplicaState):
        for node, addresses in nodes.items():
            out[f"replica-state {node}"] = _replica_probe(system, node, addresses, timeout_s)
    if isinstance(system, PromisesStableLeader):
        for node, addresses in nodes.items():
            out[f"leadership {node}"] = _leadership_probe(system, node, addresses, timeout_s)
    return out


def probe_introspection(system: Any, record: Record, nodes: Mapping[str, Mapping[str, Address]],
              client_addresses: Mapping[str, Address], *, timeout_s: float = 1.0,
              wait_s: float | None = None, poll_s: float = POLL_S,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run every probe until it succeeds or ``wait_s`` has passed; record and return
    ``{probe: {"ok", "attempts", "answer"}}`` (nothing is recorded when the system
    states none of the abilities). ``wait_s`` defaults to :data:`WAIT_S`."""
    wait_s = WAIT_S if wait_s is None else wait_s
    todo = probes(system, nodes, client_addresses, timeout_s=timeout_s)
    if not todo:
        return {}
    record(OpType.INVOKE, PROBES, INTROSPECTION, {"probes": sorted(todo)}, None)
    t0 = clock()
    seen: dict[str, dict[str, Any]] = {name: {"ok": False, "attempts": 0, "answer": None}
                                       for name in todo}
    while True:
        for name, probe in todo.items():
            entry = seen[name]
            if entry["ok"]:
                continue
            entry["attempts"] += 1
            try:
                entry["ok"], entry["answer"] = probe()
            except Exception as e:  # an adapter's error is an answer, not a crash
                entry["answer"] = f"{type(e).__name__}: {str(e)[:200]}"
            if entry["ok"]:
                entry["after_s"] = round(clock() - t0, 3)
        if all(e["ok"] for e in seen.values()) or clock() - t0 >= wait_s:
            break
        sleep(poll_s)
    record(OpType.OK, PROBES, INTROSPECTION, seen, None)
    return seen
