"""The reference system: a replicated work queue on Multi-Paxos.

The system the harness verifies first. Standard library only, so its image
needs no PyPI. What lives where (see ``README.md`` beside this file):

* ``messages``: ballots, peer messages, disk records, the effects of a step.
* ``replica``: the sans-IO Multi-Paxos core (acceptor, leader, learner).
* ``sim``: a deterministic simulator that runs N replicas with faults and
  checks safety after every step.
* ``codec``, ``storage``: JSON encoding; the write-ahead log and snapshots.
* ``state_machine``, ``leases``: the work queue and key-value map; when a
  leader may expire a lease.
* ``node``, ``api``, ``peers``, ``worker``: the asyncio process: HTTP
  client API (on aiohttp), peer RPC, worker loop.
* ``local``: a local cluster of node processes behind HAProxy.
* ``bugs``: the seeded bugs selected by ``REFSYS_BUG``.
"""

from __future__ import annotations
