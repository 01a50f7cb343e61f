"""How the etcd and Redis adapters classify outcomes, without a server.

Jepsen's rule decides verdicts: ``fail`` only when the operation certainly did
not happen, ``info`` when it may have. A wrong ``fail`` hides a lost write (the
checker assumes it never happened); a wrong ``info`` only weakens the check.
These tests pin each path, with the transport replaced by a script.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis import exceptions as redis_errors

from harness.client import Outcome
from harness.cluster.local import ClusterError, LocalCluster
from harness.system import Address
from harness.systems.etcd import Etcd
from harness.systems.etcd_client import EtcdClient, EtcdError
from harness.systems.redis import RedisSentinel
from harness.systems.redis_client import _ATTEMPTS, RedisQueueClient

A = Address("127.0.0.1", 1)


class ScriptedEtcd(EtcdClient):
    """An EtcdClient whose gateway answers from a list (an exception is raised)."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(A, worker="w1")
        self.answers = list(answers)
        self.paths: list[str] = []

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.paths.append(path)
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        assert isinstance(a, dict)
        return a


def kv(value: str, rev: int) -> dict[str, Any]:
    import base64

    return {"kvs": [{"key": "", "value": base64.b64encode(value.encode()).decode(),
                     "mod_revision": str(rev)}]}


def outcome(o: Outcome) -> str:
    return str(o.type)


def test_etcd_write_error_is_info_read_error_is_fail() -> None:
    c = ScriptedEtcd([EtcdError(0, "timeout"), EtcdError(0, "timeout")])
    assert outcome(c.invoke("write", ["k", 1])) == "info"
    assert outcome(c.invoke("read", ["k"])) == "fail"


def test_etcd_failed_comparison_is_a_definite_fail() -> None:
    c = ScriptedEtcd([{"header": {"revision": "9"}}])  # proto3 JSON omits succeeded=false
    assert outcome(c.invoke("cas", ["k", [1, 2]])) == "fail"
    c = ScriptedEtcd([{"succeeded": True, "header": {"revision": "9"}}])
    assert outcome(c.invoke("cas", ["k", [1, 2]])) == "ok"


def test_etcd_completion_failing_before_its_transaction_is_fail() -> None:
    # the read of the record fails: nothing was written
    c = ScriptedEtcd([EtcdError(503, "leader changed")])
    assert outcome(c.invoke("complete", {"id": "i1", "token": 5})) == "fail"
    # the record moved on (another claim): a stale token, certainly not completed
    c = ScriptedEtcd([kv('{"state": "processing"}', 7)])
    assert outcome(c.invoke("complete", {"id": "i1", "token": 5})) == "fail"
    # the transaction itself gets no answer: it may commit
    c = ScriptedEtcd([kv('{"state": "processing"}', 5), EtcdError(0, "timeout")])
    assert outcome(c.invoke("complete", {"id": "i1", "token": 5})) == "info"
    assert c.paths == ["/v3/kv/range", "/v3/kv/txn"]


def test_etcd_claim_takes_the_transaction_revision_as_token() -> None:
    c = ScriptedEtcd([
        {"kvs": [{"key": "cS9yZWFkeS9pMQ==", "value": "", "mod_revision": "3"}]},  # q/ready/i1
        kv('{"state": "queued", "attempts": 0}', 3),
        {"succeeded": True, "header": {"revision": "11"}},
    ])
    o = c.invoke("claim", None)
    assert outcome(o) == "ok" and o.value == {"id": "i1", "token": 11}
    assert c.held == [{"id": "i1", "token": 11}]
    f, v = c.prepare("complete", None)
    assert (f, v["id"], v["token"]) == ("complete", "i1", 11)


def test_etcd_lost_claim_race_moves_on_and_finds_nothing() -> None:
    c = ScriptedEtcd([
        {"kvs": [{"key": "cS9yZWFkeS9pMQ==", "value": "", "mod_revision": "3"}]},
        kv('{"state": "queued"}', 3),
        {"header": {"revision": "12"}},  # another worker won the item
    ])
    o = c.invoke("claim", None)
    assert outcome(o) == "ok" and o.value is None and c.held == []


