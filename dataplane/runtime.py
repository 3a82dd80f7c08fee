"""One serving process: tables, listeners, upstream pool, metrics and access log wired together.

A `Worker` receives resource snapshots through `apply` (from the file watcher in the same
process, from the supervisor over a pipe, or later from the xDS client), compiles them off the
request path, swaps the tables and opens or closes bind sockets to match. `drain` implements
graceful shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import proxy, settings
from dataplane.backends import http as upstream
from dataplane.backends import http2 as upstream2
from dataplane.config import compile as compiler
from dataplane.config import store as config_store
from dataplane.policies import services as policy_services
from dataplane.server import listener
from dataplane.telemetry import accesslog, metrics

log = logging.getLogger(__name__)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path.

    Each request leaves a few short-lived cycles (futures, tasks, exception tracebacks); with
    the default gen-0 threshold of 700 the collector ran every few requests and full
    collections walked every long-lived object, stalling the loop (p99 31 ms -> 8 ms at 64
    connections, docs/benchmarks.md). Objects alive after start-up are frozen out of the
    collector's view, and collections run every 50,000 allocations instead.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class Worker:
    def __init__(
        self, config: settings.Settings, access_log_fd: int | None = 1, host: str = "0.0.0.0"
    ) -> None:
        self.settings = config
        self.store = config_store.Store()
        self.stats = metrics.Registry()
        self.access_log = accesslog.AccessLog(access_log_fd)
        self.pool = upstream.Pool(config.upstream, self.stats)
        self.h2_client = upstream2.Client(config.upstream, self.stats)
        self.services = policy_services.Services.default()
        self.proxy = proxy.Proxy(
            self.store,
            self.pool,
            self.stats,
            self.access_log,
            config.limits.max_buffer_size,
            config.gateway,
            self.services,
            h2_client=self.h2_client,
        )
        self.listeners = listener.Listeners(self.proxy.handle, config.limits, self.stats, host)

    async def apply(
        self, resources: list[pb.Resource], compiled: compiler.Compiled | None = None
    ) -> dict[str, str]:
        """Compile and install; return problems (key -> reason). Nothing changes if any exist.

        `compiled` is `resources` already compiled by the caller (the xDS client compiles to
        find bad resources); it is used instead of compiling again.
        """
        if compiled is None:
            compiled = compiler.compile_resources(resources)
        if compiled.problems:
            return compiled.problems
        await self.install(compiled, resources)
        return {}

    async def install(self, compiled: compiler.Compiled, resources: list[pb.Resource]) -> None:
        self.store.install(compiled.tables, resources)
        try:
            binds = compiled.tables.binds
            await self.listeners.sync(set(binds), {p: b.tls for p, b in binds.items() if b.tls is not None})
        except listener.BindError as exc:
            log.error("could not open every bind: %s", exc)

    async def drain(self, deadline: float) -> None:
        await self.listeners.drain(deadline)
        self.pool.close()
        self.h2_client.close()
        await self.services.close()
        self.access_log.flush()
        await asyncio.sleep(0)
