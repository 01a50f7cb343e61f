"""The replica tested by the messages it sends, the records it writes and the
timers it keeps, one input at a time (no simulator)."""

from __future__ import annotations

import random

import pytest

from reference_system.messages import (
    Accept,
    Accepted,
    AcceptRecord,
    Ballot,
    CatchupReply,
    CatchupRequest,
    Effects,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    PromiseRecord,
    Snapshot,
)
from reference_system.replica import Config, NotLeader, Replica, Role
from reference_system.sim import ChainMachine

CFG = Config(heartbeat_ms=50, election_timeout_ms=300, retransmit_ms=100, window_slots=2)


def replica(node_id: int = 1, *, now_ms: float = 0, **kw: object) -> Replica:
    return Replica(
        node_id,
        [1, 2, 3],
        ChainMachine(),
        now_ms=now_ms,
        rng=random.Random(0),
        config=CFG,
        **kw,  # type: ignore[arg-type]
    )


def sent(fx: Effects, kind: type) -> list:
    """Messages of a kind, whether they wait for the records or not."""
    return [(e.dst, e.msg) for e in [*fx.early, *fx.messages] if isinstance(e.msg, kind)]


def campaign(r: Replica, now_ms: float = 1000) -> Effects:
    """Drive ``r`` through a granted pre-vote into phase 1."""
    fx = r.tick(now_ms)
    [(_, pv), _] = sent(fx, PreVote)
    fx = r.handle(PreVoteReply(2, pv.ballot, True), now_ms)
    assert r.role is Role.CANDIDATE
    return fx


def elect(r: Replica, now_ms: float = 1000) -> Effects:
    """Drive ``r`` to leadership with empty promises from node 2."""
    campaign(r, now_ms)
    return r.handle(Promise(2, r.ballot, (), 0, 0), now_ms)


def test_follower_campaigns_after_its_randomized_timeout() -> None:
    r = replica()
    assert CFG.election_timeout_ms <= r.next_deadline_ms() <= 2 * CFG.election_timeout_ms
    assert r.tick(CFG.election_timeout_ms - 1).empty()
    fx = r.tick(2 * CFG.election_timeout_ms)
    assert r.role is Role.FOLLOWER and not fx.records  # a pre-vote first
    assert sent(fx, PreVote) == [(2, PreVote(1, Ballot(1, 1))), (3, PreVote(1, Ballot(1, 1)))]
    fx = r.handle(PreVoteReply(3, Ballot(1, 1), True), 2 * CFG.election_timeout_ms)
    assert r.role is Role.CANDIDATE
    assert fx.records == [PromiseRecord(Ballot(1, 1))]
    assert sent(fx, Prepare) == [(2, Prepare(1, Ballot(1, 1), 1)), (3, Prepare(1, Ballot(1, 1), 1))]


def test_pre_vote_is_refused_while_a_leader_is_live() -> None:
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    fx = r.handle(PreVote(3, Ballot(2, 3)), 1100)
    assert sent(fx, PreVoteReply) == [(3, PreVoteReply(2, Ballot(2, 3), False))]
    fx = r.handle(PreVote(3, Ballot(2, 3)), 1000 + CFG.election_timeout_ms)
    assert sent(fx, PreVoteReply) == [(3, PreVoteReply(2, Ballot(2, 3), True))]


def test_a_closed_link_from_the_leader_starts_failover_after_a_short_grace() -> None:
    """The leader's connection closing (its process died) makes it count as gone after
    ``link_loss_grace_ms``, not the whole election timeout: the follower pre-votes
    within grace plus jitter, and grants the other follower's pre-vote after grace."""
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    assert r.link_lost(1, 1010).empty()
    grace = CFG.link_loss_grace_ms
    assert r.leader_known(1010 + grace - 1) and not r.leader_known(1010 + grace)
    fx = r.handle(PreVote(3, Ballot(2, 3)), 1010 + grace - 1)
    assert sent(fx, PreVoteReply) == [(3, PreVoteReply(2, Ballot(2, 3), False))]
    fx = r.handle(PreVote(3, Ballot(2, 3)), 1010 + grace)
    assert sent(fx, PreVoteReply) == [(3, PreVoteReply(2, Ballot(2, 3), True))]
    deadline = r.next_deadline_ms()
    assert 1010 + grace <= deadline <= 1010 + grace + CFG.election_timeout_ms / 2
    assert sent(r.tick(deadline), PreVote)


def test_a_leader_heard_again_after_its_link_closed_stays_in_office() -> None:
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    r.link_lost(1, 1010)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1060)  # reconnected: the next heartbeat
    assert r.leader_known(1060 + CFG.election_timeout_ms - 1)
    assert r.next_deadline_ms() >= 1060 + CFG.election_timeout_ms
    assert not sent(r.tick(1300), PreVote)


