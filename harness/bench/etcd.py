"""A 3-node etcd cluster as local processes, behind the same HAProxy as the reference system.

Why it exists: the reference system's speed goal is stated against etcd 3.4
(Debian's ``etcd-server``) on the same machine and at the same durability. So
this runs etcd exactly as :class:`reference_system.local.LocalCluster` runs
the reference system: one process per node on 127.0.0.1 ports, one data
directory each on the same file system (etcd's default fsync of its WAL on:
``--unsafe-no-fsync`` is never passed), and HAProxy in front with the same
configuration (checks on ``/health``, which etcd also serves: 200 only with a
leader). A benchmark client then talks to both through the same kind of
keep-alive HTTP connection; for etcd that is its v3 JSON gateway
(``POST /v3/kv/put``, keys and values base64), so no gRPC library is needed.

The gateway is etcd's own, but it is a translation layer (HTTP/JSON in, a
loopback gRPC call inside the same process): it costs etcd some CPU that a
native gRPC client would not. The comparison is then slightly in the
reference system's favour, and the benchmark says so.

etcd's own timing defaults are kept (heartbeat 100 ms, election 1000 ms):
they are what an etcd user gets, and the failover goal (< 2 s) is the
reference system's, not etcd's.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from harness import sockets

__all__ = ["EtcdCluster", "b64", "find_etcd"]

HOST = "127.0.0.1"


def find_etcd() -> str | None:
    """The etcd server binary (Debian's ``etcd-server`` installs ``/usr/bin/etcd``)."""
    return shutil.which("etcd") or shutil.which("etcd", path="/usr/sbin:/usr/local/bin")


def b64(data: str | bytes) -> str:
    """Base64 as the v3 JSON gateway wants keys and values (proto ``bytes`` fields)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (the sockets are closed just before etcd binds)."""
    socks = []
    try:
        for _ in range(n):
            socks.append(sockets.hold_free_port(HOST))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdCluster:
    """N etcd processes on loopback ports, HAProxy in front; a context manager that always
    kills what it started and removes its temporary directory."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        haproxy: bool = True,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        data_dir: Path | None = None,
    ) -> None:
        binary = find_etcd()
        if binary is None:
            raise RuntimeError("etcd is not installed (apt-get install -y etcd-server)")
        self.etcd_bin = binary
        self.n = nodes
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="etcd-bench-"))
        ports = _free_ports(2 * nodes + 1)
        self._client_ports = {i: ports[i - 1] for i in self.ids}
        self._peer_ports = {i: ports[nodes + i - 1] for i in self.ids}
        self._lb_port = ports[-1]
        self.token = f"bench-{os.getpid()}-{int(time.time())}"
        self.haproxy_bin: str | None = None
        if haproxy:
            from reference_system.local import find_haproxy

            self.haproxy_bin = find_haproxy()
            if self.haproxy_bin is None:
                raise RuntimeError("haproxy was requested but is not installed")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.lb: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    # ------------------------------------------------------------ addresses

    @property
    def ids(self) -> list[int]:
        """Node ids, 1..n (etcd member names ``e1..eN``)."""
        return list(range(1, self.n + 1))

    def client_port(self, i: int) -> int:
        """Node ``i``'s client URL port (v3 gRPC and its JSON gateway, ``/health``)."""
        return self._client_ports[i]

    @property
    def lb_port(self) -> int | None:
        """HAProxy's port, when it runs."""
        return self._lb_port if self.lb is not None else None

    @property
    def haproxy_socket(self) -> Path:
        """HAProxy's runtime API socket."""
        return self.dir / "haproxy.sock"

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> EtcdCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, wait_s: float = 30.0) -> None:
        """Start every member (and HAProxy), then wait for a leader and the LB."""
        for i in self.ids:
            self.start_node(i)
        if self.haproxy_bin is not None:
            from reference_system.local import haproxy_config

            cfg = self.dir / "haproxy.cfg"
            cfg.write_text(
                haproxy_config(
                    lb_port=self._lb_port,
                    node_ports=dict(self._client_ports),
                    socket_path=self.haproxy_socket,
                )
            )
            log = open(self.dir / "haproxy.log", "ab")  # noqa: SIM115 - closed in close()
            self._logs.append(log)
            self.lb = subprocess.Popen(
                [self.haproxy_bin, "-db", "-f", str(cfg)], stdout=log, stderr=log
            )
        self.wait_healthy(timeout_s=wait_s)
        if self.lb is not None:
            self.wait_for_lb(timeout_s=wait_s)

    def start_node(self, i: int) -> None:
        """Start (or restart, on its data directory) member ``i``.

        On a restart etcd ignores the ``--initial-*`` flags: its data directory
        already says which cluster it belongs to.
        """
        cluster = ",".join(f"e{j}=http://{HOST}:{self._peer_ports[j]}" for j in self.ids)
        url = f"http://{HOST}:{self._client_ports[i]}"
        peer = f"http://{HOST}:{self._peer_ports[i]}"
        cmd = [
            self.etcd_bin,
            "--name", f"e{i}",
            "--data-dir", str(self.dir / f"e{i}"),
            "--listen-client-urls", url,
            "--advertise-client-urls", url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        # Debian's /etc/default/etcd is only read by its systemd unit, but an ETCD_*
        # variable in our environment would silently override a flag.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        log = open(self.dir / f"e{i}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (a crash: nothing beyond what etcd fsynced survives)."""
        p = self.procs.get(i)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def close(self) -> None:
        """Kill every process started here; remove the directory if we made it."""
        procs = [*self.procs.values(), *([self.lb] if self.lb is not None else [])]
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.kill()
        for p in procs:
            with contextlib.suppress(Exception):
                p.wait(10)
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ queries

    def _post(self, i: int, path: str, body: Any, timeout_s: float = 1.0) -> Any:
        req = urllib.request.Request(
            f"http://{HOST}:{self._client_ports[i]}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return json.loads(r.read())

    def member_status(self, i: int) -> dict[str, Any] | None:
        """Member ``i``'s ``Maintenance.Status`` (its id and who it thinks leads), or None."""
        try:
            body = self._post(i, "/v3/maintenance/status", {})
        except (OSError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def leader(self) -> int | None:
        """The member that a majority of live members name as leader, if any.

        The gateway prints uint64 ids as strings; a member's own id is in the
        response header, so the leader is the member whose header id it names.
        """
        ids: dict[str, int] = {}
        votes: dict[str, int] = {}
        for i in self.ids:
            st = self.member_status(i)
            if not st:
                continue
            ids[str(st.get("header", {}).get("member_id"))] = i
            lead = str(st.get("leader", "0"))
            if lead != "0":
                votes[lead] = votes.get(lead, 0) + 1
        for member, n in votes.items():
            if n > self.n // 2 and member in ids:
                return ids[member]
        return None

    def healthy(self, i: int) -> bool:
        """``GET /health`` answers 200 (a leader is known and a read went through)."""
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{self._client_ports[i]}/health", timeout=1.0
            ) as r:
                return r.status == 200
        except (OSError, ValueError):
            return False

    def wait_healthy(self, *, timeout_s: float = 30.0) -> int:
        """Wait until every live member is healthy and a leader is agreed; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = [i for i, p in self.procs.items() if p.poll() is None]
            if live and all(self.healthy(i) for i in live):
                leader = self.leader()
                if leader is not None:
                    return leader
            time.sleep(0.05)
        raise TimeoutError(f"etcd not healthy within {timeout_s}s (logs in {self.dir})")

    def lb_states(self) -> dict[int, str]:
        """Each member's status in HAProxy (``UP``, ``DOWN``, ...), from its runtime API."""
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

    def wait_for_lb(self, *, timeout_s: float = 30.0) -> None:
        """Wait until HAProxy sees every live member UP."""
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
        raise TimeoutError(f"haproxy did not see the etcd members up within {timeout_s}s")
