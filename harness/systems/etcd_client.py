"""A client of etcd 3.4 through its JSON gateway (``/v3/kv/...``): registers and a work queue.

Registers are plain keys: ``read`` is a linearizable range, ``write`` a
put, ``cas`` a transaction comparing the value. The work queue is a small
protocol of etcd transactions, the way a user would build one on etcd:

* ``q/item/<id>``: the item's record ``{"state", "attempts", "payload", "result"}``.
  The ``mod_revision`` a claim gives it is the fencing token: any later
  write of the record (another claim, the completion) changes it, so a
  transaction that compares it admits only the current holder.
* ``q/ready/<id>``: present while the item is queued, so a claim finds work
  with one range instead of scanning every record.
* ``q/held/<id>``: the lease deadline (wall-clock seconds) while the item is
  processing. A renewal rewrites only this key, so the token survives it.

A claim takes a ready item, or else one whose lease has run out; a
completion or renewal is a transaction on the token. Classification is
Jepsen's rule: a failed comparison is a definite ``fail`` (the transaction
ran and did nothing); any other error of a mutation (timeouts, "leader
changed", a dropped connection) is ``info``, since the proposal may still
commit. Reads change nothing, so a failed read is a ``fail``.
"""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address
from harness.systems.http import HttpJson

__all__ = ["EtcdClient", "EtcdError", "b64", "gateway_call", "prefix_end"]

READS = frozenset({"read", "read-item"})