def test_a_closed_link_from_another_follower_changes_nothing() -> None:
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    deadline = r.next_deadline_ms()
    r.link_lost(3, 1010)
    assert r.next_deadline_ms() == deadline
    assert r.leader_known(1000 + CFG.election_timeout_ms - 1)


def test_a_node_back_from_a_pause_does_not_depose_the_leader() -> None:
    r = replica(3)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    fx = r.tick(5000)  # long pause: its election timer has run out
    assert sent(fx, PreVote) and not fx.records
    r.handle(PreVoteReply(2, Ballot(2, 3), False), 5001)
    fx = r.handle(Accept(1, Ballot(1, 1), (), 0), 5002)  # the leader's heartbeat
    assert sent(fx, Accepted) and not sent(fx, Nack)
    assert r.promised == Ballot(1, 1) and r.leader_id == 1
    assert not sent(r.tick(5003), PreVote)


def test_acceptor_persists_its_promise_and_refuses_lower_ballots() -> None:
    r = replica(2)
    fx = r.handle(Prepare(1, Ballot(3, 1), 1), 1000)
    assert fx.records == [PromiseRecord(Ballot(3, 1))]
    assert sent(fx, Promise) == [(1, Promise(2, Ballot(3, 1), (), 0, 0))]
    fx = r.handle(Prepare(3, Ballot(2, 3), 1), 1001)
    assert sent(fx, Nack) == [(3, Nack(2, Ballot(2, 3), Ballot(3, 1)))]
    fx = r.handle(Accept(3, Ballot(2, 3), ((1, ("x",)),), 0), 1002)
    assert sent(fx, Nack) and not fx.records


def test_restarted_acceptor_still_refuses_what_it_promised_against() -> None:
    r = replica(2)
    fx = r.handle(Prepare(1, Ballot(3, 1), 1), 1000)
    again = replica(2, records=fx.records)
    fx = again.handle(Accept(3, Ballot(2, 3), ((1, ("x",)),), 0), 2000)
    assert sent(fx, Nack) and not sent(fx, Accepted)


def test_forget_promise_bug_accepts_below_the_promise_after_restart() -> None:
    r = replica(2, bugs=frozenset({"forget_promise"}))
    fx = r.handle(Prepare(1, Ballot(3, 1), 1), 1000)
    assert sent(fx, Promise) and fx.records == []
    again = replica(2, records=fx.records)
    fx = again.handle(Accept(3, Ballot(2, 3), ((1, ("x",)),), 0), 2000)
    assert sent(fx, Accepted)  # the anomaly the harness must catch


def test_new_leader_reproposes_the_highest_ballot_value_and_fills_gaps() -> None:
    r = replica()
    campaign(r)
    b = r.ballot
    p2 = Promise(2, b, ((2, Ballot(1, 2), ("old",)), (4, Ballot(1, 2), ("x",))), 0, 0)
    fx = r.handle(p2, 1000)
    assert r.role is Role.LEADER
    [(_, acc2), (_, acc3)] = sent(fx, Accept)
    assert acc2.entries == ((1, ()), (2, ("old",)), (3, ()), (4, ("x",)))
    assert acc2 == acc3
    assert [rec for rec in fx.records if isinstance(rec, AcceptRecord)] == [
        AcceptRecord(s, b, v) for s, v in acc2.entries
    ]


def test_stickiness_live_leader_is_not_deposed() -> None:
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    assert r.leader_id == 1 and r.leader_known(1100)
    assert r.handle(Prepare(3, Ballot(5, 3), 1), 1100).empty()
    fx = r.handle(Prepare(3, Ballot(5, 3), 1), 1000 + CFG.election_timeout_ms)
    assert sent(fx, Promise)


def test_propose_on_a_follower_raises_not_leader_with_a_hint() -> None:
    r = replica(2)
    r.handle(Accept(1, Ballot(1, 1), (), 0), 1000)
    with pytest.raises(NotLeader) as e:
        r.propose(["x"], 1001)
    assert e.value.leader_id == 1


def test_leader_batches_commands_in_a_window_of_slots() -> None:
    r = replica()
    elect(r)
    fx = r.propose(["a", "b", "c"], 1001)
    [(_, acc), _] = sent(fx, Accept)
    assert acc.entries == ((1, ("a", "b", "c")),)
    assert fx.records == [AcceptRecord(1, r.ballot, ("a", "b", "c"))]
    fx = r.propose(["d"], 1002)
    fx2 = r.propose(["e"], 1003)  # window of 2 slots is full: queued
    assert not sent(fx2, Accept) and list(r.pending) == ["e"]
    fx = r.handle(Accepted(2, r.ballot, (1,), 0), 1004)
    assert fx.applied == []  # the leader's own accept is not yet durable
    fx = r.durable(r.sync_marker(), 1004)
    assert [a.slot for a in fx.applied] == [1]
    [(_, acc), _] = sent(fx, Accept)
    assert acc.entries == ((3, ("e",)),) and acc.commit == 1


