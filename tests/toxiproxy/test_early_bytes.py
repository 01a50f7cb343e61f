"""Bytes a connection delivers before the proxy has wired it are kept, in order.

Python before 3.11.4 ignores ``pause_reading()`` called from
``connection_made`` (CPython gh-103607), so on Debian 12's Python 3.11.2 (the
container images) a client's first request could be read while the upstream
was still being dialled, and was dropped: every proxied HTTP request hung.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.toxiproxy.link import Endpoint

pytestmark = pytest.mark.ours_only


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def feed(self, data: memoryview) -> None:
        self.events.append(bytes(data))

    def feed_eof(self) -> None:
        self.events.append("eof")


def _read(endpoint: Endpoint, data: bytes) -> None:
    buffer = endpoint.get_buffer(len(data))
    buffer[: len(data)] = data
    endpoint.buffer_updated(len(data))


def test_bytes_and_eof_read_while_wiring_reach_the_link_on_resume() -> None:
    endpoint = Endpoint(lambda _e: None)
    _read(endpoint, b"GET / HTTP/1.0\r\n")
    _read(endpoint, b"\r\n")  # the shared read buffer is reused: the first read is copied
    endpoint.eof_received()
    link = _Recorder()
    endpoint.outbound = link  # type: ignore[assignment]
    endpoint.resume("wiring")
    assert link.events == [b"GET / HTTP/1.0\r\n\r\n", "eof"]
    endpoint.resume("wiring")  # nothing is delivered twice
    assert len(link.events) == 2
