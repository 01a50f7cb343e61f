"""HAProxy in front of a system's nodes: its configuration and its runtime view.

The product brief's answer to a dead or unresponsive instance is a load
balancer that health-checks every node and routes only to healthy ones. The
configuration below is that answer written out: active HTTP checks with a
short interval, ``fall``/``rise`` hysteresis, sessions to a node shut down the
moment it is marked down, and a retry on another server when a connection
cannot be made. Retries are limited to connection failures: a request that reached a node
may have taken effect, and resending it elsewhere can turn the answer the
client sees into a definite failure for a write that happened (the resent
attempt meets a cut-off node that truthfully says "no leader"), which would
make the history lie. Request ids make such retries safe for the system's
state, not for the client's reading of the outcome.

Errors HAProxy makes itself are JSON, never its HTML pages, so a client
reads them as it reads a node's errors (``{"error", "definite", "message"}``)
and does not have to guess what an HTML 502 meant. They are all
``"definite": false``: a 502 or 504 may come after the request reached a
node (which may have applied it), and a 503 after retries can follow an
attempt that did too when ``retry_on`` allows L7 retries. The one definite
error is ``lb-no-server``: the backend answers it itself, before choosing a
server, when it has no usable server at all, so no node can have seen the
request. A 503 that HAProxy produces later (a queue timeout, connections
failing on every retry) stays indeterminate: telling those apart from an
attempt that reached a node is more than the config can prove. A node's own
errors pass through unchanged (``http-error`` replaces only HAProxy's).

The runtime API (``show stat``) is how the harness sees what the LB saw: the
observer polls it and records when each server went DOWN and UP.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from harness import sockets
from harness.system import Address, HealthCheck

__all__ = ["LB_ERRORS", "NO_SERVER_ERROR", "ServerState", "haproxy_config", "read_server_states"]

#: HAProxy's own errors, by status: (error code, message). All indeterminate.
LB_ERRORS: dict[int, tuple[str, str]] = {
    400: ("lb-bad-request", "the load balancer could not parse the request"),
    403: ("lb-forbidden", "the load balancer refused the request"),
    408: ("lb-request-timeout", "the client sent its request too slowly"),
    500: ("lb-internal", "the load balancer failed internally"),
    502: ("lb-bad-gateway", "a node closed or sent an invalid answer"),
    503: ("lb-unavailable", "no node could be reached"),
    504: ("lb-gateway-timeout", "a node did not answer in time"),
}
#: Answered before any server is chosen: certainly no node saw the request.
NO_SERVER_ERROR = ("lb-no-server", "no node is up behind the load balancer")


def _json_error(code: str, message: str, *, definite: bool) -> str:
    """The body, single-quoted for haproxy.cfg (nothing in it needs escaping)."""
    body = json.dumps(
        {"error": code, "definite": definite, "message": message, "source": "lb"},
        separators=(",", ":"),
    )
    assert "'" not in body and "\\" not in body
    return f"'{body}'"


def haproxy_config(
    *,
    bind: Address,
    servers: Mapping[str, Address],
    check: HealthCheck,
    stats: Address,
    retry_on: str = "conn-failure",
    timeout_server_s: float = 30.0,
) -> str:
    """A complete ``haproxy.cfg`` for one frontend balancing over ``servers``."""
    lines = [
        "global",
        "    maxconn 4096",
        f"    stats socket ipv4@{stats.host}:{stats.port} level admin",
        "    log stdout format raw local0 info",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 1s",
        "    timeout client 60s",
        f"    timeout server {int(timeout_server_s * 1000)}ms",
        f"    timeout check {check.timeout_ms}ms",
        "    retries 3",
        f"    retry-on {retry_on}",
        "    option redispatch 1",
        # L7 retries (anything beyond conn-failure) resend a request that already
        # reached a server: HAProxy can only do so for a request it has buffered.
        "    option http-buffer-request",
        *(
            f"    http-error status {status} content-type application/json "
            f"string {_json_error(code, message, definite=False)}"
            for status, (code, message) in LB_ERRORS.items()
        ),
        "",
        "frontend clients",
        f"    bind {bind.host}:{bind.port}",
        "    default_backend nodes",
        "",
        "backend nodes",
        "    balance roundrobin",
        "    http-request return status 503 content-type application/json string "
        f"{_json_error(*NO_SERVER_ERROR, definite=True)} if {{ nbsrv lt 1 }}",
        f"    option httpchk GET {check.path}",
        "    http-check expect status 200",
        f"    default-server inter {check.interval_ms}ms fastinter {check.interval_ms}ms "
        f"downinter {check.interval_ms}ms fall {check.fall} rise {check.rise} "
        "on-marked-down shutdown-sessions",
    ]
    for name, addr in servers.items():
        lines.append(f"    server {name} {addr.host}:{addr.port} check")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ServerState:
    """One server as HAProxy sees it: UP, DOWN, MAINT, or in transition."""

    name: str
    status: str
    check_status: str
    last_change_s: int


def read_server_states(stats: Address, *, timeout_s: float = 1.0) -> list[ServerState]:
    """Ask the runtime API for every backend server's state (``show stat``)."""
    with sockets.connect(stats.host, stats.port, timeout=timeout_s) as sock:
        sock.sendall(b"show stat\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    text = b"".join(chunks).decode(errors="replace").lstrip("# ")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        out.append(ServerState(row["svname"], row.get("status", ""), row.get("check_status", ""),
                               int(row.get("lastchg") or 0)))
    return out
