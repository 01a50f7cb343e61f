"""A small keep-alive HTTP/JSON client for system adapters (standard library only).

One per worker thread. Any transport failure is reported, not raised, as
status 0 with the reason, so adapters can classify it as indeterminate; the
one exception is a refused connection, which certainly sent nothing: its
body is ``{"error": "connection-refused", "definite": True}``.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from harness import sockets
from harness.system import Address

__all__ = ["HttpJson"]


class HttpJson:
    """JSON over HTTP/1.1 to one address, reconnecting after any failure."""

    def __init__(self, address: Address, *, timeout_s: float = 5.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = sockets.HTTPConnection(self.address.host, self.address.port,
                                                    timeout=self.timeout_s)
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON or raw text); status 0 means no HTTP answer at all."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn = self._connection()
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
            if resp.will_close:
                self.close()
        except ConnectionRefusedError:
            # only connect() is refused, and only before any byte of the request left
            self.close()
            return 0, {"error": "connection-refused", "definite": True}
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            self.close()
            return 0, f"{type(e).__name__}: {e}"
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")[:200]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
