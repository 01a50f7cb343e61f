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

The client side needs ``requests``; the server must not (it runs in images
without PyPI access, as ``python -m harness.toxiproxy``), so the client names
are imported lazily, on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.toxiproxy.server import VERSION, ToxiproxyServer

if TYPE_CHECKING:
    from harness.toxiproxy.client import (
        ProxyInfo,
        ToxicInfo,
        ToxiproxyBadRequest,
        ToxiproxyClient,
        ToxiproxyConflict,
        ToxiproxyError,
        ToxiproxyNotFound,
        ToxiproxyUnavailable,
    )
    from harness.toxiproxy.process import ServerProcess, find_toxiproxy_server, toxiproxy_server

__all__ = [
    "VERSION",
    "ProxyInfo",
    "ServerProcess",
    "ToxicInfo",
    "ToxiproxyBadRequest",
    "ToxiproxyClient",
    "ToxiproxyConflict",
    "ToxiproxyError",
    "ToxiproxyNotFound",
    "ToxiproxyServer",
    "ToxiproxyUnavailable",
    "find_toxiproxy_server",
    "toxiproxy_server",
]

_LAZY = {
    "ProxyInfo": "client",
    "ToxicInfo": "client",
    "ToxiproxyBadRequest": "client",
    "ToxiproxyClient": "client",
    "ToxiproxyConflict": "client",
    "ToxiproxyError": "client",
    "ToxiproxyNotFound": "client",
    "ToxiproxyUnavailable": "client",
    "ServerProcess": "process",
    "find_toxiproxy_server": "process",
    "toxiproxy_server": "process",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
