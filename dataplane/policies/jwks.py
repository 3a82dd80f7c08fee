"""Runtime JWK sets for JWT authentication: fetched from a URL or read from a file, kept fresh.

A `JwksSource` is the long-lived client behind `ctx.services.client("jwks", key)` for the key
`("url", url, refresh_seconds)` or `("file", path, refresh_seconds)` that
`dataplane.policies.jwt` compiles. It

- loads the key set on first use (concurrent requests share that one fetch);
- refreshes it every `refresh_seconds` in the background (agentgateway reads it once);
- refetches when a token names a `kid` it does not know, at most once per `min_refetch`
  seconds (10 s), so made-up `kid`s cannot turn into a flood of fetches;
- keeps the last good key set when a fetch fails (server down, HTTP error, bad JSON, no usable
  keys) and logs a warning.

`factory` is what the worker registers for the kind "jwks". Documents over 1 MiB are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Hashable
from pathlib import Path

import aiohttp

from dataplane.policies import jwt

log = logging.getLogger(__name__)

MAX_DOCUMENT = 1 << 20
MIN_REFETCH = 10.0
FETCH_TIMEOUT = 10.0


class FetchError(Exception):
    """A key set could not be fetched or parsed."""


class JwksSource:
    """One remote or file key set (see the module docstring); implements `jwt.KeySource`."""

    def __init__(
        self,
        kind: str,
        location: str,
        refresh: float = jwt.DEFAULT_REFRESH,
        *,
        min_refetch: float = MIN_REFETCH,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        if kind not in ("url", "file"):
            raise ValueError(f"unknown JWKS source kind {kind!r}")
        self.kind = kind
        self.location = location
        self.refresh_seconds = refresh
        self.min_refetch = min_refetch
        self.timeout = timeout
        self.fetches = 0
        """Fetch attempts so far (successful or not)."""
        self._keys: jwt.KeySet | None = None
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Task[jwt.KeySet | None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"JwksSource({self.kind}:{self.location})"

    # jwt.KeySource ----------------------------------------------------------------------------
    def current(self) -> jwt.KeySet | None:
        return self._keys

    def may_refresh(self) -> bool:
        if self._closed:
            return False
        return self._inflight is not None or time.monotonic() - self._last_attempt >= self.min_refetch

    def refresh(self) -> Awaitable[jwt.KeySet | None]:
        if not self.may_refresh():
            return _ready(self._keys)
        return asyncio.shield(self._start())

    # internals --------------------------------------------------------------------------------
    def _start(self) -> asyncio.Task[jwt.KeySet | None]:
        """The fetch under way, or a new one; starts the periodic refresher on first use."""
        if self._inflight is None:
            self._last_attempt = time.monotonic()
            task = asyncio.get_running_loop().create_task(self._fetch())
            task.add_done_callback(self._fetched)
            self._inflight = task
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._periodic())
        return self._inflight

    def _fetched(self, task: asyncio.Task[jwt.KeySet | None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _periodic(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.refresh_seconds)
            await asyncio.shield(self._start())

    async def _fetch(self) -> jwt.KeySet | None:
        self.fetches += 1
        try:
            document = await (self._get() if self.kind == "url" else asyncio.to_thread(self._read))
            keys, problems = jwt.parse_jwks(document)
            for problem in problems:
                log.debug("jwks %s: skipped %s", self.location, problem)
            if not keys:
                raise FetchError("no usable signature verification keys")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("jwks %s: fetch failed, keeping the last good key set: %s", self.location, e)
            return self._keys
        self._keys = keys
        return keys

    async def _get(self) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        accept = {"accept": "application/jwk-set+json, application/json"}
        async with self._session.get(self.location, headers=accept) as response:
            if response.status != 200:
                raise FetchError(f"HTTP status {response.status}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_DOCUMENT:
                    raise FetchError(f"document larger than {MAX_DOCUMENT} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    def _read(self) -> bytes:
        with Path(self.location).open("rb") as f:
            document = f.read(MAX_DOCUMENT + 1)
        if len(document) > MAX_DOCUMENT:
            raise FetchError(f"document larger than {MAX_DOCUMENT} bytes")
        return document

    async def close(self) -> None:
        """Stop refreshing and close the HTTP session."""
        self._closed = True
        tasks = [t for t in (self._timer, self._inflight) if t is not None]
        self._timer = self._inflight = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _ready(keys: jwt.KeySet | None) -> jwt.KeySet | None:
    return keys


def factory(key: Hashable) -> JwksSource:
    """The services factory for the kind "jwks"; `key` is a `jwt.SourceKey`."""
    if not isinstance(key, tuple) or len(key) != 3:
        raise TypeError(f"a jwks key is (kind, location, refresh seconds), not {key!r}")
    kind, location, refresh = key
    return JwksSource(str(kind), str(location), float(refresh))
