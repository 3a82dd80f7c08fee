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

HTTP/2: every connection starts as HTTP/1.1. On a plain port, the first bytes are compared once
with the HTTP/2 client preface (prior-knowledge h2c, what gRPC clients send; a partial preface
is buffered until it completes or differs): a match hands the transport to an
`http2.HTTP2Connection`, anything else goes to the HTTP/1.1 parser and the check never runs
again. On a TLS port the ALPN the handshake negotiated ("h2" or "http/1.1") decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import typing
from collections.abc import Mapping

from dataplane import settings, tls
from dataplane.server import exchange, http1, http2
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)


class BindError(Exception):
    """A port could not be opened (in use, permission)."""


def _to_h2(
    handler: exchange.Handler,
    limits: settings.Limits,
    port: int,
    registry: set[exchange.ServerConnection],
    transport: asyncio.Transport,
    data: bytes,
    was: http1.HTTP1Connection,
) -> None:
    """Hand a connection that speaks HTTP/2 (preface or ALPN) to an `http2.HTTP2Connection`."""
    h2conn = http2.HTTP2Connection(handler, limits, port, registry, scheme=was.scheme, sni=was.sni)
    transport.set_protocol(h2conn)
    h2conn.connection_made(transport)
    if data:
        h2conn.data_received(data)


class Listeners:
    def __init__(
        self,
        handler: exchange.Handler,
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
        self.connections: dict[int, set[exchange.ServerConnection]] = {}
        # connections of binds removed by a reload: still finishing their requests, and still
        # owed the drain deadline (then closed) at shutdown
        self._retired: list[set[exchange.ServerConnection]] = []
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
            registry: set[exchange.ServerConnection] = set()
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
        self, port: int, registry: set[exchange.ServerConnection], holder: tls.PortTls | None
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
        tls_listener = holder is not None
        to_h2 = functools.partial(_to_h2, self._handler, self._limits, port, registry)
        http1_registry = typing.cast(set[http1.HTTP1Connection], registry)

        def factory() -> http1.HTTP1Connection:
            counter.inc(label)
            return http1.HTTP1Connection(
                self._handler, self._limits, port, http1_registry, tls_listener, to_h2
            )

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

    def _all(self) -> list[set[exchange.ServerConnection]]:
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
