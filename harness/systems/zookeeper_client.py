"""The ZooKeeper register client (kazoo), pinned to one server.

Registers are znodes ``/reg/<key>`` holding JSON. A write sets the znode (or
creates it, the first time); a compare-and-set reads the znode and, when it
holds the expected value, sets it *on the version it read*: the leader refuses
the set (``BadVersion``) if anyone wrote in between, so a CAS is atomic even
when the read came from a lagging follower (a stale read only makes it fail).

Classification, by Jepsen's rule: ``NoNode``, ``NodeExists`` and
``BadVersion`` are the server's definite answers; a request refused before it
was sent (the client is closed) is a ``fail``; anything after sending
(connection loss, an expired session, no answer in time) is ``info``, since
the leader may have committed it. Reads change nothing: a failed read is a
``fail``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from harness import sockets
from harness.client import Outcome, fail, info, ok
from harness.system import Address

__all__ = ["ZkRegisterClient", "four_letter"]

ROOT = "/reg"


def four_letter(address: Address, word: str, *, timeout_s: float = 1.0) -> str:
    """A four-letter-word command's answer (``srvr``, ``mntr``); OSError when the
    server does not answer."""
    with sockets.connect(address.host, address.port, timeout=timeout_s) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class _CompareFailed(Exception):
    """A CAS that certainly wrote nothing."""


class ZkRegisterClient:
    """One client of the register workload, with its own ZooKeeper session."""

    #: ZooKeeper has no request ids: a resend is a new request
    idempotency: str = "none"

    def __init__(self, address: Address, *, worker: str, timeout_s: float = 5.0,
                 sync_reads: bool = False, session_timeout_s: float = 4.0) -> None:
        self.address = address
        self.worker = worker
        self.timeout_s = timeout_s
        self.sync_reads = sync_reads
        self.session_timeout_s = session_timeout_s
        self.zk: Any = None
        self._sent = False

    def _client(self) -> Any:
        from kazoo.client import KazooClient

        if self.zk is None:
            zk = KazooClient(hosts=str(self.address), timeout=self.session_timeout_s,
                             connection_retry={"max_tries": -1, "delay": 0.1,
                                               "max_delay": 0.5},
                             randomize_hosts=False)
            try:
                zk.start(timeout=self.timeout_s)
            except Exception:
                zk.stop()
                zk.close()
                raise
            self.zk = zk
        return self.zk

    def close(self) -> None:
        zk, self.zk = self.zk, None
        if zk is not None:
            # a dead session: nothing left to release but kazoo's threads
            with contextlib.suppress(Exception):
                zk.stop()
                zk.close()

    def prepare(self, f: str, value: Any) -> tuple[str, Any]:
        return f, value

    def _wait(self, async_result: Any) -> Any:
        return async_result.get(timeout=self.timeout_s)

    def _read(self, path: str) -> tuple[Any, int]:
        """(value, version); (None, -1) when the znode does not exist."""
        from kazoo.exceptions import NoNodeError

        zk = self._client()
        if self.sync_reads:
            self._wait(zk.sync_async(path))
        try:
            data, stat = self._wait(zk.get_async(path))
        except NoNodeError:
            return None, -1
        return (json.loads(data) if data else None), int(stat.version)

    def invoke(self, f: str, value: Any) -> Outcome:
        from kazoo.exceptions import (
            BadVersionError,
            ConnectionClosedError,
            NodeExistsError,
            NoNodeError,
        )

        self._sent = False
        try:
            return self._invoke(f, value)
        except _CompareFailed as e:
            return fail(str(e))
        except (BadVersionError, NoNodeError, NodeExistsError) as e:
            return fail(type(e).__name__)
        except Exception as e:
            msg = f"{type(e).__name__}: {e}".strip().rstrip(":")
            if f == "read" or not self._sent or isinstance(e, ConnectionClosedError):
                return fail(msg)
            return info(msg)

    def _invoke(self, f: str, value: Any) -> Outcome:
        from kazoo.exceptions import NodeExistsError, NoNodeError

        key = value[0]
        path = f"{ROOT}/{key}"
        if f == "read":
            v, _ = self._read(path)
            return ok([key, v])
        if f == "write":
            zk = self._client()
            data = json.dumps(value[1]).encode()
            self._sent = True
            try:
                self._wait(zk.set_async(path, data))
            except NoNodeError:
                try:
                    self._wait(zk.create_async(path, data, makepath=True))
                except NodeExistsError:  # another client created it meanwhile
                    self._wait(zk.set_async(path, data))
            return ok(value)
        if f == "cas":
            old, new = value[1]
            current, version = self._read(path)
            if version < 0 or current != old:
                raise _CompareFailed("value-mismatch")
            self._sent = True
            self._wait(self._client().set_async(path, json.dumps(new).encode(),
                                                version=version))
            return ok(value)
        return fail(f"unsupported operation {f!r}")
