"""The harness's one client for Toxiproxy (ours or the real one), over ``toxiproxy-python``.

``toxiproxy-python`` 0.1.1 has three gaps that hurt a harness: it keeps host
and port in class attributes of ``APIConsumer`` (one server per process), it
sets no request timeouts (a hung server hangs the harness), and it checks no
status but 400/404/409 (a 500 passes as success). This wrapper closes them
once, here: each client gets its own ``APIConsumer`` subclass carrying its
host and port, every request passes a timeout, and every status other than
the expected one becomes a :class:`ToxiproxyError` that says what was asked
and what the server answered. The library's higher-level objects
(``Toxiproxy``, ``Proxy``) always use the global consumer, so only its
transport layer is used; the conformance tests drive our server with those
objects unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from toxiproxy import exceptions as tp_errors
from toxiproxy.api import APIConsumer

from harness.errors import HarnessError

__all__ = [
    "ProxyInfo",
    "ToxicInfo",
    "ToxiproxyBadRequest",
    "ToxiproxyClient",
    "ToxiproxyConflict",
    "ToxiproxyError",
    "ToxiproxyNotFound",
    "ToxiproxyUnavailable",
]


class ToxiproxyError(HarnessError):
    """A Toxiproxy request failed; ``status`` is the HTTP status, ``None`` without an answer."""

    def __init__(
        self, message: str, *, status: int | None = None, proxies: tuple[ProxyInfo, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        # For a failed populate: the proxies that were created anyway.
        self.proxies = proxies


class ToxiproxyUnavailable(ToxiproxyError):
    """No answer: connection refused, reset, or the request timed out."""


class ToxiproxyBadRequest(ToxiproxyError):
    """400: a malformed body, a missing field, an unknown toxic type or stream."""


class ToxiproxyNotFound(ToxiproxyError):
    """404: no such proxy or toxic."""


class ToxiproxyConflict(ToxiproxyError):
    """409: a proxy or toxic of that name exists already."""


_BY_STATUS: dict[int, type[ToxiproxyError]] = {
    400: ToxiproxyBadRequest,
    404: ToxiproxyNotFound,
    409: ToxiproxyConflict,
}


@dataclass(frozen=True, slots=True)
class ToxicInfo:
    """A toxic as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ToxicInfo:
        """Build from the API object; unknown keys are ignored."""
        return cls(
            name=str(obj["name"]),
            type=str(obj["type"]),
            stream=str(obj.get("stream", "downstream")),
            toxicity=float(obj.get("toxicity", 1.0)),
            attributes=MappingProxyType(dict(obj.get("attributes") or {})),
        )


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """A proxy as the server reports it; ``listen`` is the real address once listening."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ProxyInfo:
        """Build from the API object; unknown keys (the real server's ``Logger``) are ignored."""
        return cls(
            name=str(obj["name"]),
            listen=str(obj["listen"]),
            upstream=str(obj["upstream"]),
            enabled=bool(obj["enabled"]),
            toxics=tuple(ToxicInfo.from_json(t) for t in obj.get("toxics") or ()),
        )

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rpartition(":")[2])


