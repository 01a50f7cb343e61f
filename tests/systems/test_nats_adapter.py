"""The NATS JetStream adapter without a server: its configuration, options and outcomes.

The outcomes follow Jepsen's rule (``fail`` only when the server certainly did
nothing): these tests pin each path by running the clients against a port
where nothing listens, or with the connection replaced by a script.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.client import idempotency
from harness.cluster.local import free_port
from harness.errors import HarnessError
from harness.system import Address, NodeContext, System, peer_addressing
from harness.systems import get_system
from harness.systems.nats import KV_READS, NatsJetStream
from harness.systems.nats_client import NatsKvClient, NatsQueueClient


def ctx(name: str = "n1") -> NodeContext:
    nodes = ("n1", "n2", "n3")
    return NodeContext(name=name, index=nodes.index(name), nodes=nodes,
                       listen={"cluster": Address("0.0.0.0", 6222),
                               "client": Address("0.0.0.0", 4222)},
                       peers={}, data_dir="/data", backend="docker")


def test_adapter_shape_and_routes_name_every_peer() -> None:
    assert isinstance(get_system("nats"), System)
    s = NatsJetStream()
    assert peer_addressing(s) == "named"
    conf = s.config(ctx("n2"))
    # routes go to the other nodes by name (the backend proxies them), never to itself
    assert '"nats-route://n1:6222", "nats-route://n3:6222"' in conf
    assert "n2:6222\"" not in conf and "server_name: n2" in conf
    assert "no_advertise: true" in conf and "jetstream {" in conf
    argv = s.launch(ctx()).argv
    assert argv[:2] == ("/bin/sh", "-c") and "exec nats-server -c /data/nats.conf" in argv[2]


def test_lease_is_the_ack_wait_and_is_stated() -> None:
    s = NatsJetStream(lease_ms=3000)
    assert s.lease_ms == 3000 and s.takeover_grace_ms > 0


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=12))
def test_bad_kv_reads_option_is_a_clear_error(mode: str) -> None:
    if mode in KV_READS:
        assert get_system("nats", kv_reads=mode).kv_reads == mode
    else:
        with pytest.raises(HarnessError, match="kv_reads"):
            get_system("nats", kv_reads=mode)


@settings(max_examples=30, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_lease_option_is_checked(lease: float) -> None:
    if lease >= 100:
        assert NatsJetStream(lease_ms=lease).lease_ms == lease
    else:
        with pytest.raises(ValueError):
            NatsJetStream(lease_ms=lease)


def test_idempotency_is_the_systems_promise() -> None:
    a = Address("127.0.0.1", free_port())
    q = NatsQueueClient(a, worker="w", timeout_s=0.5)
    kv = NatsKvClient(a, worker="w", timeout_s=0.5)
    try:
        assert idempotency(q) == "request-id"  # Nats-Msg-Id deduplication
        assert idempotency(kv) == "none"  # a KV put carries no request id
    finally:
        q.close()
        kv.close()


@pytest.mark.parametrize(("f", "value"), [
    ("enqueue", {"id": "i1", "payload": 1}), ("claim", None),
    ("read-item", {"id": "i1"}), ("complete", {"id": "i1", "token": 1}),
])
def test_nothing_sent_is_a_definite_fail(f: str, value: Any) -> None:
    """No server listens: the connection fails before anything is sent."""
    c = NatsQueueClient(Address("127.0.0.1", free_port()), worker="w", timeout_s=0.5)
    try:
        assert str(c.invoke(f, value).type) == "fail"
    finally:
        c.close()


def test_kv_write_without_server_is_fail_and_sent_write_error_is_info() -> None:
    c = NatsKvClient(Address("127.0.0.1", free_port()), worker="w", timeout_s=0.5)
    try:
        assert str(c.invoke("write", ["k1", 1]).type) == "fail"
        c._sent = True  # as if the put had gone out when the connection dropped
        assert str(c._classify("write", TimeoutError("no answer"), ("read",)).type) == "info"
        assert str(c._classify("read", TimeoutError("no answer"), ("read",)).type) == "fail"
    finally:
        c.close()


def test_no_responders_is_a_definite_fail_even_after_sending() -> None:
    from nats.errors import NoRespondersError

    c = NatsQueueClient(Address("127.0.0.1", 1), worker="w")
    try:
        c._sent = True
        assert str(c._classify("enqueue", NoRespondersError(), ("read-item",)).type) == "fail"
        assert str(c._classify("enqueue", TimeoutError(), ("read-item",)).type) == "info"
    finally:
        c.close()


def test_complete_of_an_item_not_held_is_refused() -> None:
    c = NatsQueueClient(Address("127.0.0.1", 1), worker="w")

    async def connected() -> None:
        return None

    c._connect = connected  # type: ignore[method-assign]
    try:
        o = c.invoke("complete", {"id": "i9", "token": 3})
        assert str(o.type) == "fail" and o.error == "not-held"
        assert c.prepare("complete", None) == ("claim", None)
    finally:
        c.close()
