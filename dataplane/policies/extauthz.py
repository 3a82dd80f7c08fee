"""ext_authz: ask an external authorization service to allow or deny a request.

Compiled once from `pb.ExtAuthz` into a step (`context.Step`) that always returns an
awaitable. Two protocols, with agentgateway's semantics (which follow Envoy's ext_authz filter):

- gRPC (`envoy.service.auth.v3.Authorization/Check`): the step builds a CheckRequest (peers,
  method, path with query, host, scheme, protocol, headers, optionally the body, the static
  `context` as context_extensions, the CEL `metadata` as metadata_context). Status OK allows
  and applies the OkHttpResponse (request headers set/appended/removed, response headers,
  query parameters); dynamic metadata becomes `ctx.extauthz`. Any other status denies with the
  DeniedHttpResponse's status (default 403), headers and body.
- HTTP: the step sends the original method and path (or the CEL `path`) with the configured
  request headers (default only `authorization`), CEL `add_request_headers` and optionally the
  body. A 2xx allows and copies `include_response_headers` into the request; anything else
  (including a 5xx the service answers with) is relayed to the client as the denial, or becomes
  a 302 to the CEL `redirect` URL when the service says 401/403.

When the service cannot decide (no connection, timeout, gRPC error) the policy fails closed
with `deny_status` (default 403) unless `fail_open` is set. A body over `max_request_bytes`
without `allow_partial_message` is refused with 413 (Envoy's and agentgateway's answer).

The network calls go through `ctx.services.client(GRPC_KIND | HTTP_KIND, (host, port, tls))`;
the clients live in `dataplane.policies.extauthz_clients`, so this module stays pure.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
from collections.abc import Awaitable, Hashable, Iterable
from typing import Any, Protocol

from google.protobuf import json_format, struct_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.envoy.service.auth.v3 import attribute_context_pb2, common_pb2, external_auth_pb2
from dataplane import errors
from dataplane.policies import context

log = logging.getLogger(__name__)

GRPC_KIND = "extauthz-grpc"
"""`Services` kind of the gRPC client; key (host, port, tls)."""
HTTP_KIND = "extauthz-http"
"""`Services` kind of the HTTP client; key (host, port, tls)."""

Target = tuple[str, int, bool]
"""(host, port, tls) of the authorization service."""

DEFAULT_TIMEOUT = 1.0
DEFAULT_MAX_REQUEST_BYTES = 8192
PARTIAL_BODY_HEADER = b"x-envoy-auth-partial-body"

Headers = list[tuple[bytes, bytes]]


Evaluator = context.Evaluator
ExpressionCompiler = context.ExpressionCompiler


class Unavailable(Exception):
    """The authorization service gave no decision (connect error, timeout, gRPC error).

    Raised by the runtime clients; the step turns it into fail-open or a denial."""


class GrpcClient(Protocol):
    async def check(
        self, request: external_auth_pb2.CheckRequest, timeout_s: float
    ) -> external_auth_pb2.CheckResponse: ...


class HttpClient(Protocol):
    async def check(
        self, method: str, path: str, headers: Headers, body: bytes, timeout_s: float
    ) -> tuple[int, Headers, bytes]: ...


# Headers a service may not set or remove on the upstream request (framing and the authority),
# and that are not relayed from a denial (our writer frames the response itself).
_PROTECTED_REQUEST = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"content-length",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PSEUDO = (":authority", ":method", ":path", ":scheme")
_Action = common_pb2.HeaderValueOption.HeaderAppendAction


def compile(msg: pb.ExtAuthz, where: str, compile_expr: ExpressionCompiler, target: Target) -> context.Step:
    """Compile an ExtAuthz policy into a step; `target` is the resolved service address."""
    problems: list[str] = []
    if msg.deny_status and not 200 <= msg.deny_status <= 599:
        problems.append(f"{where}.deny_status: {msg.deny_status} is not an HTTP status (200-599)")
    for i, name in enumerate(msg.include_request_headers):
        if not _valid_name(name.lower().encode("utf-8")) and name.lower() not in _PSEUDO:
            problems.append(f"{where}.include_request_headers[{i}]: {name!r} is not a header name")
    if msg.WhichOneof("protocol") == "http":
        for name in [*msg.http.include_response_headers, *msg.http.add_request_headers]:
            if not _valid_name(name.lower().encode("utf-8")):
                problems.append(f"{where}.http: {name!r} is not a header name")
    if problems:
        raise errors.ConfigError(problems)
    common = _Common(msg, target)
    if msg.WhichOneof("protocol") == "http":
        return _HttpCheck(common, msg.http, where, compile_expr)
    return _GrpcCheck(common, msg.grpc, where, compile_expr)


class _Body:
    __slots__ = ("allow_partial", "limit", "pack_as_bytes")

    def __init__(self, msg: pb.ExtAuthzBody) -> None:
        self.limit = msg.max_request_bytes or DEFAULT_MAX_REQUEST_BYTES
        self.allow_partial = msg.allow_partial_message
        self.pack_as_bytes = msg.pack_as_bytes


class _Common:
    """What both protocols share: target, timeout, failure mode, header and body selection."""

    __slots__ = ("body", "deny_status", "fail_open", "include", "target", "timeout")

    def __init__(self, msg: pb.ExtAuthz, target: Target) -> None:
        self.target: Hashable = target
        seconds = msg.timeout.seconds + msg.timeout.nanos / 1e9
        self.timeout = seconds if seconds > 0 else DEFAULT_TIMEOUT
        self.fail_open = msg.fail_open
        self.deny_status = msg.deny_status or 403
        self.include = tuple(dict.fromkeys(n.lower() for n in msg.include_request_headers))
        self.body = _Body(msg.include_request_body) if msg.HasField("include_request_body") else None

    def unavailable(self, exc: Unavailable) -> None:
        """The service gave no decision: pass (fail open) or deny with `deny_status`."""
        if self.fail_open:
            log.warning("ext_authz: authorization service %s unavailable, allowing: %s", self.target, exc)
            return
        log.warning("ext_authz: authorization service %s unavailable, denying: %s", self.target, exc)
        raise errors.Denied("ext_authz: authorization service unavailable", status=self.deny_status)

    async def read_body(self, ctx: context.RequestContext) -> tuple[bytes, bool, int]:
        """Return (bytes to send, partial, size for the CheckRequest); keeps what it read in
        ctx.body so the proxy forwards it instead of reading the stream again."""
        assert self.body is not None
        limit = self.body.limit
        if ctx.body is None:
            data, whole = await ctx.ex.body.read_upto(limit)
            ctx.body, ctx.body_complete = data, whole
        else:
            data, whole = ctx.body, ctx.body_complete
        partial = not whole or len(data) > limit
        if partial and not self.body.allow_partial:
            raise errors.BodyTooLarge(f"ext_authz: request body over {limit} bytes")
        return (data[:limit], True, -1) if partial else (data, False, len(data))


def _target_uri(ctx: context.RequestContext) -> str:
    ex = ctx.ex
    return ex.path + "?" + ex.query if ex.query else ex.path


def _pseudo(ctx: context.RequestContext, name: str) -> str:
    if name == ":authority":
        return ctx.ex.authority
    if name == ":method":
        return ctx.ex.method
    if name == ":path":
        return _target_uri(ctx)
    return _scheme(ctx)


def _scheme(ctx: context.RequestContext) -> str:
    """The request's scheme: https on an HTTPS listener, else http (test fakes have no conn)."""
    return str(getattr(getattr(ctx.ex, "conn", None), "scheme", "http"))


