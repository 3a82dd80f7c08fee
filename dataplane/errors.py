"""The data plane's exception hierarchy, and the one place errors become HTTP responses.

Every error the proxy raises on purpose derives from `AgentgwError`. Errors from libraries
(OSError from a socket, httptools' parser errors, pydantic's ValidationError) are caught at the
edge and re-raised as one of these, with the library error chained as `__cause__`.

    api.errors.AgentgwError
    ├── api.errors.ConfigError      a configuration is invalid; `.problems` name field paths
    └── ProxyError                  a request failed; `.status` is what the client gets
        ├── BadRequest              400  malformed or hostile request
        │   ├── HeadersTooLarge     431  header block over the size or count limit
        │   └── BodyTooLarge        413  a body that must be buffered is over the limit
        ├── RequestTimeout          408  the client was too slow sending its request head
        ├── NoRoute                 404  no listener or route matches
        ├── NoBackend               500  the route has no usable backend (all invalid or weight 0)
        ├── Misdirected             421  Host names a client-certificate listener the TLS SNI did not
        ├── PolicyError                  a policy refused the request; `.policy` names it
        │   ├── Unauthenticated     401  missing or invalid credentials (WWW-Authenticate)
        │   ├── Forbidden           403  an authorization rule, CSRF or ext_authz denied it
        │   ├── RateLimited         429  a rate limit is exhausted (Retry-After)
        │   ├── Denied              any  ext_authz answered with its own status and body
        │   └── PolicyUnavailable   500  a policy's service failed and the policy fails closed
        ├── UpstreamError           502  the upstream broke the exchange
        │   ├── UpstreamUnavailable 503  no connection could be made
        │   └── UpstreamTimeout     504  a request or backend timeout fired
        │       └── DeadlineExceeded 504 the deadline a gRPC client sent (grpc-timeout) passed
        └── ClientGone                   the client went away; nothing can be sent

`response_for` is the single mapping from an error to status, headers and body. The body names
what failed in words an operator can grep, never secrets or upstream internals.

gRPC clients (`content-type: application/grpc...`) cannot read an HTTP error status: for them
`grpc_response_for` makes the same error a "trailers-only" response (HTTP 200, `grpc-status`
from the gRPC spec's HTTP-to-gRPC table, `grpc-message` percent-encoded) and `grpc_trailers_for`
the trailers that end a response whose head already went out. `response_for_request` picks.
"""

from __future__ import annotations

from api import errors as api_errors

AgentgwError = api_errors.AgentgwError
ConfigError = api_errors.ConfigError


class ProxyError(AgentgwError):
    """A request could not be served; `status` is the HTTP status the client receives."""

    status = 500
    reason = "internal_error"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Extra response headers (WWW-Authenticate, Retry-After, ...)."""
    body: bytes | None = None
    """A body that replaces the default "reason: message" text (ext_authz denials)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.reason.replace("_", " "))


class BadRequest(ProxyError):
    status = 400
    reason = "bad_request"


class HeadersTooLarge(BadRequest):
    status = 431
    reason = "request_headers_too_large"


class BodyTooLarge(BadRequest):
    status = 413
    reason = "request_body_too_large"


class RequestTimeout(ProxyError):
    status = 408
    reason = "request_header_timeout"


class NoRoute(ProxyError):
    status = 404
    reason = "route_not_found"


class NoBackend(ProxyError):
    """Gateway API: a rule whose backendRefs are all invalid answers 500 (HTTPRoute) or
    UNAVAILABLE (GRPCRoute)."""

    status = 500
    reason = "no_backend"


class Misdirected(ProxyError):
    status = 421
    reason = "misdirected_request"


class PolicyError(ProxyError):
    """A policy refused the request. The message says which policy, never secret details
    (why a token failed is logged at debug level, not sent to the client)."""

    def __init__(
        self,
        message: str = "",
        *,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        status: int | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        if headers:
            self.headers = headers
        if status is not None:
            self.status = status
        if body is not None:
            self.body = body


class Unauthenticated(PolicyError):
    status = 401
    reason = "unauthenticated"


class Forbidden(PolicyError):
    status = 403
    reason = "forbidden"


class RateLimited(PolicyError):
    status = 429
    reason = "rate_limited"


class Denied(PolicyError):
    status = 403
    reason = "denied"


class PolicyUnavailable(PolicyError):
    status = 500
    reason = "policy_unavailable"


class UpstreamError(ProxyError):
    status = 502
    reason = "upstream_protocol_error"


class UpstreamUnavailable(UpstreamError):
    status = 503
    reason = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    reason = "upstream_request_timeout"


class DeadlineExceeded(UpstreamTimeout):
    reason = "deadline_exceeded"


class ClientGone(ProxyError):
    status = 499
    reason = "client_disconnected"


def response_for(error: ProxyError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Return (status, headers, body) for an error raised while serving a request."""
    if error.body is not None:
        return error.status, list(error.headers), error.body
    body = f"{error.reason}: {error}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *error.headers]
    return error.status, headers, body


# --------------------------------------------------------------------------------------------
# gRPC

GRPC_OK = 0
GRPC_UNKNOWN = 2
GRPC_DEADLINE_EXCEEDED = 4
GRPC_UNAVAILABLE = 14
GRPC_STATUS_BY_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
"""gRPC's doc/http-grpc-status-mapping.md: INTERNAL, UNAUTHENTICATED, PERMISSION_DENIED,
UNIMPLEMENTED, UNAVAILABLE; any other status is UNKNOWN."""

_GRPC_CONTENT_TYPE = [(b"content-type", b"application/grpc")]
_UNRESERVED = frozenset(range(0x20, 0x7F)) - {ord("%")}


def is_grpc(content_type: str | None) -> bool:
    """The request is gRPC: its content-type is application/grpc or application/grpc+<codec>."""
    return content_type is not None and content_type.startswith("application/grpc")


def grpc_status(error: ProxyError) -> int:
    if isinstance(error, DeadlineExceeded):
        return GRPC_DEADLINE_EXCEEDED
    if isinstance(error, NoBackend):
        return GRPC_UNAVAILABLE
    return GRPC_STATUS_BY_HTTP.get(error.status, GRPC_UNKNOWN)


def grpc_message(text: str) -> bytes:
    """Percent-encode a grpc-message value (gRPC's PROTOCOL-HTTP2.md: UTF-8, then every byte
    outside printable ASCII, and "%", as %XX)."""
    return b"".join(
        bytes((b,)) if b in _UNRESERVED else b"%%%02X" % b for b in text.encode("utf-8", "replace")
    )


def grpc_trailers_for(error: ProxyError) -> list[tuple[bytes, bytes]]:
    """The `grpc-status` and `grpc-message` that report `error` to a gRPC client."""
    return [
        (b"grpc-status", b"%d" % grpc_status(error)),
        (b"grpc-message", grpc_message(f"{error.reason}: {error}")),
    ]


def grpc_response_for(error: ProxyError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`response_for` for a gRPC client: a trailers-only response (HTTP 200, no body); the
    error's own headers (WWW-Authenticate, Retry-After) ride along."""
    return 200, [*_GRPC_CONTENT_TYPE, *grpc_trailers_for(error), *error.headers], b""


def response_for_request(
    error: ProxyError, content_type: str | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`grpc_response_for` when the request is gRPC, else `response_for`."""
    if is_grpc(content_type):
        return grpc_response_for(error)
    return response_for(error)
