"""The API layer in-process against a stub node: routing, validation, the
mapping of outcomes to status codes, and the local_reads seeded bug."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from reference_system.api import Api, Request
from reference_system.bugs import BUGS, UnknownBug, bugs_from_env
from reference_system.state_machine import WorkQueueMachine


@dataclass
class StubConfig:
    bugs: frozenset[str] = frozenset()


@dataclass
class StubNode:
    cfg: StubConfig = field(default_factory=StubConfig)
    machine: WorkQueueMachine = field(default_factory=WorkQueueMachine)
    executed: list[dict[str, Any]] = field(default_factory=list)
    answer: tuple[int, Any] = (200, {"ok": True, "value": "from-the-log"})

    async def execute(self, command: dict[str, Any]) -> tuple[int, Any]:
        self.executed.append(command)
        return self.answer

    def healthy(self) -> bool:
        return False

    def status(self, *, brief: bool = False) -> dict[str, Any]:
        return {"role": "follower"}


def call(node: StubNode, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    import json

    resp = asyncio.run(Api(node).handle(Request(method, path, {}, {}, body)))  # type: ignore[arg-type]
    return resp.status, json.loads(resp.body)


def test_reads_go_through_the_log() -> None:
    node = StubNode()
    node.machine.kv["k"] = "local"
    assert call(node, "GET", "/kv/k") == (200, {"ok": True, "value": "from-the-log"})
    assert node.executed == [{"op": "read", "key": "k"}]


def test_local_reads_bug_answers_from_local_state() -> None:
    node = StubNode(cfg=StubConfig(bugs=frozenset({"local_reads"})))
    node.machine.kv["k"] = "local"
    assert call(node, "GET", "/kv/k") == (200, {"ok": True, "value": "local"})
    assert node.executed == []


def test_request_id_becomes_the_commands_rid_and_ids_are_generated() -> None:
    node = StubNode(answer=(200, {"ok": True}))
    call(node, "POST", "/enqueue", b'{"payload": 3, "request_id": "r-1"}')
    [cmd] = node.executed
    assert cmd["rid"] == "r-1" and cmd["payload"] == 3 and len(cmd["id"]) == 32


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (504, {"error": "timeout", "definite": False}),
        (503, {"error": "no_leader", "definite": True}),
    ],
)
def test_outcomes_keep_their_definiteness(status: int, body: dict[str, Any]) -> None:
    node = StubNode(answer=(status, body))
    code, got = call(node, "POST", "/kv/x", b'{"value": 1}')
    assert code == status and got["definite"] is body["definite"]


def test_health_is_503_when_the_node_cannot_serve() -> None:
    assert call(StubNode(), "GET", "/health")[0] == 503


def test_bug_names_are_validated() -> None:
    assert bugs_from_env({}) == frozenset()
    assert bugs_from_env({"REFSYS_BUG": "stale_token, local_reads"}) == {
        "stale_token",
        "local_reads",
    }
    with pytest.raises(UnknownBug):
        bugs_from_env({"REFSYS_BUG": "stale_tokens"})
    assert set(BUGS) == {
        "ack_before_quorum",
        "local_reads",
        "stale_token",
        "expire_early",
        "small_quorum",
        "forget_promise",
        "local_clock",
        "wall_clock_lease",
        "no_fsync",
        "retry_fsync",
        "no_depth_limit",
        "no_prevote",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"value": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"value": NaN}',
        b'{"value": 1' + b"0" * 5000 + b"}",
    ],
)
def test_hostile_json_is_a_400(body: bytes) -> None:
    node = StubNode()
    code, got = call(node, "POST", "/kv/k", body)
    assert code == 400 and got["error"] == "bad_request"
    assert node.executed == []
