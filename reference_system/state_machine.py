"""The replicated state machine: a work queue with fencing tokens and a
key-value map.

Commands are JSON objects ``{"op": ..., ...}``. Every replica applies the same
commands in the same order and must reach the same state, so nothing here reads
a clock or a random source: time comes from the command (``ts``, stamped by the
leader when it proposed) and item ids from the command or the log position.

Work items move ``queued -> processing -> completed``, or back to ``queued``
on ``fail``/``expire``, or to ``dead`` after ``max_attempts`` attempts. The
fencing token of a claim is its log position (``slot * 1024 + index``), so
tokens are strictly increasing across the whole history and a holder whose
lease was taken over is refused by token comparison alone.

Every mutating command may carry a request id ``rid``: a retried request
(after a timeout, through another node, via the load balancer) gets the
result of the first one instead of acting twice. The table of results is
replicated state (it is in snapshots and the digest), so it is bounded the
same way on every replica, from the command sequence alone: at most
``dedup_max`` entries and ``dedup_max_bytes`` of encoded results, oldest
first out. A count alone did not bound memory: a claim's result carries the
item's payload (up to a request body, 1 MiB), so 100,000 of them could hold
100 GB. A request id evicted is answered as new, so a retry must come within
the table's span (100,000 requests by default, far beyond any client's
retry window).

Results are dicts: ``{"ok": true, ...}`` or ``{"error": code, ...}`` where
``code`` is one of :data:`ERRORS` (definite: the command had no effect).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict, deque
from typing import Any

__all__ = ["ERRORS", "WorkQueueMachine"]

ERRORS = {
    "unknown": "no such item",
    "stale": "the fencing token is not the item's current one",
    "not_processing": "the item is not being processed",
    "exists": "an item with this id already exists",
    "mismatch": "compare-and-set: the current value differs",
    "bad_command": "the command is malformed",
}

MUTATING = {"enqueue", "claim", "renew", "complete", "fail", "expire", "write", "cas"}


class WorkQueueMachine:
    """The queue and the map; deterministic given the command sequence."""

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        dedup_max: int = 100_000,
        dedup_max_bytes: int = 64 << 20,
        bugs: frozenset[str] = frozenset(),
    ):
        self.max_attempts = max_attempts
        self.dedup_max = dedup_max
        self.dedup_max_bytes = dedup_max_bytes
        self.bugs = bugs
        self.items: dict[str, dict[str, Any]] = {}
        self.queue: deque[str] = deque()
        self.kv: dict[str, Any] = {}
        self.results: OrderedDict[str, Any] = OrderedDict()
        # Encoded size of each result and their sum: derived, rebuilt on restore.
        self._result_bytes: dict[str, int] = {}
        self.results_bytes = 0
        self._processing: set[str] = set()  # an index, rebuilt on restore

    # ------------------------------------------------------------ protocol

    def apply(self, command: Any, position: int) -> Any:
        """Apply one command; a malformed one is refused, never raised."""
        if not isinstance(command, dict):
            return {"error": "bad_command"}
        op = command.get("op")
        rid = command.get("rid")
        if op in MUTATING and isinstance(rid, str) and rid in self.results:
            return self.results[rid]
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return {"error": "bad_command"}
        ts = command.get("ts", 0)
        if "local_clock" in self.bugs:
            # Bug "local_clock": stamp from this replica's clock, not the leader's.
            ts = int(time.time() * 1000)
        try:
            result = handler(command, position, ts)
        except (KeyError, TypeError, ValueError):
            result = {"error": "bad_command"}
        if op in MUTATING and isinstance(rid, str):
            self._remember(rid, result)
        return result

    @staticmethod
    def _entry_bytes(rid: str, result: Any) -> int:
        """An entry's size as the snapshot encodes it (the same on every replica)."""
        return len(rid) + len(json.dumps(result, separators=(",", ":")))

    def _remember(self, rid: str, result: Any) -> None:
        """Keep ``result`` for ``rid``; evict the oldest past either bound (never the newest)."""
        size = self._entry_bytes(rid, result)
        self.results[rid] = result
        self._result_bytes[rid] = size
        self.results_bytes += size
        while len(self.results) > 1 and (
            len(self.results) > self.dedup_max or self.results_bytes > self.dedup_max_bytes
        ):
            old, _ = self.results.popitem(last=False)
            self.results_bytes -= self._result_bytes.pop(old, 0)

    def snapshot(self) -> Any:
        """The state as JSON text: an immutable deep copy.

        Text, not objects: encoding is the one pass the snapshot needs anyway
        (to disk, to a lagging peer), and it is several times faster than
        any deep copy; this runs on the node's event loop.
        """
        return json.dumps(
            {
                "items": self.items,
                "queue": list(self.queue),
                "kv": self.kv,
                "results": list(self.results.items()),
            },
            separators=(",", ":"),
        )

    def restore(self, state: Any) -> None:
        """Replace the state by a :meth:`snapshot`'s."""
        state = json.loads(state if isinstance(state, str) else json.dumps(state))
        self.items = state["items"]
        self.queue = deque(state["queue"])
        self.kv = state["kv"]
        self.results = OrderedDict((k, v) for k, v in state["results"])
        self._result_bytes = {k: self._entry_bytes(k, v) for k, v in self.results.items()}
        self.results_bytes = sum(self._result_bytes.values())
        self._processing = {i for i, it in self.items.items() if it["state"] == "processing"}

    # ------------------------------------------------------------ queries

    def contents(self) -> dict[str, Any]:
        """Everything a replica holds, for comparing replicas: a fresh deep copy.

        ``digest`` covers the request-id table too (it is replicated state: a
        retry's answer comes from it), which the dump leaves out for size; two
        replicas whose dumps agree but whose digests differ differ there.
        """
        state = json.loads(self.snapshot())
        # Sorted keys: equal states must hash equal whatever order a replica
        # happened to build its dicts in (lists keep their order: it matters).
        canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return {"digest": digest, "kv": state["kv"], "items": state["items"],
                "queue": state["queue"]}

    def item(self, item_id: str) -> dict[str, Any] | None:
        """The public view of an item (a copy), or None."""
        it = self.items.get(item_id)
        return None if it is None else dict(it)

    def processing(self) -> dict[str, tuple[int, int]]:
        """Items being processed: id -> (token, renewals), for the lease tracker."""
        out = {}
        for i in self._processing:
            it = self.items[i]
            out[i] = (it["token"], it["renewals"])
        return out

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        out = {"queued": 0, "processing": 0, "completed": 0, "dead": 0}
        for it in self.items.values():
            out[it["state"]] += 1
        return out

    # ------------------------------------------------------------ work items

    def _current(self, c: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The item if ``c["token"]`` is its current token, else an error result."""
        item_id, token = c["id"], c["token"]
        if not isinstance(item_id, str) or not isinstance(token, int) or isinstance(token, bool):
            return None, {"error": "bad_command"}
        it = self.items.get(item_id)
        if it is None:
            return None, {"error": "unknown"}
        if it["token"] != token:
            return None, {"error": "stale", "token": it["token"], "state": it["state"]}
        if it["state"] != "processing":
            return None, {"error": "not_processing", "state": it["state"]}
        return it, None

    def _op_enqueue(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        item_id = c.get("id")
        if item_id is None:
            item_id = f"item-{position}"
        if not isinstance(item_id, str) or not item_id:
            return {"error": "bad_command"}
        if item_id in self.items:
            return {"error": "exists", "id": item_id}
        self.items[item_id] = {
            "id": item_id,
            "payload": c.get("payload"),
            "state": "queued",
            "token": 0,
            "attempts": 0,
            "renewals": 0,
            "holder": None,
            "result": None,
            "enqueued_ms": ts,
            "updated_ms": ts,
        }
        self.queue.append(item_id)
        return {"ok": True, "id": item_id}

    def _op_claim(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        worker = c["worker"]
        if not isinstance(worker, str):
            return {"error": "bad_command"}
        while self.queue:
            it = self.items[self.queue.popleft()]
            if it["state"] != "queued":
                continue
            it.update(state="processing", token=position, holder=worker, renewals=0, updated_ms=ts)
            it["attempts"] += 1
            self._processing.add(it["id"])
            return {
                "ok": True,
                "item": {
                    "id": it["id"],
                    "payload": it["payload"],
                    "token": position,
                    "attempts": it["attempts"],
                },
            }
        return {"ok": True, "item": None}

    def _op_renew(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        it, err = self._current(c)
        if it is None:
            return err
        it["renewals"] += 1
        it["updated_ms"] = ts
        return {"ok": True, "token": it["token"]}

    def _op_complete(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        item_id, token = c["id"], c["token"]
        it = self.items.get(item_id) if isinstance(item_id, str) else None
        if it is not None and it["state"] == "completed" and it["token"] == token:
            return {"ok": True, "result": it["result"], "repeat": True}
        if "stale_token" in self.bugs and it is not None and it["state"] != "queued":
            # Bug "stale_token": no fencing check, so a holder whose lease was
            # taken over still completes: two accepted completions of one item.
            it.update(state="completed", result=c.get("result"), token=token, updated_ms=ts)
            self._processing.discard(it["id"])
            return {"ok": True, "result": it["result"]}
        it, err = self._current(c)
        if it is None:
            return err
        it.update(state="completed", result=c.get("result"), holder=None, updated_ms=ts)
        self._processing.discard(it["id"])
        return {"ok": True, "result": it["result"]}

    def _requeue(self, it: dict[str, Any], ts: Any) -> dict[str, Any]:
        self._processing.discard(it["id"])
        it["holder"] = None
        it["updated_ms"] = ts
        if it["attempts"] >= self.max_attempts:
            it["state"] = "dead"
        else:
            it["state"] = "queued"
            self.queue.append(it["id"])
        return {"ok": True, "state": it["state"]}

    def _op_fail(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        it, err = self._current(c)
        return err if it is None else self._requeue(it, ts)

    def _op_expire(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        it, err = self._current(c)
        if it is None:
            return err
        if "renewals" in c and c["renewals"] != it["renewals"]:
            return {"error": "stale", "token": it["token"], "state": it["state"]}
        return self._requeue(it, ts)

    def _op_get(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        it = self.items.get(c["id"]) if isinstance(c["id"], str) else None
        if it is None:
            return {"error": "unknown"}
        return {"ok": True, "item": dict(it)}

    # ------------------------------------------------------------ key-value

    def _op_read(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        key = c["key"]
        if not isinstance(key, str):
            return {"error": "bad_command"}
        return {"ok": True, "value": self.kv.get(key)}

    def _op_write(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        key = c["key"]
        if not isinstance(key, str):
            return {"error": "bad_command"}
        self.kv[key] = c["value"]
        return {"ok": True}

    def _op_cas(self, c: dict[str, Any], position: int, ts: Any) -> Any:
        key = c["key"]
        if not isinstance(key, str):
            return {"error": "bad_command"}
        current = self.kv.get(key)
        if current != c["from"]:
            return {"error": "mismatch", "value": current}
        self.kv[key] = c["to"]
        return {"ok": True}