def _joined(headers: Headers, name: bytes) -> str | None:
    """One header's values merged as Envoy does: "," between values, "; " for cookies."""
    found = [v.decode("utf-8", "replace") for k, v in headers if k == name]
    if not found:
        return None
    return ("; " if name == b"cookie" else ", ").join(found)


# gRPC ----------------------------------------------------------------------------------------


class _GrpcCheck:
    """The compiled gRPC ext_authz step."""

    __slots__ = ("common", "context_extensions", "metadata")

    def __init__(
        self, common: _Common, msg: pb.ExtAuthzGrpc, where: str, compile_expr: ExpressionCompiler
    ) -> None:
        self.common = common
        self.context_extensions = dict(msg.context)
        self.metadata = {
            key: compile_expr(expr, f"{where}.grpc.metadata[{key}]")
            for key, expr in sorted(msg.metadata.items())
        }

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None]:
        return self._check(ctx)

    async def _check(self, ctx: context.RequestContext) -> None:
        common = self.common
        request = await self._request(ctx)
        client: GrpcClient = ctx.services.client(GRPC_KIND, common.target)
        try:
            response = await client.check(request, common.timeout)
        except Unavailable as exc:
            common.unavailable(exc)
            return
        _decide(ctx, response)

    async def _request(self, ctx: context.RequestContext) -> external_auth_pb2.CheckRequest:
        ex = ctx.ex
        http = attribute_context_pb2.AttributeContext.HttpRequest(
            id=_request_id(ctx),
            method=ex.method,
            path=_target_uri(ctx),
            host=ex.authority,
            scheme=_scheme(ctx),
            protocol="HTTP/" + ex.version.decode("latin-1"),
            size=_content_length(ctx),
        )
        headers = http.headers
        if not self.common.include:
            for name in _PSEUDO:
                headers[name] = _pseudo(ctx, name)
            grouped: dict[bytes, list[bytes]] = {}
            for raw, v in ctx.headers:
                grouped.setdefault(raw, []).append(v)
            for raw, values in grouped.items():
                sep = "; " if raw == b"cookie" else ", "
                headers[raw.decode("latin-1")] = sep.join(v.decode("utf-8", "replace") for v in values)
        else:
            for name in self.common.include:
                if name in _PSEUDO:
                    headers[name] = _pseudo(ctx, name)
                elif (value := _joined(ctx.headers, name.encode("latin-1"))) is not None:
                    headers[name] = value
        if self.common.body is not None:
            body, _, http.size = await self.common.read_body(ctx)
            if self.common.body.pack_as_bytes:
                http.raw_body = body
            else:
                http.body = body.decode("utf-8", "replace")
        attributes = attribute_context_pb2.AttributeContext(
            source=_peer(ex.client_addr, getattr(ex, "client_port", 0)),
            destination=_peer(getattr(ex, "local_addr", ""), ex.port),
            request=attribute_context_pb2.AttributeContext.Request(http=http),
            context_extensions=self.context_extensions,
            metadata_context=self._metadata(ctx),
        )
        wall = time.time() - (time.monotonic() - ex.started)
        attributes.request.time.FromNanoseconds(int(wall * 1e9))
        return external_auth_pb2.CheckRequest(attributes=attributes)

    def _metadata(self, ctx: context.RequestContext) -> common_pb2.Metadata:
        """CEL metadata, each key a Struct; without any, the JWT claims under Envoy's
        jwt_authn namespace (agentgateway's compatibility default), else empty."""
        out = common_pb2.Metadata()
        if not self.metadata:
            if ctx.jwt is not None:
                _to_struct(out.filter_metadata["envoy.filters.http.jwt_authn"], {"jwt_payload": ctx.jwt})
            return out
        for key, evaluator in self.metadata.items():
            try:
                value = evaluator.eval(ctx)
            except Exception as exc:  # a CEL runtime error (missing key, wrong type, ...)
                log.debug("ext_authz: metadata %r not sent: %s", key, exc)
                continue
            if not isinstance(value, dict):
                log.debug("ext_authz: metadata %r not sent: not a map (%s)", key, type(value).__name__)
                continue
            struct = struct_pb2.Struct()
            if _to_struct(struct, value):
                out.filter_metadata[key].CopyFrom(struct)
            else:
                log.debug("ext_authz: metadata %r not sent: not JSON-like", key)
        return out


