"""The replica under the deterministic simulator: safety after every step under
loss, duplication, reordering, partitions, crashes and restarts; liveness
once the network heals. Hypothesis draws the seed and the fault schedule and
shrinks a failing one."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_system.replica import Config
from reference_system.sim import FaultEvent, InvariantViolation, Network, Simulation

FAULT_PHASE_MS = 6000
SMALL_SNAPSHOTS = Config(snapshot_every_slots=40, catchup_max_slots=25)


@st.composite
def fault_schedules(draw: st.DrawFn, nodes: int) -> list[FaultEvent]:
    events: list[FaultEvent] = []
    for _ in range(draw(st.integers(0, 14))):
        at = draw(st.integers(0, FAULT_PHASE_MS))
        kind = draw(st.sampled_from(["crash", "restart", "partition", "heal", "net"]))
        node = draw(st.integers(1, nodes))
        if kind == "crash":
            events.append(FaultEvent(at, "crash", node=node, lose_unsynced=draw(st.booleans())))
        elif kind == "restart":
            events.append(FaultEvent(at, "restart", node=node))
        elif kind == "partition":
            group = draw(st.sets(st.integers(1, nodes), min_size=1, max_size=nodes - 1))
            events.append(FaultEvent(at, "partition", group=tuple(sorted(group))))
        elif kind == "heal":
            events.append(FaultEvent(at, "heal"))
        else:
            loss = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5]))
            dup = draw(st.sampled_from([0.0, 0.1, 0.3]))
            events.append(FaultEvent(at, "net", loss=loss, duplicate=dup))
    return events


def run_campaign(
    seed: int, nodes: int, faults: list[FaultEvent], config: Config, delay_max_ms: int
) -> Simulation:
    sim = Simulation(
        seed=seed,
        nodes=nodes,
        config=config,
        network=Network(delay_ms=(1, delay_max_ms)),
        faults=faults,
    )
    sim.run(FAULT_PHASE_MS + 10, client_every_ms=15)
    sim.heal()
    assert sim.wait_for("final", timeout_ms=20_000), "no progress after the network healed"
    return sim


campaign_args = dict(
    seed=st.integers(0, 2**32),
    nodes=st.sampled_from([3, 5]),
    data=st.data(),
    snapshots=st.booleans(),
    delay_max_ms=st.sampled_from([5, 30, 120]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**campaign_args)
def test_safe_under_faults_and_live_after_heal(
    seed: int, nodes: int, data: st.DataObject, snapshots: bool, delay_max_ms: int
) -> None:
    faults = data.draw(fault_schedules(nodes))
    config = SMALL_SNAPSHOTS if snapshots else Config()
    run_campaign(seed, nodes, faults, config, delay_max_ms)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**campaign_args)
def test_soak_safe_under_faults_and_live_after_heal(
    seed: int, nodes: int, data: st.DataObject, snapshots: bool, delay_max_ms: int
) -> None:
    faults = data.draw(fault_schedules(nodes))
    config = SMALL_SNAPSHOTS if snapshots else Config()
    run_campaign(seed, nodes, faults, config, delay_max_ms)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), nodes=st.sampled_from([3, 5]), data=st.data(),
       delay_max_ms=st.sampled_from([5, 30, 120]))
def test_a_leader_never_learns_a_slot_past_the_one_it_would_propose(
    seed: int, nodes: int, data: st.DataObject, delay_max_ms: int
) -> None:
    """Whatever was chosen lies below a new leader's next slot: its promise quorum
    reports every value a majority accepted, and a candidate one of whose acceptors
    compacted past its first slot steps down to catch up first. So the leader's own
    proposals are all it ever applies (catch-up only brings it up to them), and
    nothing it proposes can land on an applied slot; snapshots every 5 slots and
    catch-up replies of 3 stress the compaction path."""
    from reference_system import replica as replica_module
    from reference_system.replica import Role

    seen: list[tuple[int, int, int]] = []
    apply_ready = replica_module.Replica._apply_ready

    def watched(self: replica_module.Replica) -> None:
        next_slot = self.next_slot
        apply_ready(self)
        if self.role is Role.LEADER and self.applied >= next_slot:
            seen.append((self.id, self.applied, next_slot))

    faults = data.draw(fault_schedules(nodes))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replica_module.Replica, "_apply_ready", watched)
        run_campaign(seed, nodes, faults, Config(snapshot_every_slots=5, catchup_max_slots=3),
                     delay_max_ms)
    assert seen == []


def test_fault_free_cluster_commits_every_command_once() -> None:
    sim = Simulation(seed=7)
    sim.run(2000, client_every_ms=5)
    assert sim.wait_for("final", timeout_ms=2000)
    assert len(sim.command_slot) >= sim.submitted - 1
    applied = {n.core.applied for n in sim.nodes.values() if n.core is not None}
    assert len(applied) == 1


def test_leader_crash_elects_a_new_leader_and_keeps_committing() -> None:
    sim = Simulation(seed=3, config=SMALL_SNAPSHOTS)
    sim.run(1500, client_every_ms=10)
    [old] = sim.leaders()
    sim.crash(old, lose_unsynced=True)
    sim.run(4000, client_every_ms=10)
    leaders = sim.leaders()
    assert leaders and old not in leaders
    sim.restart(old)
    assert sim.wait_for("after", timeout_ms=5000)
    # the restarted node caught up (from a snapshot: the interval is small)
    core = sim.nodes[old].core
    assert core is not None and core.applied >= max(sim.chosen) - 1


def find_violation(bug: str, faults_for: object, seeds: range) -> int | None:
    for seed in seeds:
        sim = Simulation(
            seed=seed,
            network=Network(delay_ms=(1, 20)),
            faults=faults_for(seed),  # type: ignore[operator]
            bugs=frozenset({bug}),
        )
        try:
            sim.run(8000, client_every_ms=5)
        except InvariantViolation:
            return seed
    return None


def test_simulator_catches_a_quorum_one_too_small() -> None:
    def faults(seed: int) -> list[FaultEvent]:
        return [
            FaultEvent(1000 + 700 * k, "partition", group=((k + seed) % 3 + 1,)) for k in range(9)
        ]

    assert find_violation("small_quorum", faults, range(20)) is not None


def test_simulator_catches_a_promise_that_is_not_persisted() -> None:
    """Crash-restarts that lose unsynced writes, with partitions: an acceptor
    that forgot its promise lets two values be chosen (or a ballot be reused)."""

    def faults(seed: int) -> list[FaultEvent]:
        rng = random.Random(seed)
        out: list[FaultEvent] = []
        t = 300
        while t < 8000:
            node = rng.randint(1, 3)
            out.append(FaultEvent(t, "crash", node=node, lose_unsynced=True))
            out.append(FaultEvent(t + rng.randint(20, 400), "restart", node=node))
            if rng.random() < 0.5:
                out.append(
                    FaultEvent(t + rng.randint(0, 300), "partition", group=(rng.randint(1, 3),))
                )
            else:
                out.append(FaultEvent(t + rng.randint(0, 300), "heal"))
            t += rng.randint(100, 600)
        return out

    found = []
    for seed in range(60):
        sim = Simulation(
            seed=seed,
            network=Network(delay_ms=(1, 60), loss=0.1),
            faults=faults(seed),
            bugs=frozenset({"forget_promise"}),
            fsync_probability=0.3,
        )
        try:
            sim.run(8000, client_every_ms=3)
        except InvariantViolation:
            found.append(seed)
    assert found


def test_the_same_schedules_are_safe_without_the_bug() -> None:
    sim = Simulation(
        seed=5,
        network=Network(delay_ms=(1, 60), loss=0.1),
        fsync_probability=0.3,
        faults=[
            FaultEvent(300 + 200 * k, "crash", node=k % 3 + 1, lose_unsynced=True)
            for k in range(30)
        ]
        + [FaultEvent(350 + 200 * k, "restart", node=k % 3 + 1) for k in range(30)],
    )
    sim.run(8000, client_every_ms=3)
    sim.heal()
    assert sim.wait_for("final", timeout_ms=10_000)
