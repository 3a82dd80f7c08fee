"""`agentgw-controller --from-file`: serve a standalone file's resources over xDS, no cluster.

In: an agentgateway-format file (the same one `agentgw-proxy -f` reads). Out: snapshots in the
`cache.SnapshotCache` under the file's gateway, republished whenever the file changes (polled
every 0.5 s, like the proxy's watcher); an invalid edit is logged and counted and the previous
snapshot keeps being served. `AnyGateway` hands that one snapshot to every proxy that connects,
whatever gateway it names: the file is one gateway, and users run a fleet from it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from api import errors, standalone
from controller.xds import cache, snapshot

log = logging.getLogger(__name__)


class AnyGateway:
    """A `cache.SnapshotSource` that serves one gateway's snapshot to every proxy."""

    def __init__(self, source: cache.SnapshotCache, gateway: cache.GatewayKey) -> None:
        self._source = source
        self._gateway = gateway

    def current(self, gateway: cache.GatewayKey) -> snapshot.Snapshot | None:
        return self._source.current(self._gateway)

    async def next(self, gateway: cache.GatewayKey, seen: snapshot.Snapshot | None) -> snapshot.Snapshot:
        return await self._source.next(self._gateway, seen)


def gateway_of(model: standalone.File) -> cache.GatewayKey:
    cfg = model.config
    return cache.GatewayKey(
        (cfg.namespace if cfg else None) or "default", (cfg.gateway if cfg else None) or "default"
    )


def load(path: str) -> standalone.File:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise errors.ConfigError([f"{path}: {exc.strerror or exc}"]) from exc
    return standalone.load(text)


class FileSource:
    """Publishes the file's resources now and after every change."""

    def __init__(
        self, path: str, target: cache.SnapshotCache, gateway: cache.GatewayKey, interval: float = 0.5
    ):
        self._path = path
        self._cache = target
        self._gateway = gateway
        self._interval = interval
        self._seen: tuple[float, int, int] | None = None

    def _fingerprint(self) -> tuple[float, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size, st.st_ino)

    def publish(self) -> bool:
        """Load, lower and publish the file; False (and the old snapshot stays) if it is invalid."""
        self._seen = self._fingerprint()
        try:
            resources = standalone.lower(load(self._path))
            self._cache.publish(self._gateway, resources)
        except errors.ConfigError as exc:
            self._cache.stats.snapshots.inc((str(self._gateway), "invalid"))
            log.error("%s rejected, still serving the previous snapshot:\n%s", self._path, exc)
            return False
        except snapshot.InconsistentSnapshot:
            return False  # logged and counted by the cache
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            now = self._fingerprint()
            if now is not None and now != self._seen:
                self.publish()
