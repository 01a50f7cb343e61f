"""Seeded bugs: known mistakes the harness must catch, off by default.

Select with the environment variable ``REFSYS_BUG`` (one name, or several
separated by commas). Each bug is a few lines behind a flag where it lives;
this table says what each one breaks and which anomaly a correct checker
should report.
"""

from __future__ import annotations

import os

__all__ = ["BUGS", "ENV_VAR", "UnknownBug", "bugs_from_env"]

ENV_VAR = "REFSYS_BUG"

BUGS: dict[str, str] = {
    "ack_before_quorum": (
        "node.py: the leader answers a key-value write or an enqueue as soon as it "
        "proposed it, before a quorum accepted it. Anomaly: an acknowledged write is "
        "lost when the leader crashes or is partitioned (lost enqueue; a later read "
        "does not see an acknowledged write: not linearizable)."
    ),
    "local_reads": (
        "node.py: GET /kv/{key} and GET /items/{id} answer from the receiving node's "
        "local state, without the log or a lease. Anomaly: stale reads from a "
        "lagging follower or a deposed leader (not linearizable)."
    ),
    "stale_token": (
        "state_machine.py: complete() skips the fencing-token check. Anomaly: a "
        "holder whose lease was taken over still completes the item: two accepted "
        "completions of one item (fencing violation)."
    ),
    "expire_early": (
        "leases.py: a new leader expires every inherited lease at once instead of "
        "waiting a full lease time in office. Anomaly: an item is claimed by a second "
        "worker while its first holder's lease is still valid (double execution; "
        "the first holder's completion is refused as stale)."
    ),
    "small_quorum": (
        "replica.py: the quorum is one node too small (1 of 3, 2 of 5). Anomaly: "
        "under a partition two leaders commit different values in the same slot: "
        "split brain, divergent replicas, lost and phantom writes."
    ),
    "forget_promise": (
        "replica.py: the promised ballot is not persisted (and recovery takes it "
        "from promise records only). Anomaly, under crash-restarts that lose "
        "unsynced writes, with partitions: a restarted acceptor accepts an older "
        "leader's value it promised to refuse, or a restarted candidate reuses a "
        "ballot; two values chosen for one slot (lost, phantom or divergent "
        "writes; replicas disagree)."
    ),
    "local_clock": (
        "state_machine.py: a replica stamps work items (enqueued_ms, updated_ms) "
        "with its own wall clock when it applies a command, instead of the leader's "
        "ts carried in the command. Anomaly: replicas diverge (each node holds "
        "different timestamps for the same items at the same log position); no "
        "client read goes through more than one replica, so only comparing the "
        "replicas (the convergence checker) shows it."
    ),
    "no_fsync": (
        "storage.py: Storage.sync() returns without fsyncing the log, so an "
        "acceptor answers a promise or an accept, and a leader acknowledges a "
        "write, while the records are only in the page cache. Anomaly, only under "
        "crashes that lose unsynced writes (the lose-unsynced fault; a SIGKILL "
        "alone loses nothing, the kernel keeps the cache): a crashed node comes "
        "back without promises and accepted values it voted with; two values chosen "
        "for one slot, or acknowledged writes lost (lost enqueue, not linearizable)."
    ),
    "retry_fsync": (
        "storage.py: when fsync of the log fails, Storage.sync() retries until an "
        "fsync succeeds and reports the records durable (PostgreSQL until 2018, "
        "'fsyncgate'): after a failed writeback the kernel marks the dirty pages "
        "clean, so the retry succeeds with the records never written. Anomaly, only "
        "under disk errors (the disk-error fault) on enough nodes at once that no "
        "healthy replica holds the records: after the repair restarts the nodes, "
        "acknowledged writes are gone (lost enqueue, not linearizable). A correct "
        "node stops at the first failed fsync."
    ),
    "wall_clock_lease": (
        "leases.py: the leader measures lease ages on its wall clock (time.time()) "
        "instead of its monotonic clock. Anomaly, under clock faults only: a step of "
        "the leader's wall clock forward by more than a lease expires every lease at "
        "once, so an item is claimed by a second worker while its first holder's "
        "lease is still valid (lease exclusivity; the first holder's completion is "
        "refused as stale)."
    ),
    "no_prevote": (
        "replica.py: a follower whose election timer fires starts an election at once, "
        "skipping the pre-vote round that asks whether a majority has lost its leader "
        "too. Safety holds (Paxos ballots), but a node cut off from the others raises "
        "its ballot election after election, and when the partition heals its first "
        "message carries that ballot to the leader, which steps down: every heal of a "
        "cut-off follower, or of a deposed leader, costs the healthy majority an "
        "election (Raft without PreVote; Cloudflare's 2020 outage). Anomaly: the "
        "leadership checker's leader-disrupted (a progress finding); clients only see "
        "a hiccup inside the recovery grace."
    ),
    "no_depth_limit": (
        "api.py: a request body is not checked against MAX_DEPTH, so a value nested "
        "hundreds of levels (a payload, a key's value, a CAS operand, a result) is "
        "accepted and proposed. Anomaly (hostile input only; client workloads send "
        "flat values): a value up to about 975 levels (CPython 3.11; the node's JSON "
        "parser refuses deeper ones itself) is answered 200, replicated and applied "
        "on every node (robustness: accepted). A few levels deeper (about 976-979) "
        "the leader parses it but cannot encode the accept message that wraps it "
        "(RecursionError, fatal): the leader stops, and each new leader sent the "
        "next such request stops too, so a stream of them leaves no quorum "
        "(availability). A value just under that (975) passes everywhere but is a "
        "poison pill in every log: after the whole cluster restarts, each node that "
        "re-proposes the recovered slot stops on it, and no leader is elected."
    ),
}


class UnknownBug(ValueError):
    """``REFSYS_BUG`` names a bug that does not exist (a typo must not silently
    run a correct system)."""


def bugs_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The bugs selected by ``REFSYS_BUG``; empty when unset."""
    raw = (environ if environ is not None else dict(os.environ)).get(ENV_VAR, "")
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = names - BUGS.keys()
    if unknown:
        raise UnknownBug(f"unknown {ENV_VAR} value(s) {sorted(unknown)}; known: {sorted(BUGS)}")
    return names