class ScriptedRedis(RedisQueueClient):
    """redis-py's answers from a list; ``(exception, sent)`` raises after counting the
    send as the client's connection does (see test_redis_client for the real path)."""

    def __init__(self, replies: list[Any]) -> None:
        super().__init__("n1", {"n1": {"redis": A, "sentinel": A}}, worker="w1")
        self.replies = list(replies)

    def _send(self, f: str, value: Any) -> Any:
        r = self.replies.pop(0)
        exc, sent = r if isinstance(r, tuple) else (None, True)
        _ATTEMPTS.may_have_run += int(sent)
        if exc is not None:
            raise exc
        return r


@pytest.mark.parametrize(("reply", "expected"), [
    ((redis_errors.ConnectionError("refused"), False), "fail"),
    ((redis_errors.ConnectionError("reset"), True), "info"),
    ((redis_errors.TimeoutError("timeout"), True), "info"),
    ((redis_errors.ReadOnlyError("You can't write against a read only replica."), True),
     "fail"),
    ((redis_errors.ResponseError("ERR something odd"), True), "info"),
    (1, "ok"),
    (0, "fail"),  # the id exists already
])
def test_redis_enqueue_classification(reply: Any, expected: str) -> None:
    c = ScriptedRedis([reply])
    assert outcome(c.invoke("enqueue", {"id": "i1", "payload": 1})) == expected


def test_redis_claim_complete_and_stale_token() -> None:
    c = ScriptedRedis([["i1", 4], 0, ["i2", 5], 1])
    assert c.invoke("claim", None).value == {"id": "i1", "token": 4}
    f, v = c.prepare("complete", None)
    assert outcome(c.invoke(f, v)) == "fail"  # token 4 is no longer current
    assert c.invoke("claim", None).value == {"id": "i2", "token": 5}
    f, v = c.prepare("complete", None)
    assert outcome(c.invoke(f, v)) == "ok"


def test_redis_read_failure_is_fail_and_unknown_op_is_refused() -> None:
    c = ScriptedRedis([(redis_errors.ConnectionError("reset"), True)])
    assert outcome(c.invoke("read-item", {"id": "i1"})) == "fail"
    assert outcome(c.invoke("write", ["k", 1])) == "fail"


def test_named_systems_refuse_the_local_backend(tmp_path: Any) -> None:
    for system in (Etcd(), RedisSentinel()):
        with pytest.raises(ClusterError, match="docker backend"):
            LocalCluster(system, nodes=3, run_dir=tmp_path, run_id="t")


def test_refused_connection_is_a_definite_fail_for_http_adapters() -> None:
    """Nothing leaves on a refused connection, so even a write is certainly not done;
    a connection that is accepted and then dropped may have carried the write."""
    import socket
    import threading

    from harness.cluster.local import free_port
    from harness.systems.http import HttpJson
    from harness.systems.refsys_client import RefsysClient

    closed = Address("127.0.0.1", free_port())
    assert HttpJson(closed, timeout_s=1).request("GET", "/") == (
        0, {"error": "connection-refused", "definite": True})
    assert outcome(RefsysClient(closed, worker="w").invoke("write", ["k", 1])) == "fail"
    assert outcome(EtcdClient(closed, worker="w").invoke("write", ["k", 1])) == "fail"

    srv = socket.create_server(("127.0.0.1", 0))

    def drop() -> None:
        for _ in range(2):
            conn, _ = srv.accept()
            conn.recv(65536)
            conn.close()

    threading.Thread(target=drop, daemon=True).start()
    dropping = Address("127.0.0.1", srv.getsockname()[1])
    try:
        assert outcome(RefsysClient(dropping, worker="w").invoke("write", ["k", 1])) == "info"
        assert outcome(EtcdClient(dropping, worker="w").invoke("write", ["k", 1])) == "info"
    finally:
        srv.close()


def test_prepare_held_names_the_oldest_item_and_claims_when_none() -> None:
    from harness.client import prepare_held

    held: list[dict[str, Any]] = []
    assert prepare_held(held, "w1", "complete", None) == ("claim", None)
    held += [{"id": "a", "token": 1}, {"id": "b", "token": 2}]
    assert prepare_held(held, "w1", "renew", None) == ("renew", {"id": "a", "token": 1})
    assert len(held) == 2  # a renewal keeps the item
    assert prepare_held(held, "w1", "complete", None) == (
        "complete", {"id": "a", "token": 1, "result": "done-by-w1"})
    assert held == [{"id": "b", "token": 2}]
    assert prepare_held(held, "w1", "enqueue", {"id": "c"}) == ("enqueue", {"id": "c"})
