"""What a request's policies share: the request context, the step contract and the chain runner.

Security policies (authentication, ext_authz, authorization, rate limits, transformations,
CSRF) are compiled off the request path into *steps*: callables that take the request's
`RequestContext` and either finish synchronously (return None) or return an awaitable the
caller must await (a JWKS refetch, an ext_authz or rate-limit service call). A step refuses a
request by raising an `errors.PolicyError` (401, 403, 429, ...). `run` runs steps in order and
stays synchronous until a step needs to wait, so a route whose policies decide locally keeps
the proxy's fast lane.

Policy modules are pure with respect to I/O: what needs the network or the event loop is
reached through `ctx.services` (a `Services`), which the worker provides. That keeps
`dataplane.config.compile`, which builds steps, free of asyncio and sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from dataplane import headerlist

if TYPE_CHECKING:
    from dataplane.server import exchange


class Services(Protocol):
    """Runtime services policies call; implemented by `dataplane.policies.services`.

    `client(kind, key)` returns the long-lived client of a kind ("jwks", "rls", "extauthz-grpc",
    "extauthz-http") for a hashable key (the compiled spec: URL and refresh interval, target
    address, ...). It is created on first use by the factory registered for the kind, and
    shared by every request and every config version naming the same key.
    """

    def client(self, kind: str, key: Hashable) -> Any: ...


class RequestContext:
    """One request as policies see it, and what they learned about it.

    `headers` is the request header list that will be sent upstream: steps that add, remove or
    rewrite request headers (stripping a validated token, ext_authz mutations, transformations)
    replace it. `response_headers` are added to the client's response. Identity results
    (`jwt`, `api_key`, `basic_auth`) and dynamic metadata (`extauthz`, `metadata`) are read by
    CEL expressions evaluated later in the chain.
    """

    __slots__ = (
        "api_key",
        "backend",
        "basic_auth",
        "body",
        "body_complete",
        "cel_vars",
        "ex",
        "extauthz",
        "headers",
        "jwt",
        "jwt_token",
        "listener",
        "metadata",
        "path",
        "response",
        "response_body",
        "response_headers",
        "route",
        "services",
        "usage_hooks",
    )

    def __init__(
        self,
        ex: exchange.Exchange,
        services: Services,
        headers: list[tuple[bytes, bytes]],
        path: str,
        listener: str = "",
        route: str = "",
    ) -> None:
        self.ex = ex
        self.services = services
        self.headers = headers
        self.path = path
        """The normalised request path (what routing matched)."""
        self.listener = listener
        self.route = route
        self.backend: dict[str, Any] | None = None
        """`backend.*` for CEL: {"name", "type", "protocol"} once a backend is chosen."""
        self.jwt: dict[str, Any] | None = None
        """Verified JWT claims, or None when no valid token was presented."""
        self.jwt_token: str | None = None
        """The raw validated token (never logged; exposed to CEL redacted)."""
        self.api_key: dict[str, Any] | None = None
        """{"key": <redacted>, **metadata} of the matching API key."""
        self.basic_auth: dict[str, Any] | None = None
        """{"username": ...} after a successful basic auth check."""
        self.extauthz: dict[str, Any] | None = None
        """Dynamic metadata returned by an ext_authz service."""
        self.metadata: dict[str, Any] | None = None
        """Values set by transformations' `metadata`."""
        self.response_headers: list[tuple[bytes, bytes]] = []
        """Headers policies add to the client's response."""
        self.response: tuple[int, list[tuple[bytes, bytes]]] | None = None
        """The upstream's status and headers, during response-phase policies."""
        self.response_body: bytes | None = None
        """The upstream's whole body, when a response transformation reads it."""
        self.body: bytes | None = None
        """The request body (or its first bytes) when a step read it (ext_authz with
        includeRequestBody, a transformation of the body). The proxy forwards this instead of
        reading the stream again; when `body_complete` is False the rest still follows."""
        self.body_complete = False
        self.usage_hooks: list[Callable[[int], None]] | None = None
        """Called with the tokens the response used (token-based rate limits); the proxy then
        reads the usage out of the response body."""
        self.cel_vars: dict[str, Any] | None = None
        """CEL variables built so far for this request (built lazily, per root)."""

    def header(self, name: bytes) -> bytes | None:
        """A request header of the (possibly modified) upstream header list; repeated values
        are joined with b","."""
        return headerlist.get(self.headers, name)

    def set_header(self, name: bytes, value: bytes) -> None:
        self.headers = [h for h in self.headers if h[0] != name]
        self.headers.append((name, value))

    def remove_header(self, name: bytes) -> None:
        self.headers = [h for h in self.headers if h[0] != name]

    def invalidate(self, root: str) -> None:
        """Forget a cached CEL variable root after a step changed what it is built from."""
        if self.cel_vars is not None:
            self.cel_vars.pop(root, None)


class Evaluator(Protocol):
    """A compiled expression, as policies use it (`dataplane.policies.cel.Expression`)."""

    source: str

    def eval(self, ctx: RequestContext) -> Any: ...

    def eval_bool(self, ctx: RequestContext) -> bool: ...

    def eval_string(self, ctx: RequestContext) -> str: ...


ExpressionCompiler = Callable[[str, str], Evaluator]
"""(source, where) -> Evaluator, raising ConfigError naming `where`: policies get
`dataplane.policies.cel.compile` from the config compiler (and fakes in their tests)."""


Step = Callable[[RequestContext], Awaitable[None] | None]
"""A compiled policy: finishes now (None) or returns what to await; raises PolicyError."""


def run(steps: Sequence[Step], ctx: RequestContext) -> Awaitable[None] | None:
    """Run steps in order; synchronous until one returns an awaitable, then the rest run after
    it inside the returned coroutine."""
    for index, step in enumerate(steps):
        pending = step(ctx)
        if pending is not None:
            return _finish(pending, steps[index + 1 :], ctx)
    return None


async def _finish(pending: Awaitable[None], rest: Sequence[Step], ctx: RequestContext) -> None:
    await pending
    for step in rest:
        more = step(ctx)
        if more is not None:
            await more
