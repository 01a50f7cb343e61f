"""Run a cluster as local processes on 127.0.0.1, with HAProxy in front when
it is installed. For development and fast integration tests::

    python -m reference_system.local --nodes 3 [--base-port 18000] [--worker]

Ports, from ``base``: the load balancer on ``base``, node ``i``'s HTTP API on
``base + i``, its peer port on ``base + 100 + i``; without ``--base-port``, a
base whose ports are all free is picked (and printed). HAProxy's runtime API
socket is ``<dir>/haproxy.sock``. Ctrl-C, SIGTERM or SIGHUP stops everything.

:class:`LocalCluster` is the same thing as a Python object (a context
manager that always kills what it started), with kill / restart / pause /
resume of single nodes for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LocalCluster",
    "find_haproxy",
    "free_base_port",
    "haproxy_config",
    "http_json",
    "main",
]


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to client sockets (Linux's default if unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base_port(nodes: int = 5) -> int:
    """A base port whose derived ports (see the module doc) are free right now.

    The ports lie below the kernel's ephemeral range: a client polling a dead
    node's port there could be given that port as its own source port and be
    joined to itself, reading back its own request and holding the port so the
    node cannot bind it when it restarts.
    """
    rng = random.Random()
    top = max(_ephemeral_low(), 12_000) - 200
    for _ in range(200):
        base = rng.randrange(10_000, top, 10)
        ports = [base, *range(base + 1, base + nodes + 1), *range(base + 101, base + nodes + 101)]
        socks = []
        try:
            for port in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range of ports on 127.0.0.1")


def find_haproxy() -> str | None:
    """The haproxy binary, also in /usr/sbin when that is not on PATH."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def http_json(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout_s: float = 10.0,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP request to 127.0.0.1:``port``: (status, decoded JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.connect()
        if conn.sock is not None and conn.sock.getsockname() == conn.sock.getpeername():
            raise ConnectionRefusedError(f"nothing listens on port {port} (met itself)")
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text.decode(errors="replace")
    finally:
        conn.close()


#: HAProxy's own error statuses and the JSON error code each is answered with
LB_ERRORS = {400: "lb-bad-request", 403: "lb-forbidden", 408: "lb-request-timeout",
             500: "lb-internal", 502: "lb-bad-gateway", 503: "lb-unavailable",
             504: "lb-gateway-timeout"}


def haproxy_config(*, lb_port: int, node_ports: dict[int, int], socket_path: Path) -> str:
    """An HAProxy configuration: active checks on /health every 250 ms, out of
    rotation after 2 failures (about a second, well inside the 2 s goal),
    back after 2 passes; sessions to a node marked down are cut so clients
    do not hang on a paused node; connection failures retried elsewhere.

    Requests go to the leader while one passes ``/health?role=leader`` (backend
    ``leader``, as load balancers in front of Vault route to its active node),
    else round robin over every healthy node (backend ``nodes``), which forwards
    to the leader. A follower answers a write only by forwarding it to the
    leader, one more hop of HTTP parsing and message framing in two Python
    processes; sending it to the leader in the first place saves that. The
    ``nodes`` backend keeps the product's promise when the leader is gone:
    every healthy node is in rotation until a new leader passes its check."""
    servers = "\n".join(
        f"    server n{i} 127.0.0.1:{p} check" for i, p in sorted(node_ports.items())
    )
    server_opts = (
        "inter 250ms fastinter 250ms downinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions"
    )
    # HAProxy's own errors as JSON, like the nodes' errors, so a client can
    # classify them: none is definite (the request may have reached a node),
    # except "no node is up", answered before any node is chosen.
    errors = "\n".join(
        f"    http-error status {status} content-type application/json string "
        f"'{{\"error\":\"{code}\",\"definite\":false,\"source\":\"lb\"}}'"
        for status, code in LB_ERRORS.items())
    no_server = ("503 content-type application/json string "
                 "'{\"error\":\"lb-no-server\",\"definite\":true,\"source\":\"lb\"}'")
    # the leader's check: rise 1, so a new leader takes the traffic at its first pass;
    # a refused or failed connection marks it down at once (real traffic finds a dead
    # leader long before two failed checks do), so requests fall to the other backend
    lead_opts = (server_opts.replace("rise 2", "rise 1")
                 + " observe layer4 error-limit 1 on-error mark-down")
    return f"""global
    stats socket {socket_path} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 500ms
    timeout client 30s
    timeout server 15s
    timeout check 500ms
    retries 3
    option redispatch
    option http-keep-alive
{errors}

frontend fe
    bind 127.0.0.1:{lb_port}
    use_backend leader if {{ nbsrv(leader) ge 1 }}
    default_backend nodes

backend leader
    option httpchk GET /health?role=leader
    http-check expect status 200
    default-server {lead_opts}
{servers}

backend nodes
    balance roundrobin
    http-request return status {no_server} if {{ nbsrv lt 1 }}
    option httpchk GET /health
    http-check expect status 200
    default-server {server_opts}
{servers}
"""


