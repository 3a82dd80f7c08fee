"""Immutable runtime tables: what the request path reads.

`config.compile` builds these from resources, off the request path; `config.store` swaps one
`Tables` reference; `routing` selects a listener and route from them; `proxy` applies the
policies. Nothing here changes after construction: an in-flight request keeps the tables it
started with while a reload installs new ones.

Header names are lower-case bytes and values bytes, as the HTTP/1.1 server hands them over.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataplane import routing, tls
    from dataplane.policies import context, transform

Step = Callable[["context.RequestContext"], Awaitable[None] | None]
"""A compiled security policy (see dataplane.policies.context)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderOps:
    """requestHeaderModifier / responseHeaderModifier, ready to apply."""

    add: tuple[tuple[bytes, bytes], ...] = ()
    set: tuple[tuple[bytes, bytes], ...] = ()
    remove: frozenset[bytes] = frozenset()

    def apply(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        drop = self.remove | {name for name, _ in self.set}
        out = [h for h in headers if h[0] not in drop] if drop else list(headers)
        out.extend(self.set)
        out.extend(self.add)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Authority:
    """A host/port rewrite: replace all (full), the host, the port, or use the backend's (auto)."""

    full: str | None = None
    host: str | None = None
    port: int | None = None
    auto: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PathChange:
    full: str | None = None
    prefix: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None
    authority: Authority | None
    path: PathChange | None
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class Rewrite:
    authority: Authority | None
    path: PathChange | None


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    request: float | None = None
    backend: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    backoff: float
    codes: frozenset[int]


@dataclasses.dataclass(frozen=True, slots=True)
class Cors:
    allow_any_origin: bool
    allow_origins: frozenset[str]
    origin_patterns: tuple[re.Pattern[str], ...]
    allow_credentials: bool
    allow_methods: bytes
    allow_headers: bytes
    expose_headers: bytes
    max_age: bytes

    def allows(self, origin: str) -> bool:
        if self.allow_any_origin or origin in self.allow_origins:
            return True
        return any(p.fullmatch(origin) for p in self.origin_patterns)


@dataclasses.dataclass(frozen=True, slots=True)
class AIProvider:
    """An LLM backend: the proxy rewrites the request into the provider's API call."""

    provider: str
    """"openai" (the only provider so far)."""
    path: str
    """The provider's endpoint path, e.g. /v1/chat/completions."""
    model: str
    """Replaces the request body's `model` when not empty."""
    authorization: bytes | None
    """The `Authorization` header value (`Bearer <key>`), or None to pass the client's."""


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a backend lives, and the policies of calling it."""

    name: str
    host: str
    port: int
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    redirect: Redirect | None = None
    request_timeout: float | None = None
    connect_timeout: float | None = None
    tls: tls.ClientTls | None = None
    """TLS to the backend (trust, client certificate, SNI); None is plain TCP."""
    ai: AIProvider | None = None
    steps: tuple[Step, ...] = ()
    """Backend-level security steps (authorization), run once this backend is chosen."""
    auth_passthrough: bool = False
    """Send the client's validated JWT to this backend (it is stripped otherwise)."""
    http2: bool = False
    """Speak HTTP/2 to this backend (h2c, or ALPN h2 over TLS): gRPC backends need it."""
    address: str = dataclasses.field(init=False)
    """"host:port", for logs and a missing Host header."""
    plain: bool = dataclasses.field(init=False)
    """Nothing about this backend keeps a request out of the proxy's fast lane (no redirect,
    timeout, LLM rewrite or HTTP/2). Computed once here, not per request."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", f"{self.host}:{self.port}")
        plain = self.redirect is None and self.request_timeout is None and self.ai is None and not self.http2
        object.__setattr__(self, "plain", plain)


@dataclasses.dataclass(frozen=True, slots=True)
class Mirror:
    target: Target
    percentage: float


@dataclasses.dataclass(frozen=True, slots=True)
class RoutePolicy:
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    direct_status: int | None = None
    direct_body: bytes = b""
    timeouts: Timeouts = Timeouts()
    retry: Retry | None = None
    cors: Cors | None = None
    steps: tuple[Step, ...] = ()
    """Security steps in evaluation order (authn, ext_authz, authz, rate limits, transforms)."""
    response_transform: transform.ResponseTransform | None = None
    plain: bool = dataclasses.field(init=False)
    """Nothing here keeps a request out of the proxy's fast lane (no retry, mirror, timeout or
    response-body transformation). Computed once here, not per request."""

    def __post_init__(self) -> None:
        plain = (
            (self.response_transform is None or self.response_transform.body is None)
            and self.retry is None
            and not self.mirrors
            and self.timeouts.request is None
            and self.timeouts.backend is None
        )
        object.__setattr__(self, "plain", plain)


EMPTY_POLICY = RoutePolicy()


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    key: str
    name: str
    namespace: str
    rule_name: str
    gateway: str
    listener: str
    hostnames: tuple[str, ...]
    policy: RoutePolicy
    targets: tuple[Target, ...]
    cumulative_weights: tuple[int, ...]
    order: tuple[int, str, int]
    """Gateway API tie-breakers: creation time, "namespace/name", rule index."""

    def pick(self, avoid: frozenset[str] = frozenset()) -> Target | None:
        """Choose a backend by weight; None when there is none or every weight is 0 (-> 500).

        A retry passes the names of backends that already failed in `avoid`; they are skipped
        while any other backend has weight (Envoy's previous-hosts retry predicate).
        """
        total = self.cumulative_weights[-1] if self.cumulative_weights else 0
        if total <= 0:
            return None
        if len(self.targets) == 1:
            return self.targets[0]
        if avoid:
            weights = [
                w - p for w, p in zip(self.cumulative_weights, (0, *self.cumulative_weights), strict=False)
            ]
            live = [
                (t, w) for t, w in zip(self.targets, weights, strict=True) if w > 0 and t.name not in avoid
            ]
            if live:
                point = random.random() * sum(w for _, w in live)
                for target, weight in live:
                    point -= weight
                    if point < 0:
                        return target
                return live[-1][0]
        return self.targets[bisect.bisect_right(self.cumulative_weights, random.random() * total)]


@dataclasses.dataclass(frozen=True, slots=True)
class Listener:
    key: str
    name: str
    gateway: str
    hostname: str
    routes: routing.RouteIndex
    cert: tls.ServerCert | None = None
    """The certificate of an HTTPS listener."""
    client_auth: bool = False
    """The listener requires client certificates: its Host must match the TLS SNI (else 421)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bind:
    key: str
    port: int
    listeners: routing.HostIndex[Listener]
    tls: tls.ServerTls | None = None
    """Certificates by SNI when the port serves HTTPS."""


@dataclasses.dataclass(frozen=True, slots=True)
class Tables:
    """Everything one configuration version serves."""

    binds: dict[int, Bind]
    version: str
    route_count: int
