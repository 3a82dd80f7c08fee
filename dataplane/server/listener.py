"""Open, keep and close the listening sockets of the binds, and drain them on shutdown.

`Listeners.sync(ports, tls)` is called after every config swap: new binds get a socket, removed
binds stop accepting and drain, unchanged binds are untouched (no dropped connections on
reload). Sockets set SO_REUSEPORT so several worker processes share a port and the kernel
spreads connections between them. A sweeper task enforces header-read and idle timeouts once
a second instead of arming a timer per request.

HTTPS: a port listed in `tls` serves TLS with a `tls.PortTls` holder. New certificates for a
port (rotation, a changed Secret) only swap the holder's `ServerTls`: the socket stays and new
handshakes see them. A port switching between plain and TLS gets a new socket first (the port
is shared with SO_REUSEPORT), then the old one stops accepting and its connections drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import typing
from collections.abc import Mapping

from dataplane import settings, tls
from dataplane.server import http1
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)


class BindError(Exception):
    """A port could not be opened (in use, permission)."""


class _TlsConnection(http1.HTTP1Connection):
    """A connection on an HTTPS port: the handshake is done when `connection_made` runs; the
    hostname the SNI chose may still refuse the client (client certificate, version)."""

    sni: str | None = None
    """The server name the client sent (None without SNI): the listener whose certificate it got."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        why = tls.refusal(ssl_object)
        if why is not None:
            log.debug("TLS connection from %s refused: %s", transport.get_extra_info("peername"), why)
            typing.cast(asyncio.Transport, transport).abort()  # uvloop's are not subclasses
            return
        self.sni = tls.server_name(ssl_object)
        super().connection_made(transport)


class Listeners:
    def __init__(
        self,
        handler: http1.Handler,
        limits: settings.Limits,
        stats: metrics.Registry,
        host: str = "0.0.0.0",
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._stats = stats
        self._host = host
        self._servers: dict[int, asyncio.Server] = {}
        self._tls: dict[int, tls.PortTls] = {}
        """The TLS holder of each HTTPS port; the ones absent here serve plain HTTP."""
        self.connections: dict[int, set[http1.HTTP1Connection]] = {}
        # connections of binds removed by a reload: still finishing their requests, and still
        # owed the drain deadline (then closed) at shutdown
        self._retired: list[set[http1.HTTP1Connection]] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ports(self) -> list[int]:
        return sorted(self._servers)

    def tls_ports(self) -> list[int]:
        return sorted(self._tls)

    async def sync(self, ports: set[int], tls_by_port: Mapping[int, tls.ServerTls] | None = None) -> None:
        """Listen on exactly `ports`, with TLS on those in `tls_by_port`; raise BindError (after
        opening the others) if one fails. A port whose switch between plain and TLS fails keeps
        serving as it was."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        wanted = tls_by_port or {}
        failed: list[str] = []
        for port in sorted(ports):
            server_tls = wanted.get(port)
            holder = self._tls.get(port)
            if port in self._servers and (holder is None) == (server_tls is None):
                if holder is not None and server_tls is not None and holder.current is not server_tls:
                    holder.update(server_tls)
                continue
            new_holder = tls.PortTls(server_tls) if server_tls is not None else None
            registry: set[http1.HTTP1Connection] = set()
            try:
                server = await self._open(port, registry, new_holder)
            except OSError as exc:
                failed.append(f"port {port}: {exc.strerror or exc}")
                continue
            if port in self._servers:
                self._retire(port)
            self._servers[port] = server
            self.connections[port] = registry
            if new_holder is not None:
                self._tls[port] = new_holder
        for port in sorted(set(self._servers) - ports):
            self._retire(port)
        self._retired = [conns for conns in self._retired if conns]
        if failed:
            raise BindError("; ".join(failed))

    def _retire(self, port: int) -> None:
        """Stop accepting on `port`; its connections finish their requests, then close."""
        server = self._servers.pop(port)
        server.close()
        self._tls.pop(port, None)
        retired = self.connections.pop(port, set())
        for conn in list(retired):
            conn.begin_drain()
        if retired:
            self._retired.append(retired)

    async def _open(
        self, port: int, registry: set[http1.HTTP1Connection], holder: tls.PortTls | None
    ) -> asyncio.Server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self._host, port))
        except OSError:
            sock.close()
            raise
        sock.listen(4096)
        sock.setblocking(False)
        counter = self._stats.downstream_connections
        label = (str(port),)
        conn_class = http1.HTTP1Connection if holder is None else _TlsConnection

        def factory() -> http1.HTTP1Connection:
            counter.inc(label)
            return conn_class(self._handler, self._limits, port, registry)

        context: ssl.SSLContext | None = holder.context() if holder is not None else None
        loop = asyncio.get_running_loop()
        if context is None:
            server = await loop.create_server(factory, sock=sock)
        else:
            # A client that stalls its handshake is cut like one that stalls its request head.
            server = await loop.create_server(
                factory, sock=sock, ssl=context, ssl_handshake_timeout=self._limits.header_read_timeout
            )
        log.info("listening on %s:%d%s", self._host, port, " (TLS)" if context is not None else "")
        return server

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for conns in self._all():
                for conn in list(conns):
                    conn.check_deadline(now)

    def _all(self) -> list[set[http1.HTTP1Connection]]:
        return [*self.connections.values(), *self._retired]

    def active_connections(self) -> int:
        return sum(len(c) for c in self._all())

    async def drain(self, deadline: float) -> None:
        """Stop accepting, let in-flight requests finish for up to `deadline` s, then close all."""
        for server in self._servers.values():
            server.close()
        for conns in self._all():
            for conn in list(conns):
                conn.begin_drain()
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while self.active_connections() and loop.time() < end:  # noqa: ASYNC110 - polls a count
            await asyncio.sleep(0.05)
        for conns in self._all():
            for conn in list(conns):
                conn.abort()
        self._servers.clear()
        self._tls.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
