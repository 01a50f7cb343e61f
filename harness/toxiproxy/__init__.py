"""A Toxiproxy 2.x compatible server, and the harness's client for any Toxiproxy.

Faults on the network (latency, bandwidth limits, cut links, resets) are
injected by proxies that sit on every link between the nodes, as in the
Jepsen setups that use Toxiproxy. The real ``toxiproxy-server`` is used when
it is on ``PATH``; otherwise :mod:`harness.toxiproxy.server` (standard
library only) speaks the same API.

Public names:

- :class:`ToxiproxyClient` and its errors: talk to any Toxiproxy.
- :func:`toxiproxy_server` / :class:`ServerProcess`: run a server as a
  subprocess for the duration of a ``with`` block.
- :func:`find_toxiproxy_server`: the real binary on ``PATH``, if any.
- :class:`ToxiproxyServer`: our server, in-process (tests embed it).
"""

from __future__ import annotations

from harness.toxiproxy.client import (
    ProxyInfo,
    ToxicInfo,
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyNotFound,
    ToxiproxyRequestError,
    ToxiproxyUnavailable,
)
from harness.toxiproxy.process import ServerProcess, find_toxiproxy_server, toxiproxy_server
from harness.toxiproxy.server import VERSION, ToxiproxyServer

__all__ = [
    "VERSION",
    "ProxyInfo",
    "ServerProcess",
    "ToxicInfo",
    "ToxiproxyClient",
    "ToxiproxyConflict",
    "ToxiproxyError",
    "ToxiproxyNotFound",
    "ToxiproxyRequestError",
    "ToxiproxyServer",
    "ToxiproxyUnavailable",
    "find_toxiproxy_server",
    "toxiproxy_server",
]
