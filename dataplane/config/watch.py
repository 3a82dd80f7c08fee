"""Watch the standalone file and apply each valid change; keep the last good config otherwise.

The file is polled (stat every 0.5 s) rather than watched with inotify: polling sees edits
through symlink swaps (Kubernetes ConfigMap mounts, editors that write a temp file and rename)
and costs nothing measurable. A change is read, validated and compiled here; only a config
that passes reaches `apply`. A rejected one is logged with every problem, counted in
`agentgw_config_reloads_total{result="failure"}` and shown by /config_dump.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable
from typing import Protocol

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors, settings
from dataplane.config import compile as compiler
from dataplane.config import local
from dataplane.config import store as config_store
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)


class Apply(Protocol):
    """Installs a resource set; returns problems (key -> reason), empty when it was applied.
    `compiled` is the set already compiled by the caller, so it need not be compiled again."""

    def __call__(
        self, resources: list[pb.Resource], compiled: compiler.Compiled | None = None
    ) -> Awaitable[dict[str, str]]: ...


def load(path: str) -> local.LocalConfig:
    """Read, validate and compile-check a file; raise ConfigError naming every problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise errors.ConfigError([f"{path}: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise errors.ConfigError([f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})"]) from exc
    cfg = local.parse(text)
    compiled = compiler.compile_resources(cfg.resources)
    if compiled.problems:
        raise errors.ConfigError([f"{key}: {reason}" for key, reason in sorted(compiled.problems.items())])
    return cfg


Fingerprint = tuple[int, int, int]


def fingerprint(path: str) -> Fingerprint | None:
    """What identifies one version of the file: take it *before* reading, so no edit is missed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileSource:
    def __init__(
        self,
        path: str,
        apply: Apply,
        store: config_store.Store,
        stats: metrics.Registry,
        startup: settings.Settings,
        interval: float = 0.5,
        seen: Fingerprint | None = None,
    ) -> None:
        """`seen`: the file's fingerprint from before the initial config was read from it."""
        self._path = path
        self._apply = apply
        self._store = store
        self._stats = stats
        self._startup = startup
        self._interval = interval
        self._seen = seen if seen is not None else fingerprint(path)

    async def load_initial(self, cfg: local.LocalConfig) -> None:
        await self._install(cfg)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            now = fingerprint(self._path)
            if now is None or now == self._seen:
                continue
            self._seen = now
            await self.reload()

    async def reload(self) -> bool:
        """Load and apply the file; never raises, so one bad edit cannot stop the watcher."""
        try:
            cfg = load(self._path)
        except errors.ConfigError as exc:
            self._fail(str(exc))
            return False
        except Exception as exc:
            log.exception("unexpected error loading %s", self._path)
            self._fail(f"internal error loading the file: {exc!r}")
            return False
        try:
            return await self._install(cfg)
        except Exception as exc:
            log.exception("unexpected error applying %s", self._path)
            self._fail(f"internal error applying the file: {exc!r}")
            return False

    async def _install(self, cfg: local.LocalConfig) -> bool:
        problems = await self._apply(cfg.resources)
        if problems:
            self._fail("\n".join(f"{k}: {v}" for k, v in sorted(problems.items())))
            return False
        if dataclasses.asdict(cfg.settings) != dataclasses.asdict(self._startup):
            log.warning(
                "startup settings (config:, frontendPolicies:) changed; they apply at the next restart"
            )
        self._stats.config_reloads.inc(("success",))
        self._stats.config_info.values = {(self._store.status.version,): 1.0}
        self._stats.config_last_reload.set((), time.time())
        log.info("config %s applied from %s", self._store.status.version, self._path)
        return True

    def _fail(self, message: str) -> None:
        self._store.reject(message)
        self._stats.config_reloads.inc(("failure",))
        log.error(
            "config in %s rejected, still serving version %s:\n%s",
            self._path,
            self._store.status.version,
            message,
        )