def _to_struct(struct: struct_pb2.Struct, value: dict[str, Any]) -> bool:
    try:
        struct.update(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _peer(address: str, port: int) -> attribute_context_pb2.AttributeContext.Peer:
    peer = attribute_context_pb2.AttributeContext.Peer()
    if address or port:
        sock = peer.address.socket_address
        sock.address = address
        sock.port_value = port
    return peer


def _request_id(ctx: context.RequestContext) -> str:
    given = ctx.header(b"x-request-id")
    return given.decode("latin-1") if given else os.urandom(16).hex()


def _content_length(ctx: context.RequestContext) -> int:
    given = ctx.header(b"content-length")
    return int(given) if given is not None and given.isdigit() else 0


def _decide(ctx: context.RequestContext, response: external_auth_pb2.CheckResponse) -> None:
    """Apply a CheckResponse: allow with its mutations, or raise the denial."""
    kind = response.WhichOneof("http_response")
    metadata = response.dynamic_metadata if response.HasField("dynamic_metadata") else None
    if kind == "ok_response" and response.ok_response.HasField("dynamic_metadata"):
        metadata = response.ok_response.dynamic_metadata  # deprecated field; Envoy lets it override
    if metadata is not None and metadata.fields:
        ctx.extauthz = json_format.MessageToDict(metadata)
        ctx.invalidate("extauthz")
    if response.status.code != 0:
        log.debug("ext_authz: denied with code %d", response.status.code)
        if kind != "denied_response":
            raise errors.Denied("ext_authz: denied")
        denied = response.denied_response
        status = denied.status.code if 200 <= denied.status.code <= 599 else 403
        headers: Headers = []
        for option in denied.headers:
            headers = _apply_option(headers, option, _HOP_BY_HOP)
        raise errors.Denied(
            "ext_authz: denied", status=status, headers=tuple(headers), body=denied.body.encode("utf-8")
        )
    if kind != "ok_response":
        return
    ok = response.ok_response
    if ok.headers_to_remove:
        drop = {n.lower().encode("utf-8") for n in ok.headers_to_remove}
        drop -= _PROTECTED_REQUEST
        ctx.headers = [h for h in ctx.headers if h[0] not in drop]
    if ok.headers:
        headers = ctx.headers
        for option in ok.headers:
            headers = _apply_option(headers, option, _PROTECTED_REQUEST)
        ctx.headers = headers
    if ok.response_headers_to_add:
        added: Headers = []
        for option in ok.response_headers_to_add:
            added = _apply_option(added, option, _HOP_BY_HOP)
        ctx.response_headers.extend(added)
    if ok.query_parameters_to_set or ok.query_parameters_to_remove:
        ctx.ex.query = _new_query(ctx.ex.query, ok.query_parameters_to_set, ok.query_parameters_to_remove)
    ctx.invalidate("request")


def _valid_name(name: bytes) -> bool:
    return bool(name) and all(c in _TOKEN for c in name)


def _apply_option(
    headers: Headers, option: common_pb2.HeaderValueOption, protected: frozenset[bytes]
) -> Headers:
    """Apply one HeaderValueOption with Envoy's ext_authz semantics: `append_action` when set,
    else `append` true appends and false or unset overwrites. Returns the new list."""
    h = option.header
    name = h.key.lower().encode("utf-8")
    value = h.raw_value or h.value.encode("utf-8")
    if not _valid_name(name) or name in protected or any(c in value for c in b"\r\n\0"):
        log.debug("ext_authz: header mutation of %r ignored", h.key)
        return headers
    if not value and not option.keep_empty_value:
        return headers
    action = option.append_action
    if action == _Action.APPEND_IF_EXISTS_OR_ADD:
        appending = option.HasField("append") and option.append.value
        action = _Action.APPEND_IF_EXISTS_OR_ADD if appending else _Action.OVERWRITE_IF_EXISTS_OR_ADD
    present = any(k == name for k, _ in headers)
    if action == _Action.ADD_IF_ABSENT:
        return headers if present else [*headers, (name, value)]
    if action == _Action.OVERWRITE_IF_EXISTS and not present:
        return headers
    if action in (_Action.OVERWRITE_IF_EXISTS_OR_ADD, _Action.OVERWRITE_IF_EXISTS):
        return [*(x for x in headers if x[0] != name), (name, value)]
    return [*headers, (name, value)]


def _new_query(query: str, to_set: Iterable[common_pb2.QueryParameter], to_remove: Iterable[str]) -> str:
    """Set (replacing every occurrence) and remove query parameters; keys compare decoded."""
    to_set = list(to_set)
    pairs = [p.partition("=") for p in query.split("&") if p] if query else []
    drop = set(to_remove) | {p.key for p in to_set}
    kept = [f"{k}{eq}{v}" for k, eq, v in pairs if urllib.parse.unquote_plus(k) not in drop]
    quote = urllib.parse.quote
    kept += [f"{quote(p.key, safe='')}={quote(p.value, safe='')}" for p in to_set]
    return "&".join(kept)


# HTTP ----------------------------------------------------------------------------------------


class _HttpCheck:
    """The compiled HTTP ext_authz step."""

    __slots__ = ("add", "common", "include", "path", "redirect", "response_headers")

    def __init__(
        self, common: _Common, msg: pb.ExtAuthzHttp, where: str, compile_expr: ExpressionCompiler
    ) -> None:
        self.common = common
        # Pseudo-headers have no meaning on the check request; without a list, only authorization.
        named = tuple(n.encode("latin-1") for n in common.include if n not in _PSEUDO)
        self.include = named if common.include else (b"authorization",)
        self.path = compile_expr(msg.path, f"{where}.http.path") if msg.path else None
        self.redirect = compile_expr(msg.redirect, f"{where}.http.redirect") if msg.redirect else None
        self.response_headers = tuple(
            dict.fromkeys(n.lower().encode("latin-1") for n in msg.include_response_headers)
        )
        self.add = tuple(
            (name.lower().encode("latin-1"), compile_expr(expr, f"{where}.http.add_request_headers[{name}]"))
            for name, expr in sorted(msg.add_request_headers.items())
        )

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None]:
        return self._check(ctx)

    async def _check(self, ctx: context.RequestContext) -> None:
        common = self.common
        path = self._path(ctx)
        headers: Headers = []
        for name in self.include:
            value = ctx.header(name)
            if value is not None:
                headers.append((name, value))
        body = b""
        if common.body is not None:
            body, partial, _ = await common.read_body(ctx)
            headers.append((PARTIAL_BODY_HEADER, b"true" if partial else b"false"))
        for name, evaluator in self.add:
            try:
                value_text = evaluator.eval_string(ctx)
            except Exception as exc:  # a CEL runtime error: the header is not sent
                log.debug("ext_authz: header %r not sent: %s", name, exc)
                continue
            encoded = value_text.encode("utf-8")
            if any(c in encoded for c in b"\r\n\0"):
                log.debug("ext_authz: header %r not sent: control characters", name)
                continue
            headers = [*(h for h in headers if h[0] != name), (name, encoded)]
        client: HttpClient = ctx.services.client(HTTP_KIND, common.target)
        try:
            status, response_headers, response_body = await client.check(
                ctx.ex.method, path, headers, body, common.timeout
            )
        except Unavailable as exc:
            common.unavailable(exc)
            return
        if 200 <= status < 300:
            for name in self.response_headers:
                value = _joined_bytes(response_headers, name)
                if value is not None and name not in _PROTECTED_REQUEST:
                    ctx.set_header(name, value)
            if self.response_headers:
                ctx.invalidate("request")
            return
        log.debug("ext_authz: denied with HTTP status %d", status)
        if status in (401, 403) and self.redirect is not None:
            try:
                location = self.redirect.eval_string(ctx).encode("utf-8")
            except Exception as exc:  # a CEL runtime error: deny without the redirect
                log.warning("ext_authz: redirect expression failed: %s", exc)
                raise errors.Denied("ext_authz: denied") from None
            if any(c in location for c in b"\r\n\0"):
                raise errors.Denied("ext_authz: denied")
            raise errors.Denied("ext_authz: denied", status=302, headers=((b"location", location),), body=b"")
        relayed = tuple(h for h in response_headers if h[0] not in _HOP_BY_HOP)
        raise errors.Denied("ext_authz: denied", status=status, headers=relayed, body=response_body)

    def _path(self, ctx: context.RequestContext) -> str:
        if self.path is None:
            return _target_uri(ctx)
        try:
            path = self.path.eval_string(ctx)
        except Exception as exc:  # a CEL runtime error
            log.warning("ext_authz: path expression failed: %s", exc)
            raise errors.Denied("ext_authz: authorization request path failed") from None
        if not path.startswith("/") or any(c in path for c in " \r\n\0"):
            log.warning("ext_authz: path expression gave %r, not a path", path)
            raise errors.Denied("ext_authz: authorization request path failed")
        return path


def _joined_bytes(headers: Headers, name: bytes) -> bytes | None:
    found = [v for k, v in headers if k == name]
    if not found:
        return None
    return found[0] if len(found) == 1 else b",".join(found)
