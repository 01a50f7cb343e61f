"""A node in-process (asyncio): fail-stop on an fsync error, and the
durability rule of the driver (no reply before its records are synced)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reference_system.local import free_base_port, http_json
from reference_system.node import Node, NodeConfig
from reference_system.replica import Config
from reference_system.storage import StorageFailed


def single_node(tmp_path: Path) -> NodeConfig:
    """A one-node cluster: it leads itself, so a write needs only its own disk."""
    base = free_base_port(1)
    return NodeConfig(
        node_id=1,
        peer_listen=("127.0.0.1", base + 101),
        peers={},
        http=("127.0.0.1", base + 1),
        data_dir=tmp_path,
        request_timeout_s=2.0,
        paxos=Config(election_timeout_ms=50),
    )


async def wait_leader(node: Node) -> None:
    for _ in range(200):
        if node.core is not None and node.core.role.value == "leader":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no leader")


def test_an_fsync_error_stops_the_node(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(single_node(tmp_path))
        await node.start()
        try:
            await wait_leader(node)
            assert await node.execute({"op": "write", "key": "a", "value": 1}) == (
                200,
                {"ok": True},
            )

            def broken() -> None:
                raise StorageFailed("EIO")

            node.storage.sync = broken  # type: ignore[method-assign]
            task = asyncio.create_task(node.execute({"op": "write", "key": "a", "value": 2}))
            await asyncio.wait_for(node.stopped.wait(), 5)
            assert isinstance(node.fatal, StorageFailed)
            status, _ = await task
            assert status == 504  # never acknowledged
            assert node.machine.kv["a"] == 1  # and never applied
            assert not node.healthy()
        finally:
            await node.stop()

    asyncio.run(main())


def test_a_restarted_single_node_recovers_its_state(tmp_path: Path) -> None:
    cfg = single_node(tmp_path)

    async def write_then_stop() -> None:
        node = Node(cfg)
        await node.start()
        try:
            await wait_leader(node)
            for k in range(20):
                assert (await node.execute({"op": "write", "key": f"k{k}", "value": k}))[0] == 200
        finally:
            await node.stop()

    async def read_back() -> dict[str, int]:
        node = Node(cfg)
        await node.start()
        try:
            await wait_leader(node)
            await node.execute({"op": "read", "key": "k0"})  # applies the recovered log
            return dict(node.machine.kv)
        finally:
            await node.stop()

    asyncio.run(write_then_stop())
    assert asyncio.run(read_back()) == {f"k{k}": k for k in range(20)}


@pytest.mark.parametrize("n", [1])
def test_http_api_of_an_in_process_node(tmp_path: Path, n: int) -> None:
    cfg = single_node(tmp_path)

    async def main() -> None:
        node = Node(cfg)
        await node.start()
        try:
            await wait_leader(node)
            port = cfg.http[1]
            code, body = await asyncio.to_thread(http_json, port, "POST", "/kv/x", {"value": 5})
            assert code == 200
            code, body = await asyncio.to_thread(http_json, port, "GET", "/kv/x")
            assert body["value"] == 5
        finally:
            await node.stop()

    asyncio.run(main())


def test_replica_state_is_served_by_the_node_alone(tmp_path: Path) -> None:
    """A node of a three-node cluster whose peers never answer has no leader, so
    nothing through the log works; its own applied state is still readable."""
    base = free_base_port(3)
    cfg = NodeConfig(
        node_id=1,
        peer_listen=("127.0.0.1", base + 101),
        peers={2: ("127.0.0.1", base + 102), 3: ("127.0.0.1", base + 103)},
        http=("127.0.0.1", base + 1),
        data_dir=tmp_path,
        request_timeout_s=1.0,
    )

    async def main() -> None:
        node = Node(cfg)
        await node.start()
        try:
            port = cfg.http[1]
            code, _ = await asyncio.to_thread(http_json, port, "GET", "/kv/x")
            assert code == 503  # no leader: a read through the log cannot be served
            code, body = await asyncio.to_thread(http_json, port, "GET", "/replica")
            assert code == 200
            assert body["node"] == 1 and body["applied"] == 0
            assert (body["kv"], body["items"], body["queue"]) == ({}, {}, [])
            assert body["digest"] == node.machine.contents()["digest"]
        finally:
            await node.stop()

    asyncio.run(main())


def test_replies_wait_for_their_records_to_be_synced(tmp_path: Path) -> None:
    """The driver's half of the durability rule: a promise or an accept is on
    disk before the reply that shows it leaves the node."""
    import json
    import threading

    from reference_system.codec import encode_message
    from reference_system.messages import Accept, Ballot, Prepare

    base = free_base_port(3)
    cfg = NodeConfig(
        node_id=1,
        peer_listen=("127.0.0.1", base + 101),
        peers={2: ("127.0.0.1", base + 102), 3: ("127.0.0.1", base + 103)},  # nobody there
        http=("127.0.0.1", base + 1),
        data_dir=tmp_path,
        paxos=Config(election_timeout_ms=60_000),  # stay a follower
    )

    async def main() -> None:
        node = Node(cfg)
        await node.start()
        sent: list[dict] = []  # type: ignore[type-arg]
        gate = threading.Event()
        real_sync = node.storage.sync

        def slow_sync() -> None:
            gate.wait(10)
            real_sync()

        assert node.transport is not None
        node.transport.send = lambda dst, frame: sent.append(json.loads(frame[4:]))  # type: ignore[method-assign]
        node.storage.sync = slow_sync  # type: ignore[method-assign]
        try:
            node._on_peer(2, encode_message(Prepare(2, Ballot(5, 2), 1)))
            node._on_peer(2, encode_message(Prepare(2, Ballot(5, 2), 1)))  # a resend: no new record
            await asyncio.sleep(0.2)
            assert sent == []  # the promise is not yet durable
            gate.set()
            for _ in range(100):
                if len(sent) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [m["t"] for m in sent] == ["promise", "promise"]
            gate.clear()
            sent.clear()
            entry = [[1, [{"op": "write", "key": "a", "value": 1}]]]
            node._on_peer(2, {**encode_message(Accept(2, Ballot(5, 2), (), 0)), "e": entry})
            await asyncio.sleep(0.2)
            assert sent == []
            gate.set()
            for _ in range(100):
                if sent:
                    break
                await asyncio.sleep(0.01)
            assert sent[0]["t"] == "accepted" and sent[0]["s"] == [1]
        finally:
            gate.set()
            await node.stop()

    asyncio.run(main())