def test_follower_learns_commit_only_for_slots_accepted_at_the_leaders_ballot() -> None:
    r = replica(2)
    r.handle(Accept(3, Ballot(1, 3), ((1, ("old",)),), 0), 1000)
    fx = r.handle(Accept(1, Ballot(2, 1), ((2, ("b",)),), 2), 1100)
    # slot 1 was accepted at an older ballot: it may not be what was chosen
    assert r.applied == 0
    assert sent(fx, CatchupRequest) == [(1, CatchupRequest(2, 1))]
    fx = r.handle(CatchupReply(1, None, ((1, ("a",)), (2, ("b",))), 2), 1101)
    assert [(a.slot, a.value) for a in fx.applied] == [(1, ("a",)), (2, ("b",))]


def test_leader_sends_phase_2a_before_its_own_fsync_and_votes_after_it() -> None:
    r = replica()
    elect(r)
    fx = r.propose(["a"], 1001)
    assert {e.dst for e in fx.early if isinstance(e.msg, Accept)} == {2, 3}
    assert not fx.messages
    marker = r.sync_marker()
    fx = r.propose(["b"], 1002)  # taken after the marker: not covered by it
    r.handle(Accepted(2, r.ballot, (1, 2), 0), 1003)
    fx = r.durable(marker, 1004)
    assert [a.slot for a in fx.applied] == [1]
    fx = r.durable(r.sync_marker(), 1005)
    assert [a.slot for a in fx.applied] == [2]


def test_leader_retransmits_unacknowledged_slots_and_sends_heartbeats() -> None:
    r = replica()
    elect(r)
    r.propose(["a"], 1001)
    fx = r.tick(1001 + CFG.retransmit_ms)
    assert {dst for dst, m in sent(fx, Accept) if m.entries == ((1, ("a",)),)} == {2, 3}
    r.durable(r.sync_marker(), 1101)
    r.handle(Accepted(2, r.ballot, (1,), 0), 1200)
    fx = r.tick(1300)  # slot 1 is chosen: only heartbeats now
    assert all(m.entries == () for _, m in sent(fx, Accept))


def test_leader_cut_off_from_a_quorum_steps_down() -> None:
    r = replica()
    elect(r)
    r.propose(["a"], 1001)
    r.tick(1000 + CFG.election_timeout_ms + 1)
    assert r.role is Role.FOLLOWER


def test_lagging_node_installs_a_snapshot_and_remaining_slots() -> None:
    r = replica(3)
    snap = Snapshot(10, [10, 1234])
    fx = r.handle(CatchupReply(1, snap, ((11, ("k",)),), 11), 1000)
    assert fx.snapshot == snap and r.applied == 11
    assert r.snapshot_slot == 10


def test_candidate_behind_a_compacted_acceptor_catches_up_instead_of_leading() -> None:
    r = replica()
    campaign(r)
    fx = r.handle(Promise(2, r.ballot, (), 50, 60), 1000)
    assert r.role is Role.FOLLOWER
    assert sent(fx, CatchupRequest) == [(2, CatchupRequest(1, 1))]


def test_serving_catchup_sends_a_snapshot_when_the_asker_is_behind_it() -> None:
    cfg = Config(snapshot_every_slots=2, window_slots=8)
    r = Replica(1, [1, 2, 3], ChainMachine(), now_ms=0, rng=random.Random(0), config=cfg)
    elect(r)
    for c in "abc":
        r.propose([c], 1001)
    r.durable(r.sync_marker(), 1001)
    fx = r.handle(Accepted(2, r.ballot, (1, 2), 0), 1002)
    assert fx.snapshot is not None and fx.snapshot.slot == 2
    r.handle(Accepted(2, r.ballot, (3,), 0), 1002)
    fx = r.handle(CatchupRequest(3, 1), 1003)
    [(_, reply)] = sent(fx, CatchupReply)
    assert reply.snapshot.slot == 2 and reply.entries == ((3, ("c",)),)


def test_recovery_from_snapshot_and_records() -> None:
    recs = [
        PromiseRecord(Ballot(4, 2)),
        AcceptRecord(5, Ballot(4, 2), ("x",)),
        AcceptRecord(7, Ballot(4, 2), ("y",)),
    ]
    r = replica(1, snapshot=Snapshot(5, [3, 99]), records=recs)
    assert r.applied == 5 and r.promised == Ballot(4, 2)
    assert r.accepted == {7: (Ballot(4, 2), ("y",))}
    assert r.durable_records() == [
        PromiseRecord(Ballot(4, 2)),
        AcceptRecord(7, Ballot(4, 2), ("y",)),
    ]
