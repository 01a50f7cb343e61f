"""Toxics added, updated and removed at random moments while a connection carries data.

A nemesis adds and removes toxics under live traffic all the time, and a proxy
that mishandles one change leaves a connection broken for good, which the
harness would then blame on the system under test. Whatever the schedule, once
every toxic is gone a connection is in one of two states:

- **alive**, and then everything the client sent came back, in order and
  complete (latency, bandwidth, slicer and slow_close only delay; nothing that
  drops data leaves the connection open afterwards);
- **ended** (closed or reset), and then what came back is a prefix of what was
  sent: a toxic may cut a stream short, never leave a hole in its middle.

An open connection that stays silent with data missing is the failure this
looks for (a reset_peer removed during its wait once did exactly that).
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toxiproxy_helpers import EchoServer

from harness.toxiproxy import ToxiproxyClient

# Each kind's attributes and their ranges: small, so an example stays short.
_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "latency": {"latency": (0, 40), "jitter": (0, 10)},
    "bandwidth": {"rate": (0, 50)},
    "slicer": {"average_size": (1, 64), "size_variation": (0, 16), "delay": (0, 2000)},
    "slow_close": {"delay": (0, 100)},
    "timeout": {"timeout": (0, 200)},
    "reset_peer": {"timeout": (0, 200)},
    "limit_data": {"bytes": (1, 4000)},
}

_step = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(sorted(_RANGES)),
              st.sampled_from(["upstream", "downstream"]), st.integers(0, 2**16)),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("update"), st.integers(0, 7), st.integers(0, 2**16)),
    st.tuples(st.just("send"), st.integers(1, 3000)),
    st.tuples(st.just("sleep"), st.integers(0, 80)),
)


class _Reader(threading.Thread):
    """Reads the client socket until it ends; remembers what came and how it ended."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.received = bytearray()
        self.ended = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                with self.lock:
                    self.received += data
        self.ended.set()

    def snapshot(self) -> bytes:
        with self.lock:
            return bytes(self.received)


def _attributes(kind: str, seed: int) -> dict[str, int]:
    """The kind's attributes, drawn from its ranges with ``seed`` (so a failing example
    replays exactly)."""
    rng = random.Random(seed)
    return {name: rng.randint(lo, hi) for name, (lo, hi) in _RANGES[kind].items()}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=12))
def test_no_schedule_of_toxics_leaves_a_hole_or_a_silent_connection(
    client: ToxiproxyClient, echo: EchoServer, steps: list[tuple[Any, ...]]
) -> None:
    name = f"churn-{uuid.uuid4().hex[:8]}"
    port = client.create_proxy(name, upstream=echo.address).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=0.2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = _Reader(sock)
    reader.start()
    sent = bytearray()
    live: list[tuple[str, str]] = []  # (toxic name, kind)
    try:
        for n, step in enumerate(steps):
            if step[0] == "add":
                _, kind, stream, seed = step
                toxic = f"t{n}"
                client.add_toxic(name, type=kind, stream=stream, name=toxic,
                                 attributes=_attributes(kind, seed))
                live.append((toxic, kind))
            elif step[0] in ("remove", "update") and live:
                toxic, kind = live[step[1] % len(live)]
                if step[0] == "remove":
                    client.remove_toxic(name, toxic)
                    live.remove((toxic, kind))
                else:
                    client.update_toxic(name, toxic, attributes=_attributes(kind, step[2]))
            elif step[0] == "send" and not reader.ended.is_set():
                block = bytes((len(sent) + i) % 251 for i in range(step[1]))
                try:
                    sock.sendall(block)
                except OSError:
                    pass  # ended meanwhile: what was sent before is what counts
                else:
                    sent += block
            elif step[0] == "sleep":
                time.sleep(step[1] / 1000)
        for toxic, _ in live:
            client.remove_toxic(name, toxic)
        # Every toxic is gone. A probe, then within a few seconds the connection has
        # either ended or delivered everything, the probe too (the slowest toxic here
        # delays by well under that; a removal's close may still be on its way).
        if not reader.ended.is_set():
            probe = b"still there?"
            with contextlib.suppress(OSError):
                sock.sendall(probe)
                sent += probe
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not reader.ended.is_set():
            if reader.snapshot() == bytes(sent):
                break
            time.sleep(0.02)
        got = reader.snapshot()
        assert bytes(sent).startswith(got), (
            f"a hole or garbage: received {len(got)} bytes that are not a prefix of the "
            f"{len(sent)} sent; steps {steps}")
        assert reader.ended.is_set() or got == bytes(sent), (
            f"open but silent: {len(got)} of {len(sent)} bytes came back 5 s after every "
            f"toxic was removed; steps {steps}")
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        reader.join(timeout=2)
        client.delete_proxy(name)