class LocalCluster:
    """N node processes (and maybe HAProxy) on loopback ports."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        base_port: int,
        data_dir: Path | None = None,
        worker: bool = False,
        node_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        haproxy: bool | None = None,
        lose_unsynced: bool = False,
    ):
        if base_port == 0:  # "pick for me": never port 0 for HAProxy and 1.. for the nodes
            base_port = free_base_port(nodes)
        if base_port <= 0 or base_port + 100 + nodes > 65535:
            raise ValueError(f"base port {base_port} leaves no room for {nodes} nodes' ports "
                             f"(base .. base + 100 + {nodes} must be in 1..65535)")
        self.n = nodes
        self.base_port = base_port
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="refsys-"))
        self.worker = worker
        self.node_args = node_args
        self.env = {**os.environ, **(env or {})}
        self.haproxy_bin = find_haproxy() if haproxy is not False else None
        if haproxy and self.haproxy_bin is None:
            raise RuntimeError("haproxy was requested but is not installed")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.lb: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        #: lose_unsynced: each node's data dir on a harness.lazyfs layer (python -m
        #: harness.lazyfs.bench measures what it costs); node -> LazyMount
        self.lose_unsynced = lose_unsynced
        self.layers: dict[int, Any] = {}

    # ------------------------------------------------------------ addresses

    @property
    def ids(self) -> list[int]:
        """Node ids, 1..n."""
        return list(range(1, self.n + 1))

    def http_port(self, i: int) -> int:
        """Node ``i``'s client API port."""
        return self.base_port + i

    def peer_port(self, i: int) -> int:
        """Node ``i``'s peer RPC port."""
        return self.base_port + 100 + i

    @property
    def lb_port(self) -> int | None:
        """The load balancer's port, when HAProxy runs."""
        return self.base_port if self.lb is not None else None

    @property
    def haproxy_socket(self) -> Path:
        """HAProxy's runtime API socket."""
        return self.dir / "haproxy.sock"

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, wait_s: float = 20.0) -> None:
        """Start every node (and HAProxy) and wait until a leader serves."""
        for i in self.ids:
            self.start_node(i)
        if self.haproxy_bin is not None:
            cfg = self.dir / "haproxy.cfg"
            cfg.write_text(
                haproxy_config(
                    lb_port=self.base_port,
                    node_ports={i: self.http_port(i) for i in self.ids},
                    socket_path=self.haproxy_socket,
                )
            )
            log = open(self.dir / "haproxy.log", "ab")  # noqa: SIM115 - closed in close()
            self._logs.append(log)
            self.lb = subprocess.Popen(
                [self.haproxy_bin, "-db", "-f", str(cfg)], stdout=log, stderr=log
            )
        self.wait_for_leader(timeout_s=wait_s)
        if self.lb is not None:
            self.wait_for_lb(timeout_s=wait_s)

    def start_node(self, i: int) -> None:
        """Start (or restart) node ``i`` on its data directory."""
        if self.lose_unsynced and i not in self.layers:
            from harness.lazyfs import LazyMount

            layer = LazyMount(self.dir / f"node{i}", self.dir / f".disk{i}",
                              log=self.dir / f"node{i}.lazyfs.log")
            layer.start()
            self.layers[i] = layer
        peers = ",".join(f"{j}=127.0.0.1:{self.peer_port(j)}" for j in self.ids if j != i)
        cmd = [
            sys.executable, "-m", "reference_system.node",
            "--id", str(i),
            "--peer-listen", f"127.0.0.1:{self.peer_port(i)}",
            "--peers", peers,
            "--http", f"127.0.0.1:{self.http_port(i)}",
            "--data-dir", str(self.dir / f"node{i}"),
            *(["--worker"] if self.worker else []),
            *self.node_args,
        ]  # fmt: skip
        log = open(self.dir / f"node{i}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [root, self.env.get("PYTHONPATH")]))
        env = {**self.env, "PYTHONPATH": path}
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (a crash: nothing flushed beyond what was fsynced)."""
        p = self.procs.get(i)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: unresponsive but alive."""
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT node ``i``."""
        self.procs[i].send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill everything started here; remove the directory if we made it."""
        procs = [*self.procs.values(), *([self.lb] if self.lb is not None else [])]
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.kill()
        for p in procs:
            with contextlib.suppress(Exception):
                p.wait(10)
        for layer in self.layers.values():
            layer.stop()
        self.layers.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ queries

    def status(self, i: int) -> dict[str, Any] | None:
        """Node ``i``'s /status, or None when it does not answer."""
        try:
            code, body = http_json(self.http_port(i), "GET", "/status", timeout_s=1.0)
        except OSError:
            return None
        return body if code == 200 and isinstance(body, dict) else None

    def lb_states(self) -> dict[int, str]:
        """Each node's status in HAProxy (``UP``, ``DOWN``, ...), from its runtime API."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(str(self.haproxy_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            int(r["svname"][1:]): r["status"]
            for r in rows
            if r["pxname"] == "nodes" and r["svname"][:1] == "n" and r["svname"][1:].isdigit()
        }

    def wait_for_lb(self, *, timeout_s: float = 20.0) -> None:
        """Wait until HAProxy sees every live node UP."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                states = self.lb_states()
            except OSError:
                states = {}
            live = {i for i, p in self.procs.items() if p.poll() is None}
            if live and all(states.get(i) == "UP" for i in live):
                return
            time.sleep(0.05)
        raise TimeoutError(f"haproxy did not see the nodes up within {timeout_s}s")

    def leader(self) -> int | None:
        """The node that says it leads (if exactly one live node does)."""
        leaders = [i for i in self.ids if (s := self.status(i)) and s["role"] == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for_leader(self, *, timeout_s: float = 20.0, exclude: int | None = None) -> int:
        """Wait until a leader other than ``exclude`` is known and healthy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != exclude:
                s = self.status(leader)
                if s and s["healthy"]:
                    return leader
            time.sleep(0.05)
        raise TimeoutError(f"no leader within {timeout_s}s (logs in {self.dir})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m reference_system.local``."""
    p = argparse.ArgumentParser(
        prog="python -m reference_system.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=3, choices=[1, 3, 5])
    p.add_argument("--base-port", type=int, default=0,
                   help="first port (see above); 0, the default: a free range")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--no-haproxy", action="store_true")
    p.add_argument(
        "node_args",
        nargs=argparse.REMAINDER,
        help="after --, extra arguments for every node (e.g. -- --lease-ms 2000)",
    )
    a = p.parse_args(argv)
    extra = tuple(x for x in a.node_args if x != "--")
    stop = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    for sig in stop:  # while starting, a signal unwinds the with-block, which kills the nodes
        signal.signal(sig, _exit_on_signal)
    try:
        return _serve(a, extra, stop)
    except (OSError, RuntimeError, TimeoutError, ValueError) as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 2


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve(a: argparse.Namespace, extra: tuple[str, ...], stop: set[signal.Signals]) -> int:
    cluster = LocalCluster(
        a.nodes,
        base_port=a.base_port,
        data_dir=a.data_dir,
        worker=a.worker,
        node_args=extra,
        haproxy=False if a.no_haproxy else None,
    )
    with cluster:
        print(f"cluster in {cluster.dir}; leader: node {cluster.leader()}", flush=True)
        for i in cluster.ids:
            print(f"  node {i}: http://127.0.0.1:{cluster.http_port(i)}", flush=True)
        if cluster.lb_port:
            print(
                f"  haproxy: http://127.0.0.1:{cluster.lb_port} "
                f"(runtime API: {cluster.haproxy_socket})",
                flush=True,
            )
        else:
            print("  haproxy: not installed; no load balancer", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # so the with-block cleans up
        signal.sigwait(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
