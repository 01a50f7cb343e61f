"""The RabbitMQ adapter without a broker: options, launch commands, the client's
classification of what it could not even send. (The campaigns are in
``test_rabbitmq_campaigns.py``; the conformance kit runs it in Docker.)"""

from __future__ import annotations

import shlex
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.client import Outcome
from harness.errors import HarnessError
from harness.history import OpType
from harness.system import Address, NodeContext, System, peer_addressing
from harness.systems import get_system, installed_systems
from harness.systems.rabbitmq import PARTITION_HANDLING, QUEUE_TYPES, RabbitMQ
from harness.systems.rabbitmq_client import RabbitQueueClient


def ctx(name: str) -> NodeContext:
    nodes = ("n1", "n2", "n3")
    system = RabbitMQ()
    return NodeContext(name, nodes.index(name), nodes,
                       {r: Address("0.0.0.0", p) for r, p in system.ports.items()},
                       {o: {r: Address(o, system.ports[r]) for r in system.peer_roles}
                        for o in nodes if o != name}, "/data", backend="docker")


def test_installed_and_shaped() -> None:
    assert "rabbitmq" in installed_systems()
    system = get_system("rabbitmq")
    assert isinstance(system, System)
    assert peer_addressing(system) == "named"
    assert set(system.peer_roles) == {"epmd", "dist"}
    assert system.workloads == ("queue",)
    assert not hasattr(system, "lease_ms")  # no lease promised: no stuck verdicts


@given(queue=st.text(max_size=20), handling=st.text(max_size=20))
def test_bad_options_are_a_clear_error(queue: str, handling: str) -> None:
    if queue in QUEUE_TYPES and handling in PARTITION_HANDLING:
        assert get_system("rabbitmq", queue=queue, partition_handling=handling)
        return
    with pytest.raises(HarnessError, match="bad options for system 'rabbitmq'"):
        get_system("rabbitmq", queue=queue, partition_handling=handling)


def test_launch_makes_every_node_a_member_with_a_pinned_dist_port() -> None:
    first, second = RabbitMQ().launch(ctx("n1")), RabbitMQ().launch(ctx("n2"))
    for launch, name in ((first, "n1"), (second, "n2")):
        script = launch.argv[-1]
        assert f"export RABBITMQ_NODENAME=rabbit@{name}\n" in script
        assert launch.env["RABBITMQ_DIST_PORT"] == "25672"
        assert "net_ticktime 8" in launch.env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
        assert ".erlang.cookie" in script
        # the first node seeds, the others join it; a node that lost its data is
        # forgotten by a peer that still lists it, rejoins and is added back to the
        # quorum queues
        words = " ".join(shlex.split(script))  # the eval as the shell hands it over
        assert f"Me = 'rabbit@{name}', First = 'rabbit@n1'" in words
        for call in ("rabbit_mnesia:join_cluster(", "forget_cluster_node",
                     "rabbit_quorum_queue, shrink_all", "rabbit_quorum_queue:grow("):
            assert call in words, call
        # the adapter's membership marker outlives a crash that loses unsynced names
        assert "sync /data/joined /data\n" in script
    assert "cluster_partition_handling = autoheal" in RabbitMQ(
        partition_handling="autoheal").launch(ctx("n3")).argv[-1]


@pytest.mark.parametrize(("handling", "restart_after"), [
    ("pause_minority", ("pause",)), ("autoheal", ()), ("ignore", ("pause", "partition"))])
def test_restart_after_states_the_documented_recovery(handling: str,
                                                      restart_after: tuple[str, ...]) -> None:
    """RabbitMQ's partitions guide: pause_minority does nothing against a suspended node,
    ignore heals nothing, autoheal restarts the losers itself."""
    assert RabbitMQ(partition_handling=handling).restart_after == restart_after


def closed_port() -> Address:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return Address("127.0.0.1", s.getsockname()[1])


def test_nothing_sent_is_a_definite_fail() -> None:
    client = RabbitQueueClient(closed_port(), worker="w0", timeout_s=1.0)
    try:
        outs: list[Outcome] = [client.invoke("enqueue", {"id": "i1"}),
                               client.invoke("claim", None),
                               client.invoke("read-item", {"id": "i1"}),
                               client.invoke("nonsense", None)]
        assert [o.type for o in outs] == [OpType.FAIL] * 4, outs
        # an item whose channel is gone cannot be acknowledged: refused unsent
        client.held.append({"id": "i2", "token": None})
        f, v = client.prepare("complete", None)
        assert (f, v["id"]) == ("complete", "i2")
        assert client.invoke(f, v).type is OpType.FAIL
        assert client.invoke("renew", {"id": "i3", "token": None}).type is OpType.FAIL
    finally:
        client.close()


class _FakeConn:
    is_open = True

    def process_data_events(self, time_limit: float = 0.0) -> None:
        return None


class _FakeChannel:
    """Answers a publish as RabbitMQ does when no queue is bound: a ``basic.return``
    (mandatory publishes only), then an ack all the same."""

    is_open, is_closed, is_closing = True, False, False

    def __init__(self, client: RabbitQueueClient, *, routed: bool) -> None:
        self.client, self.routed = client, routed
        self.mandatory: bool | None = None
        self.tag = 0

    def basic_publish(self, *, exchange: str, routing_key: str, body: bytes,
                      mandatory: bool = False, properties: object = None) -> None:
        from types import SimpleNamespace

        self.mandatory, self.tag = mandatory, self.tag + 1
        if mandatory and not self.routed:
            self.client._on_return(self, None, properties, body)
        self.client._on_confirm(SimpleNamespace(method=SimpleNamespace(
            NAME="Basic.Ack", delivery_tag=self.tag, multiple=False)))


@pytest.mark.parametrize("routed", [True, False])
def test_an_unroutable_publish_is_a_definite_fail(routed: bool) -> None:
    """RabbitMQ acks a publish that reached no queue; only a mandatory publish's
    ``basic.return`` tells, and the client must not call that enqueue ok."""
    client = RabbitQueueClient(closed_port(), worker="w0", timeout_s=1.0)
    ch = _FakeChannel(client, routed=routed)
    client._conn, client._ch = _FakeConn(), ch
    out = client.invoke("enqueue", {"id": "i7", "payload": 7})
    assert ch.mandatory is True
    assert out.type is (OpType.OK if routed else OpType.FAIL), out
    if not routed:
        assert "unroutable" in str(out.error)
