"""The runtime side of policies: long-lived clients (JWKS fetchers, rate-limit and ext_authz
service clients) shared by every request of a worker.

Pure policy steps (`dataplane.policies.context`) ask for a client by kind and key; this module
creates it on first use with the factory registered for the kind and keeps it until `close`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)

Factory = Callable[[Hashable], Any]


class Services:
    """A registry of clients by (kind, key); see `context.Services`."""

    def __init__(self, factories: dict[str, Factory] | None = None) -> None:
        self._factories: dict[str, Factory] = dict(factories or {})
        self._clients: dict[tuple[str, Hashable], Any] = {}

    def register(self, kind: str, factory: Factory) -> None:
        self._factories[kind] = factory

    def client(self, kind: str, key: Hashable) -> Any:
        found = self._clients.get((kind, key))
        if found is None:
            factory = self._factories.get(kind)
            if factory is None:
                raise LookupError(f"no client factory registered for {kind!r}")
            found = self._clients[(kind, key)] = factory(key)
        return found

    @classmethod
    def default(cls) -> Services:
        """A registry with every runtime client the policies use."""
        from dataplane.policies import blocking, extauthz, extauthz_clients, jwks, rls

        return cls(
            {
                "jwks": jwks.factory,
                "blocking": blocking.factory,
                "rls": rls.factory,
                extauthz.GRPC_KIND: extauthz_clients.grpc_client,
                extauthz.HTTP_KIND: extauthz_clients.http_client,
            }
        )

    async def close(self) -> None:
        """Close every client that has a `close` method (awaiting it when it is a coroutine)."""
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            close = getattr(c, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("closing %r failed", c)