class EtcdError(Exception):
    """An etcd request that did not answer 200; ``status`` 0 means no answer at all;
    ``definite`` means the request certainly never reached etcd (a refused connection)."""

    def __init__(self, status: int, message: str, *, definite: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.definite = definite


class CompareFailed(Exception):
    """A transaction whose comparison failed: certainly nothing happened."""


def gateway_call(http: HttpJson, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to a gateway path; the decoded answer, or EtcdError."""
    status, answer = http.request("POST", path, body)
    if status != 200 or not isinstance(answer, dict):
        msg = (answer.get("error") or answer.get("message")) if isinstance(answer, dict) \
            else answer
        raise EtcdError(status, str(msg or f"http-{status}"),
                        definite=status == 0 and isinstance(answer, dict)
                        and answer.get("definite") is True)
    return answer


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unb64(s: str | None) -> str | None:
    return None if s is None else base64.b64decode(s).decode()


def prefix_end(prefix: str) -> str:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class EtcdClient:
    """One worker's client: the registers and the queue over one node's gateway."""

    #: etcd keeps no request ids: a resend is a new transaction. An enqueue's
    #: create-if-absent and a completion's compare on the token refuse a resend of
    #: something that already happened, so nothing is applied twice, but the
    #: resend's answer does not speak for the first attempt
    idempotency: str = "none"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0,
                 lease_ms: float = 2000.0, serializable: bool = False) -> None:
        self.http = HttpJson(address, timeout_s=timeout_s)
        #: serve the pure reads (``read``, ``read-item``) from the member's own
        #: store; the queue's claims and completions always compare in a transaction
        self.serializable = serializable
        self.worker = worker
        self.lease_s = lease_ms / 1000.0
        self.held: list[dict[str, Any]] = []
        self.rng = random.Random()
        self._wrote = False  # whether the current operation sent a write

    def close(self) -> None:
        self.http.close()

    # --- the gateway -----------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return gateway_call(self.http, path, body)

    def get(self, key: str, *, serializable: bool = False) -> tuple[str | None, int]:
        """(value, mod_revision) of ``key``; (None, 0) when it does not exist."""
        body: dict[str, Any] = {"key": b64(key)}
        if serializable:
            body["serializable"] = True
        kvs = self.call("/v3/kv/range", body).get("kvs") or []
        if not kvs:
            return None, 0
        return unb64(kvs[0].get("value", "")), int(kvs[0].get("mod_revision", 0))

    def keys(self, prefix: str, *, limit: int = 0) -> list[tuple[str, str, int]]:
        """(key, value, mod_revision) of keys under ``prefix``, in key order."""
        body: dict[str, Any] = {"key": b64(prefix), "range_end": prefix_end(prefix)}
        if limit:
            body["limit"] = limit
        kvs = self.call("/v3/kv/range", body).get("kvs") or []
        return [(unb64(kv["key"]) or "", unb64(kv.get("value", "")) or "",
                 int(kv.get("mod_revision", 0))) for kv in kvs]

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> int:
        """Run a transaction; its revision when the comparison held, else CompareFailed."""
        self._wrote = True
        answer = self.call("/v3/kv/txn", {"compare": compare, "success": success})
        if not answer.get("succeeded", False):  # proto3 JSON leaves out a false
            raise CompareFailed()
        return int(answer.get("header", {}).get("revision", 0))

    @staticmethod
    def mod_is(key: str, rev: int) -> dict[str, Any]:
        """A comparison: ``key``'s mod_revision is ``rev`` (0: the key does not exist)."""
        if rev == 0:
            return {"key": b64(key), "target": "CREATE", "result": "EQUAL",
                    "create_revision": "0"}
        return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(rev)}

    @staticmethod
    def put(key: str, value: str) -> dict[str, Any]:
        return {"request_put": {"key": b64(key), "value": b64(value)}}

    @staticmethod
    def delete(key: str) -> dict[str, Any]:
        return {"request_delete_range": {"key": b64(key)}}

    # --- the client protocol -----------------------------------------------------------

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def retry(self, f: str, value: Any) -> Outcome:
        """Resend: the system has no request ids, so it is simply sent again."""
        return self.invoke(f, value)

    def invoke(self, f: str, value: Any) -> Outcome:
        self._wrote = False
        try:
            return self._invoke(f, value)
        except CompareFailed:
            if f == "renew":
                self.held = [h for h in self.held if h["id"] != value["id"]]
            return fail("compare-failed")
        except EtcdError as e:
            # Only a transaction or a put writes; an error before one was sent
            # (a claim's or a completion's preliminary reads), or a write whose
            # connection was refused, changed nothing.
            if f in READS or not self._wrote or e.definite:
                return fail(str(e))
            return info(str(e))

    def _invoke(self, f: str, value: Any) -> Outcome:
        if f == "read":
            key = value[0]
            v, _ = self.get(f"reg/{key}", serializable=self.serializable)
            return ok([key, None if v is None else json.loads(v)])
        if f == "write":
            key, v = value
            self._wrote = True
            self.call("/v3/kv/put", {"key": b64(f"reg/{key}"), "value": b64(json.dumps(v))})
            return ok(value)
        if f == "cas":
            key, (old, new) = value
            k = f"reg/{key}"
            self.txn([{"key": b64(k), "target": "VALUE", "result": "EQUAL",
                       "value": b64(json.dumps(old))}], [self.put(k, json.dumps(new))])
            return ok(value)
        if f == "enqueue":
            iid = value["id"]
            record = {"state": "queued", "attempts": 0, "payload": value.get("payload")}
            self.txn([self.mod_is(f"q/item/{iid}", 0)],
                     [self.put(f"q/item/{iid}", json.dumps(record)),
                      self.put(f"q/ready/{iid}", "")])
            return ok(value)
        if f == "claim":
            return self._claim()
        if f == "complete":
            iid, token = value["id"], value["token"]
            record = self._record(iid, token)
            record.update(state="completed", result=value.get("result"))
            self.txn([self.mod_is(f"q/item/{iid}", token)],
                     [self.put(f"q/item/{iid}", json.dumps(record)), self.delete(f"q/held/{iid}")])
            return ok(value)
        if f == "renew":
            iid, token = value["id"], value["token"]
            deadline = time.time() + self.lease_s
            self.txn([self.mod_is(f"q/item/{iid}", token)],
                     [self.put(f"q/held/{iid}", repr(deadline))])
            return ok(value)
        if f == "read-item":
            iid = value["id"]
            raw, rev = self.get(f"q/item/{iid}", serializable=self.serializable)
            if raw is None:
                return ok({"id": iid, "state": None})
            rec = json.loads(raw)
            return ok({"id": iid, "state": rec["state"], "attempts": rec.get("attempts"),
                       "token": rev if rec["state"] == "processing" else None})
        return fail(f"unsupported operation {f!r}")

    def _record(self, iid: str, token: int) -> dict[str, Any]:
        """The item's record when the token is still current (else CompareFailed)."""
        raw, rev = self.get(f"q/item/{iid}")
        if raw is None or rev != token:
            raise CompareFailed()
        rec: dict[str, Any] = json.loads(raw)
        return rec

    def _claim(self) -> Outcome:
        """Take a ready item, else one whose lease ran out; ok(None) when there is none.

        Several workers race for the same keys; a lost race (a failed
        comparison) moves on to the next candidate rather than failing the op.
        """
        ready = self.keys("q/ready/", limit=16)
        self.rng.shuffle(ready)
        candidates = [(k.removeprefix("q/ready/"), "ready", r) for k, _, r in ready]
        if not candidates:
            now = time.time()
            candidates = [(k.removeprefix("q/held/"), "held", r)
                          for k, v, r in self.keys("q/held/") if _deadline(v) < now]
        for iid, kind, rev in candidates[:8]:
            raw, item_rev = self.get(f"q/item/{iid}")
            if raw is None:
                continue
            rec = json.loads(raw)
            rec.update(state="processing", attempts=int(rec.get("attempts") or 0) + 1)
            deadline = time.time() + self.lease_s
            ops = [self.put(f"q/item/{iid}", json.dumps(rec)),
                   self.put(f"q/held/{iid}", repr(deadline))]
            if kind == "ready":
                ops.append(self.delete(f"q/ready/{iid}"))
            try:
                token = self.txn([self.mod_is(f"q/item/{iid}", item_rev),
                                  self.mod_is(f"q/{kind}/{iid}", rev)], ops)
            except CompareFailed:
                continue
            got = {"id": iid, "token": token}
            self.held.append(got)
            return ok(got)
        return ok(None)


def _deadline(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return 0.0

