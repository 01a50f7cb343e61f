"""The reference system's client: workload operations as HTTP requests.

Classification follows the node's contract: every error body says whether it
is ``definite`` (the request certainly had no effect: ``fail``); anything
else (a 504 after proposing, a proxy's error page, a timeout, a reset
connection) is ``info``. Reads change nothing, so an unanswered read is
recorded as ``fail``. Every mutation carries a fresh request id, which the
node uses to make the load balancer's retries idempotent.
"""

from __future__ import annotations

import uuid
from typing import Any

from harness.client import Outcome, fail, info, ok, prepare_held
from harness.system import Address
from harness.systems.http import HttpJson

__all__ = ["RefsysClient"]

READS = frozenset({"read", "read-item"})


class RefsysClient:
    """One worker's client; holds the items it claimed until it completes them."""

    #: the node keeps each mutating command's result by request id (replicated
    #: with the state machine), so a resend is applied at most once and answered
    #: as the first was: :class:`harness.client.Retryable`
    idempotency: str = "request-id"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0) -> None:
        self.http = HttpJson(address, timeout_s=timeout_s)
        self.worker = worker
        self.held: list[dict[str, Any]] = []
        self._last_rid: str | None = None

    def close(self) -> None:
        self.http.close()

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        """Complete or renew one held item; with none held, claim instead."""
        return prepare_held(self.held, self.worker, f, value)

    def _outcome(self, f: str, status: int, body: Any) -> Outcome | None:
        if status == 200:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        if f in READS:
            return fail(error or (f"http-{status}" if status else "no-answer"))
        if isinstance(body, dict) and body.get("definite") is True:
            return fail(error or f"http-{status}")
        return info(error or (f"http-{status}" if status else str(body)))

    def invoke(self, f: str, value: Any) -> Outcome:
        self._last_rid = uuid.uuid4().hex
        return self._send(f, value, self._last_rid)

    def retry(self, f: str, value: Any) -> Outcome:
        """Resend with the last request id: the node answers as it did the first time."""
        return self._send(f, value, self._last_rid or uuid.uuid4().hex)

    def _send(self, f: str, value: Any, rid: str) -> Outcome:
        if f == "read":
            key = value[0]
            status, body = self.http.request("GET", f"/kv/{key}")
            return self._outcome(f, status, body) or ok([key, body.get("value")])
        if f == "write":
            key, v = value
            status, body = self.http.request("POST", f"/kv/{key}",
                                             {"value": v, "request_id": rid})
            return self._outcome(f, status, body) or ok(value)
        if f == "cas":
            key, (old, new) = value
            status, body = self.http.request("POST", f"/kv/{key}/cas",
                                             {"from": old, "to": new, "request_id": rid})
            return self._outcome(f, status, body) or ok(value)
        if f == "enqueue":
            status, body = self.http.request(
                "POST", "/enqueue", {"id": value["id"], "payload": value.get("payload"),
                                     "request_id": rid})
            return self._outcome(f, status, body) or ok(value)
        if f == "claim":
            status, body = self.http.request("POST", "/claim",
                                             {"worker": self.worker, "request_id": rid})
            out = self._outcome(f, status, body)
            if out is not None:
                return out
            item = body.get("item")
            if item is None:
                return ok(None)
            got = {"id": item["id"], "token": item["token"]}
            self.held.append(got)
            return ok(got)
        if f in ("complete", "renew", "fail"):
            payload = {**value, "request_id": rid}
            status, body = self.http.request("POST", f"/{f}", payload)
            out = self._outcome(f, status, body)
            if out is not None:
                if f == "renew":
                    self.held = [h for h in self.held if h["id"] != value["id"]]
                return out
            return ok(value)
        if f == "read-item":
            status, body = self.http.request("GET", f"/items/{value['id']}")
            if status == 404:
                return ok({"id": value["id"], "state": None})
            return self._outcome(f, status, body) or ok(
                {"id": value["id"], "state": body.get("state"), "token": body.get("token"),
                 "attempts": body.get("attempts")})
        return fail(f"unsupported operation {f!r}")
