"""Open, keep and close the listening sockets of the binds, and drain them on shutdown.

`Listeners.sync(ports)` is called after every config swap: new binds get a socket, removed
binds stop accepting and drain, unchanged binds are untouched (no dropped connections on
reload). Sockets set SO_REUSEPORT so several worker processes share a port and the kernel
spreads connections between them. A sweeper task enforces header-read and idle timeouts once
a second instead of arming a timer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from dataplane import settings
from dataplane.server import http1
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)


class BindError(Exception):
    """A port could not be opened (in use, permission)."""


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
        self.connections: dict[int, set[http1.HTTP1Connection]] = {}
        # connections of binds removed by a reload: still finishing their requests, and still
        # owed the drain deadline (then closed) at shutdown
        self._retired: list[set[http1.HTTP1Connection]] = []
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ports(self) -> list[int]:
        return sorted(self._servers)

    async def sync(self, ports: set[int]) -> None:
        """Listen on exactly `ports`; raise BindError (after opening the others) if one fails."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        failed: list[str] = []
        for port in sorted(ports - set(self._servers)):
            try:
                self._servers[port] = await self._open(port)
            except OSError as exc:
                failed.append(f"port {port}: {exc.strerror or exc}")
        for port in sorted(set(self._servers) - ports):
            server = self._servers.pop(port)
            server.close()
            retired = self.connections.pop(port, set())
            for conn in list(retired):
                conn.begin_drain()
            if retired:
                self._retired.append(retired)
        self._retired = [conns for conns in self._retired if conns]
        if failed:
            raise BindError("; ".join(failed))

    async def _open(self, port: int) -> asyncio.Server:
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
        registry = self.connections.setdefault(port, set())
        counter = self._stats.downstream_connections
        label = (str(port),)

        def factory() -> http1.HTTP1Connection:
            counter.inc(label)
            return http1.HTTP1Connection(self._handler, self._limits, port, registry)

        server = await asyncio.get_running_loop().create_server(factory, sock=sock)
        log.info("listening on %s:%d", self._host, port)
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