class ToxiproxyClient:
    """A client for one Toxiproxy API at ``url`` (e.g. ``http://127.0.0.1:8474``).

    Every request times out after ``timeout_s``. Use as a context manager, or
    call :meth:`close`, to release the pooled connection.
    """

    def __init__(self, url: str = "http://127.0.0.1:8474", *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ToxiproxyError(f"not an http://HOST:PORT Toxiproxy URL: {url!r}")
        # Our own consumer class: the library's host/port are class attributes.
        self._consumer: type[APIConsumer] = type(
            "HarnessAPIConsumer", (APIConsumer,),
            {"host": parts.hostname, "port": parts.port or 8474},
        )

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is pooled (the library opens a connection per request); kept for symmetry."""

    # --- transport ---------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, *, ok: int) -> Any:
        url = self.url + path
        what = f"{method} {url}"
        # No proxy from the environment: Toxiproxy is always reached directly.
        kwargs: dict[str, Any] = {"timeout": self.timeout_s,
                                  "proxies": {"http": None, "https": None}}
        try:
            if method == "GET":
                response = self._consumer.get(path, **kwargs)
            elif method == "DELETE":
                response = self._consumer.delete(path, **kwargs)
            else:
                response = self._consumer.post(path, json=body, **kwargs)
        except requests.Timeout:
            raise ToxiproxyUnavailable(f"{what}: no answer within {self.timeout_s} s") from None
        except requests.RequestException as exc:
            raise ToxiproxyUnavailable(f"{what}: {exc}") from None
        except (tp_errors.ProxyExists, tp_errors.NotFound, tp_errors.InvalidToxic) as exc:
            raise self._library_error(what, exc) from None
        if response.status_code != ok:
            raise self._error(what, response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    @classmethod
    def _library_error(cls, what: str, exc: Exception) -> ToxiproxyError:
        """toxiproxy-python raised for 400/404/409 with the body as its argument."""
        status = {tp_errors.ProxyExists: 409, tp_errors.NotFound: 404,
                  tp_errors.InvalidToxic: 400}[type(exc)]
        raw = exc.args[0] if exc.args else b""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return cls._from_body(what, status, text)

    @classmethod
    def _error(cls, what: str, response: requests.Response) -> ToxiproxyError:
        return cls._from_body(what, response.status_code, response.text)

    @staticmethod
    def _from_body(what: str, status: int, text: str) -> ToxiproxyError:
        detail = text.strip()
        proxies: tuple[ProxyInfo, ...] = ()
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            detail = str(payload.get("error") or payload.get("title") or detail)
            raw = payload.get("proxies")
            if isinstance(raw, list):
                proxies = tuple(ProxyInfo.from_json(p) for p in raw)
        cls = _BY_STATUS.get(status, ToxiproxyError)
        return cls(f"{what}: {status} {detail}".rstrip(), status=status, proxies=proxies)

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    # --- API ----------------------------------------------------------------------

    def version(self) -> str:
        """The server's version (JSON since 2.7, plain text before)."""
        payload = self._request("GET", "/version", ok=200)
        if isinstance(payload, dict):
            return str(payload.get("version", ""))
        return str(payload).strip()

    def proxies(self) -> dict[str, ProxyInfo]:
        """Every proxy, by name."""
        payload = self._request("GET", "/proxies", ok=200)
        return {name: ProxyInfo.from_json(obj) for name, obj in (payload or {}).items()}

    def get_proxy(self, name: str) -> ProxyInfo:
        """One proxy; :class:`ToxiproxyNotFound` if there is none of that name."""
        return ProxyInfo.from_json(self._request("GET", f"/proxies/{self._name(name)}", ok=200))

    def create_proxy(
        self, name: str, *, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyInfo:
        """Create a proxy; ``listen`` ``:0`` picks a free port (see :attr:`ProxyInfo.listen`)."""
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._request("POST", "/proxies", body, ok=201))

    def populate(self, proxies: Iterable[Mapping[str, Any]]) -> list[ProxyInfo]:
        """Create or replace many proxies at once (``POST /populate``).

        Not all-or-nothing: on failure the error's ``proxies`` lists those created.
        The real server answers ``{"proxies": null}`` when it creates none (Go's
        nil slice), so ``null`` and a missing key both mean no proxy.
        """
        payload = self._request("POST", "/populate", [dict(p) for p in proxies], ok=201)
        if not isinstance(payload, dict):
            return []
        return [ProxyInfo.from_json(p) for p in payload.get("proxies") or ()]

    def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> ProxyInfo:
        """Change a proxy; a new ``listen`` or ``upstream`` drops its connections."""
        body = {
            key: value
            for key, value in (("listen", listen), ("upstream", upstream), ("enabled", enabled))
            if value is not None
        }
        path = f"/proxies/{self._name(name)}"
        return ProxyInfo.from_json(self._request("POST", path, body, ok=200))

    def enable_proxy(self, name: str) -> ProxyInfo:
        """Listen again (on the same address)."""
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> ProxyInfo:
        """Stop listening and close every connection of the proxy (the link is down)."""
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        """Delete a proxy and close its connections."""
        self._request("DELETE", f"/proxies/{self._name(name)}", ok=204)

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        """The proxy's toxics: upstream ones first, each direction in the order added."""
        payload = self._request("GET", f"/proxies/{self._name(proxy)}/toxics", ok=200)
        return [ToxicInfo.from_json(t) for t in payload or ()]

    def get_toxic(self, proxy: str, name: str) -> ToxicInfo:
        """One toxic; :class:`ToxiproxyNotFound` if absent."""
        path = f"/proxies/{self._name(proxy)}/toxics/{self._name(name)}"
        return ToxicInfo.from_json(self._request("GET", path, ok=200))

    def add_toxic(
        self,
        proxy: str,
        *,
        type: str,
        stream: str = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
        attributes: Mapping[str, Any] | None = None,
    ) -> ToxicInfo:
        """Add a toxic; it applies to open connections too. Default name ``<type>_<stream>``."""
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        if name is not None:
            body["name"] = name
        path = f"/proxies/{self._name(proxy)}/toxics"
        return ToxicInfo.from_json(self._request("POST", path, body, ok=200))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> ToxicInfo:
        """Merge new attributes (and/or toxicity) into a toxic."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = f"/proxies/{self._name(proxy)}/toxics/{self._name(name)}"
        return ToxicInfo.from_json(self._request("POST", path, body, ok=200))

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic (a ``timeout`` toxic's removal closes the connections it held)."""
        path = f"/proxies/{self._name(proxy)}/toxics/{self._name(name)}"
        self._request("DELETE", path, ok=204)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (no proxy is deleted)."""
        self._request("POST", "/reset", ok=204)
