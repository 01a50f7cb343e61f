"""Run a Toxiproxy server as a subprocess: the real one when installed, else ours.

Tests and the local cluster backend need a server for the length of a
``with`` block, on a free port, and gone afterwards even when the block
fails. Ours announces the port it bound (so ``port=0`` has no race); the
real binary cannot, so a free port is picked for it and the API polled
until it answers.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Literal

from harness import sockets
from harness.toxiproxy.client import ToxiproxyClient, ToxiproxyError

__all__ = ["Implementation", "ServerProcess", "find_toxiproxy_server", "toxiproxy_server"]

Implementation = Literal["auto", "python", "real"]
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_READY_PREFIX = "toxiproxy API listening on "


def find_toxiproxy_server() -> str | None:
    """Path of ``toxiproxy-server`` on ``PATH``, or ``None``. The real server is preferred."""
    return shutil.which("toxiproxy-server")


def _free_port(host: str) -> int:
    return sockets.free_port(host)


class ServerProcess:
    """A running server subprocess; a context manager that stops it on exit."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[str],
        host: str,
        port: int,
        implementation: Literal["python", "real"],
        log: IO[str],
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.implementation = implementation
        self._log = log

    @property
    def url(self) -> str:
        """Base URL of the API."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def client(self, *, timeout_s: float = 5.0) -> ToxiproxyClient:
        """A client for this server."""
        return ToxiproxyClient(self.url, timeout_s=timeout_s)

    def log_text(self) -> str:
        """What the server wrote to stderr so far (for diagnosing failures)."""
        with contextlib.suppress(OSError, ValueError):
            self._log.flush()
            return Path(self._log.name).read_text(errors="replace")
        return ""

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Terminate (then kill) the server; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        for stream in (self.process.stdout, self._log):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def toxiproxy_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    implementation: Implementation = "auto",
    seed: int | None = None,
    startup_timeout_s: float = 10.0,
) -> ServerProcess:
    """Start a server and wait until its API answers; use the result in a ``with`` block.

    ``implementation``: ``"auto"`` runs the real ``toxiproxy-server`` when it is
    on ``PATH`` and ours otherwise; ``"python"`` or ``"real"`` force one.
    ``port`` 0 picks a free port. ``seed`` only applies to ours.
    Raises :class:`ToxiproxyError` if the server does not come up in time.
    """
    binary = find_toxiproxy_server()
    if implementation == "real" and binary is None:
        raise ToxiproxyError("toxiproxy-server is not on PATH")
    use_real = binary is not None and implementation in ("auto", "real")
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - owned by ServerProcess, closed in stop()
        "w+", prefix="toxiproxy-", suffix=".log", delete=False
    )
    deadline = time.monotonic() + startup_timeout_s
    if use_real:
        assert binary is not None
        port = port or _free_port(host)
        command = [binary, "-host", host, "-port", str(port)]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True
        )
        server = ServerProcess(
            process=process, host=host, port=port, implementation="real", log=log
        )
        _wait_for_api(server, deadline)
        return server
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "harness.toxiproxy", "--host", host, "--port", str(port)]
    if seed is not None:
        command += ["--seed", str(seed)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    server = ServerProcess(process=process, host=host, port=port, implementation="python", log=log)
    try:
        server.port = _read_announced_port(process, deadline)
    except BaseException:
        server.stop()
        raise
    return server


def _read_announced_port(process: subprocess.Popen[str], deadline: float) -> int:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ToxiproxyError("toxiproxy server did not start in time")
            if selector.select(timeout=remaining):
                line = process.stdout.readline()
                if not line:
                    raise ToxiproxyError(f"toxiproxy server exited ({process.wait()})")
                if line.startswith(_READY_PREFIX):
                    return int(line.strip().rpartition(":")[2])


def _wait_for_api(server: ServerProcess, deadline: float) -> None:
    with server.client(timeout_s=1.0) as client:
        while True:
            try:
                client.version()
                return
            except ToxiproxyError:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    log = server.log_text()
                    server.stop()
                    raise ToxiproxyError(f"toxiproxy-server did not start: {log[-500:]}") from None
                time.sleep(0.05)
