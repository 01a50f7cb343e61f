"""The etcd and Redis adapters' replica reads, on canned answers (no servers):
what goes into ``state`` and ``items``, what the position is, and that a Redis
server whose offset moves during the read is read again."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.system import HasReplicaState
from harness.systems.etcd import Etcd, replica_dump
from harness.systems.redis import RedisSentinel, read_replica
from harness.systems.refsys import ReferenceSystem


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def kv(key: str, value: str, mod: int) -> dict[str, str]:
    """A key as etcd's JSON gateway writes it (int64 fields as strings)."""
    return {"key": b64(key), "value": b64(value), "create_revision": "2",
            "mod_revision": str(mod), "version": "1"}


def test_every_adapter_has_the_ability() -> None:
    for system in (ReferenceSystem(), Etcd(), RedisSentinel()):
        assert isinstance(system, HasReplicaState)


def test_etcd_dump_splits_items_from_keys_and_hashes_revisions_too() -> None:
    answer: dict[str, Any] = {"header": {"revision": "9"},
              "kvs": [kv("x", "1", 3), kv("q/item/a", json.dumps({"state": "queued"}), 5),
                      kv("q/ready/a", "", 5)]}
    d = replica_dump(answer)
    assert d["applied"] == 9
    assert d["state"] == {"x": "1", "q/ready/a": ""}
    assert d["items"] == {"a": {"state": "queued", "token": 5}}
    same = replica_dump(json.loads(json.dumps(answer)))
    assert same["digest"] == d["digest"]
    rewritten = {**answer, "kvs": [kv("x", "1", 4), *answer["kvs"][1:]]}
    other = replica_dump(rewritten)
    # equal values written at another revision: the dump agrees, the digest does not
    assert other["state"] == d["state"] and other["digest"] != d["digest"]


def test_etcd_reads_a_member_at_a_revision_from_its_own_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``replica_state_at``: a serializable range at ``revision`` (etcd keeps every
    revision until compaction); the position is the one asked, ``now`` the member's."""
    from harness.system import ReadsReplicaAt
    from harness.systems import etcd as etcd_module

    asked: list[tuple[str, dict[str, Any]]] = []

    def gateway(http: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        asked.append((path, body))
        return {"header": {"revision": "12"}, "kvs": [kv("x", "1", 3)]}

    monkeypatch.setattr(etcd_module, "gateway_call", gateway)
    system = Etcd()
    assert isinstance(system, ReadsReplicaAt)
    addr = {system.client_role: ("127.0.0.1", 1)}
    got = system.replica_state_at("n1", addr, 7, timeout_s=1.0)  # type: ignore[arg-type]
    assert (got["applied"], got["now"], got["state"]) == (7, 12, {"x": "1"})
    ((path, body),) = asked
    assert path == "/v3/kv/range" and body["revision"] == "7" and body["serializable"] is True

    def compacted(http: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise etcd_module.EtcdError(400, "etcdserver: mvcc: required revision has been compacted")

    monkeypatch.setattr(etcd_module, "gateway_call", compacted)
    with pytest.raises(HarnessError, match=r"at revision 7 failed: .*compacted"):
        system.replica_state_at("n1", addr, 7, timeout_s=1.0)  # type: ignore[arg-type]


class FakeRedis:
    """Answers from a dict of keys; the offset moves by ``moves`` on the first reads."""

    def __init__(self, keys: dict[str, tuple[str, Any]], *, moves: int = 0) -> None:
        self.keys = keys
        self.offset = 100
        self.moves = moves

    def execute_command(self, *args: Any) -> Any:
        name = args[0]
        if name == "INFO":
            if self.moves:
                self.moves -= 1
                self.offset += 14
            return f"# Replication\r\nrole:slave\r\nmaster_replid:abc\r\n" \
                   f"master_repl_offset:{self.offset}\r\n"
        if name == "KEYS":
            return list(self.keys)
        kind, value = self.keys.get(args[1], ("none", None))
        if name == "TYPE":
            return kind
        if name == "HGETALL":
            return [x for k, v in value.items() for x in (k, v)]
        if name == "ZRANGE":
            return [x for m, s in value for x in (m, s)]
        return value


KEYS: dict[str, tuple[str, Any]] = {
    "q:item:a": ("hash", {"state": "processing", "token": "3", "attempts": "1"}),
    "q:ready": ("list", ["b"]),
    "q:leases": ("zset", [("a", "1795600000.5")]),
    "q:token": ("string", "3"),
}


def test_redis_read_gives_items_keys_and_the_replication_position() -> None:
    d = read_replica(FakeRedis(KEYS))
    assert d["applied"] == [100, "abc"]
    assert d["items"] == {"a": {"state": "processing", "token": "3", "attempts": "1"}}
    assert d["state"] == {"q:leases": [["a", "1795600000.5"]], "q:ready": ["b"],
                          "q:token": "3"}


def test_redis_read_is_repeated_while_the_offset_moves_and_gives_up_after_a_few() -> None:
    # before 114, after 128: read again; then 128 both times
    assert read_replica(FakeRedis(KEYS, moves=2))["applied"] == [128, "abc"]
    with pytest.raises(HarnessError, match="kept moving"):
        read_replica(FakeRedis(KEYS, moves=100))
