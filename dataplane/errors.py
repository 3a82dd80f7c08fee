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
        └── ClientGone                   the client went away; nothing can be sent

`response_for` is the single mapping from an error to status, headers and body. The body names
what failed in words an operator can grep, never secrets or upstream internals.
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
