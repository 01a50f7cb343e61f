"""A proxy: its listener, its connections, and the toxics applied to them.

Each accepted connection dials the upstream and is joined to it by two
:class:`~harness.toxiproxy.link.Link`\\ s, one per direction. The proxy's
:class:`ToxicCollection` knows every live link, so a toxic added, updated or
removed through the API acts on open connections at once.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

from harness.sockets import SelfConnectError, is_self_connected
from harness.toxiproxy.api_errors import ApiError, toxic_exists
from harness.toxiproxy.link import Endpoint, Link
from harness.toxiproxy.stream import Direction
from harness.toxiproxy.toxics import Toxic

__all__ = ["DIAL_TIMEOUT_S", "Proxy", "ToxicCollection", "format_address", "split_address"]

DIAL_TIMEOUT_S = 30.0
LISTEN_BACKLOG = 512


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) -> (host, port); ``ValueError`` if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"address {address}: invalid port") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, port


def format_address(host: str, port: int) -> str:
    """The inverse of :func:`split_address` (Go's ``net.JoinHostPort``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ToxicCollection:
    """The toxics of one proxy, per direction in the order added, and the links they act on."""

    def __init__(self) -> None:
        self._chains: dict[Direction, list[Toxic]] = {d: [] for d in Direction}
        self._links: dict[Direction, set[Link]] = {d: set() for d in Direction}

    def all(self) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in the order added (the API's order)."""
        return [*self._chains[Direction.UPSTREAM], *self._chains[Direction.DOWNSTREAM]]

    def find(self, name: str) -> Toxic | None:
        """The toxic called ``name``, if any."""
        for toxic in self.all():
            if toxic.name == name:
                return toxic
        return None

    def chain(self, direction: Direction) -> list[Toxic]:
        """A snapshot of one direction's chain (for a new link)."""
        return list(self._chains[direction])

    def register(self, link: Link) -> None:
        """Start applying changes to ``link``."""
        self._links[link.direction].add(link)

    def unregister(self, link: Link) -> None:
        """Stop applying changes to ``link`` (its connection closed)."""
        self._links[link.direction].discard(link)

    # The chain is changed and the links snapshotted in one synchronous step,
    # so a connection opened while links are being updated gets the change
    # exactly once: from its initial chain or from the update, never both.

    async def add(self, toxic: Toxic) -> None:
        """Add a toxic; 409 if the name is taken."""
        if self.find(toxic.name) is not None:
            raise toxic_exists()
        self._chains[toxic.direction].append(toxic)
        links = list(self._links[toxic.direction])
        await asyncio.gather(*(link.add_toxic(toxic) for link in links))

    async def update(self, toxic: Toxic) -> None:
        """Restart a toxic whose attributes or toxicity changed, on every link."""
        links = list(self._links[toxic.direction])
        await asyncio.gather(*(link.update_toxic(toxic) for link in links))

    async def remove(self, toxic: Toxic) -> None:
        """Remove a toxic from the chain and from every link."""
        self._chains[toxic.direction].remove(toxic)
        links = list(self._links[toxic.direction])
        await asyncio.gather(*(link.remove_toxic(toxic) for link in links))

    async def reset(self) -> None:
        """Remove every toxic, in order."""
        for toxic in self.all():
            await self.remove(toxic)


class Connection:
    """A client connection and its upstream connection, joined by two links."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self.client = Endpoint(self._endpoint_lost, on_made=lambda _endpoint: self._accepted())
        self.upstream: Endpoint | None = None
        self._links: list[Link] = []
        self._aborted = False
        self._finished = False
        self._dial_task: asyncio.Task[None] | None = None

    def _accepted(self) -> None:
        """The client is connected (reads are paused): dial the upstream."""
        self._dial_task = asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = split_address(self._proxy.upstream)
            async with asyncio.timeout(DIAL_TIMEOUT_S):
                transport, upstream = await loop.create_connection(
                    lambda: Endpoint(self._endpoint_lost), host, port
                )
            sock = transport.get_extra_info("socket")
            if sock is not None and is_self_connected(sock):
                # a dead upstream on an ephemeral port: the dial met itself and would
                # echo the client and hold the upstream's port (see harness.sockets)
                transport.abort()
                raise SelfConnectError(f"nothing listens on {host}:{port}")
        except (OSError, ValueError, TimeoutError):
            self.client.close()  # like Toxiproxy: the client just sees the connection close
            if self.client.lost:
                self._finish()  # the client left while we dialled: nothing else will
            return
        self.upstream = upstream
        if self._aborted or self.client.lost:
            upstream.abort()
            return
        rng = self._proxy.rng
        toxics = self._proxy.toxics
        up = Link(direction=Direction.UPSTREAM, source=self.client, dest=upstream, rng=rng)
        down = Link(direction=Direction.DOWNSTREAM, source=upstream, dest=self.client, rng=rng)
        self._links = [up, down]
        for link in self._links:
            toxics.register(link)
            link.start(toxics.chain(link.direction))
        self.client.resume("wiring")
        upstream.resume("wiring")

    def abort(self) -> None:
        """Drop the connection now (proxy disabled, deleted or restarted)."""
        self._aborted = True
        self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()

    def _endpoint_lost(self, endpoint: Endpoint) -> None:
        if self._finished:
            return
        if self.client.lost and (self.upstream is None or self.upstream.lost):
            if self.upstream is None and self._dial_task is not None and not self._dial_task.done():
                self._aborted = True  # the dial finishes, sees this and drops the upstream
                return
            self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        for link in self._links:
            self._proxy.toxics.unregister(link)
            link.stop()
        self._proxy.connection_closed(self)


class Proxy:
    """One named proxy: ``listen`` -> ``upstream`` with toxics."""

    def __init__(
        self, *, name: str, listen: str, upstream: str, default_host: str, rng: random.Random
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.toxics = ToxicCollection()
        self._default_host = default_host
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

    def to_json(self) -> dict[str, Any]:
        """The proxy object of the API."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.all()],
        }

    async def start(self) -> None:
        """Listen; the real address replaces ``:0``. 500 with Go's message if that fails.

        An empty host (``":8080"``, or no ``listen`` at all) binds to the API's
        own host rather than to every interface, as Toxiproxy would: listening
        beyond loopback must be asked for explicitly.
        """
        if self.enabled:
            return
        try:
            # Go listens on an empty address as ":0": any free port.
            host, port = split_address(self.listen) if self.listen else ("", 0)
        except ValueError as exc:
            raise ApiError(500, f"listen tcp: {exc}") from None
        sock = self._bind(host or self._default_host, port)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, sock=sock)
        bound = sock.getsockname()
        self.listen = format_address(bound[0], bound[1])
        self.enabled = True

    def _bind(self, host: str, port: int) -> socket.socket:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ApiError(500, f"listen tcp {self.listen}: {exc.strerror}") from None
        # Go listens on the first address; prefer IPv4 as Go does for "localhost".
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, type_, proto, _canon, address = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            reason = (exc.strerror or str(exc)).lower()
            raise ApiError(500, f"listen tcp {self.listen}: bind: {reason}") from None
        sock.setblocking(False)
        return sock

    def _accept(self) -> Endpoint:
        connection = Connection(self)
        self._connections.add(connection)
        return connection.client

    def connection_closed(self, connection: Connection) -> None:
        """Forget a finished connection."""
        self._connections.discard(connection)

    def stop(self) -> None:
        """Stop listening and drop every connection (toxics stay)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.abort()
        self._connections.clear()
        self.enabled = False

    @property
    def connection_count(self) -> int:
        """Open connections (for tests and diagnostics)."""
        return len(self._connections)
