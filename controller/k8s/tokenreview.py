"""xDS authorization by TokenReview: a proxy may follow only its own Gateway.

In: the bearer token a proxy sends on its delta ADS stream (its ServiceAccount token, projected
into the pod) and the gateway its node ROLE names. Out: nothing when the token authenticates as
the ServiceAccount the deployer creates for that Gateway
(`system:serviceaccount:<gateway namespace>:<names.object_name(gateway name)>`,
controller.deployer.render), else `server.Denied` with UNAUTHENTICATED (no token, or the API
server does not accept it), PERMISSION_DENIED (a valid token of another identity, e.g. another
namespace's proxy) or UNAVAILABLE (the TokenReview itself failed; the proxy retries).

`ServiceAccountAuthorizer` implements `controller.xds.server.Authorizer`; it asks a `Reviewer`
(`ApiReviewer`: POST /apis/authentication.k8s.io/v1/tokenreviews; a fake in tests) and caches
each answer by sha256 of the token: `ttl` seconds for an authenticated token, `negative_ttl` for
a rejected one, so a fleet of reconnecting proxies costs one review per token a minute. API
failures are not cached. Wired by `agentgw-controller --xds-auth tokenreview`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc  # type: ignore[import-untyped]

from controller.deployer import names
from controller.k8s import client
from controller.xds import cache, server

log = logging.getLogger(__name__)

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_LIMIT = 4096
"""Cached answers; past it the expired ones are dropped, then the oldest."""


class Reviewer(Protocol):
    """Who a token authenticates as."""

    async def review(self, token: str) -> str | None:
        """The username of an authenticated token, None for a rejected one; raises if it cannot tell."""
        ...


class ApiReviewer:
    """TokenReview against the API server (the controller needs `create` on tokenreviews)."""

    def __init__(self, api: client.Client, audiences: Sequence[str] = ()) -> None:
        self.api = api
        self.audiences = list(audiences)
        """Empty: the API server's own audience (a projected token without `audience`)."""

    async def review(self, token: str) -> str | None:
        spec: dict[str, object] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        result = await self.api.create(PATH, body)
        status = result.get("status") or {}
        if not status.get("authenticated"):
            if status.get("error"):
                log.debug("token rejected: %s", status["error"])
            return None
        username = (status.get("user") or {}).get("username")
        return str(username) if username else None


def service_account_of(gateway: cache.GatewayKey) -> str:
    """The username of the ServiceAccount the deployer creates for `gateway`."""
    return f"system:serviceaccount:{gateway.namespace}:{names.object_name(gateway.name)}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    username: str | None
    expires: float
    """Monotonic time."""


class ServiceAccountAuthorizer:
    """`server.Authorizer`: the token must belong to the Gateway's own proxy ServiceAccount."""

    def __init__(
        self,
        reviewer: Reviewer,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reviewer = reviewer
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._cache: dict[str, _Answer] = {}
        self.reviews = 0
        """TokenReviews asked (cache misses)."""

    async def authorize(self, token: str | None, gateway: cache.GatewayKey) -> None:
        if not token:
            raise server.Denied(
                grpc.StatusCode.UNAUTHENTICATED, "no 'authorization: Bearer <token>' metadata"
            )
        username = await self._username(token)
        if username is None:
            raise server.Denied(grpc.StatusCode.UNAUTHENTICATED, "the token is not valid")
        want = service_account_of(gateway)
        if username != want:
            raise server.Denied(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{username} may not receive the configuration of gateway {gateway} (only {want})",
            )

    async def _username(self, token: str) -> str | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit.expires > now:
            return hit.username
        self.reviews += 1
        try:
            username = await self.reviewer.review(token)
        except Exception as exc:
            log.warning("TokenReview failed: %s", exc)
            raise server.Denied(grpc.StatusCode.UNAVAILABLE, f"cannot review the token: {exc}") from exc
        self._remember(key, _Answer(username, now + (self.ttl if username else self.negative_ttl)))
        return username

    def _remember(self, key: str, answer: _Answer) -> None:
        self._cache.pop(key, None)
        self._cache[key] = answer
        if len(self._cache) <= CACHE_LIMIT:
            return
        now = self.clock()
        self._cache = {k: a for k, a in self._cache.items() if a.expires > now}
        while len(self._cache) > CACHE_LIMIT:
            del self._cache[next(iter(self._cache))]
