"""ext_authz steps against real authorization servers (gRPC and HTTP) on 127.0.0.1.

Each test compiles a `pb.ExtAuthz`, runs the step through `context.run` with a RequestContext
over a small fake exchange, and checks what the server received and what the step did to the
context (or which denial it raised). CEL is replaced by a fake compiler: expressions are keys
of a table of Python functions.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.envoy.service.auth.v3 import common_pb2, external_auth_pb2
from dataplane import errors
from dataplane.policies import context, extauthz, extauthz_clients, services
from dataplane.server import streams
from dataplane.tests import extauthz_servers
from dataplane.tests.extauthz_servers import HttpAnswer, allow, deny, option

Action = common_pb2.HeaderValueOption.HeaderAppendAction


class FakeExchange:
    """The few Exchange fields the ext_authz step reads."""

    def __init__(
        self,
        method: str = "GET",
        path: str = "/api/items",
        query: str = "",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        chunks: list[bytes] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.authority = "gw.example.com"
        self.headers = headers if headers is not None else [(b"host", b"gw.example.com")]
        self.client_addr = "10.1.2.3"
        self.port = 3000
        self.version = b"1.1"
        self.started = time.monotonic()
        stream = streams.ByteStream(None)
        for chunk in chunks if chunks is not None else ([body] if body else []):
            stream.feed(chunk)
        stream.feed_eof()
        self.body = stream


class FakeExpr:
    def __init__(self, fn: Callable[[context.RequestContext], Any]) -> None:
        self.fn = fn

    def eval(self, ctx: context.RequestContext) -> Any:
        return self.fn(ctx)

    def eval_string(self, ctx: context.RequestContext) -> str:
        value = self.fn(ctx)
        if not isinstance(value, str):
            raise TypeError("not a string")
        return value


def _fail(ctx: context.RequestContext) -> Any:
    raise KeyError("no such key")


EXPRESSIONS: dict[str, Callable[[context.RequestContext], Any]] = {
    "tenant": lambda ctx: {"tenant": "acme", "tier": 2},
    "not-a-map": lambda ctx: "text",
    "fails": _fail,
    "user-path": lambda ctx: "/check" + ctx.ex.path,
    "relative-path": lambda ctx: "check",
    "login": lambda ctx: "https://login.example.com/?from=" + ctx.ex.path,
    "route-name": lambda ctx: "route-" + ctx.route,
}
compiled_where: list[str] = []


def compile_expr(expr: str, where: str) -> FakeExpr:
    compiled_where.append(where)
    return FakeExpr(EXPRESSIONS[expr])


@pytest.fixture
async def svc() -> AsyncIterator[services.Services]:
    s = services.Services(
        {
            extauthz.GRPC_KIND: extauthz_clients.grpc_client,
            extauthz.HTTP_KIND: extauthz_clients.http_client,
        }
    )
    yield s
    await s.close()


@pytest.fixture
async def grpc_server() -> AsyncIterator[extauthz_servers.GrpcAuthzServer]:
    server = await extauthz_servers.GrpcAuthzServer.start()
    yield server
    await server.stop()


@pytest.fixture
async def http_server() -> AsyncIterator[extauthz_servers.HttpAuthzServer]:
    server = await extauthz_servers.HttpAuthzServer.start()
    yield server
    await server.stop()


def grpc_policy(port: int, **fields: Any) -> tuple[pb.ExtAuthz, extauthz.Target]:
    msg = pb.ExtAuthz(grpc=pb.ExtAuthzGrpc(), **fields)
    return msg, ("127.0.0.1", port, False)


def http_policy(
    port: int, http: pb.ExtAuthzHttp | None = None, **fields: Any
) -> tuple[pb.ExtAuthz, extauthz.Target]:
    msg = pb.ExtAuthz(http=http or pb.ExtAuthzHttp(), **fields)
    return msg, ("127.0.0.1", port, False)


async def run(
    policy: tuple[pb.ExtAuthz, extauthz.Target],
    svc: services.Services,
    ex: FakeExchange | None = None,
    **ctx_fields: Any,
) -> context.RequestContext:
    msg, target = policy
    step = extauthz.compile(msg, "policies[0].extAuthz", compile_expr, target)
    ex = ex or FakeExchange()
    ctx = context.RequestContext(ex, svc, list(ex.headers), ex.path, route="r1")  # type: ignore[arg-type]
    for name, value in ctx_fields.items():
        setattr(ctx, name, value)
    pending = context.run([step], ctx)
    assert pending is not None, "an ext_authz step always waits for the service"
    await pending
    return ctx


async def denied(
    policy: tuple[pb.ExtAuthz, extauthz.Target], svc: services.Services, ex: FakeExchange | None = None
) -> errors.ProxyError:
    with pytest.raises(errors.ProxyError) as caught:
        await run(policy, svc, ex)
    return caught.value


def stopped_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# gRPC ----------------------------------------------------------------------------------------


async def test_an_allowed_grpc_check_passes_and_the_server_sees_the_request(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(
        method="POST",
        path="/api/items",
        query="a=1&b=2",
        headers=[
            (b"host", b"gw.example.com"),
            (b"authorization", b"Bearer t0k"),
            (b"x-multi", b"one"),
            (b"x-multi", b"two"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x-request-id", b"req-42"),
        ],
    )
    ctx = await run(grpc_policy(grpc_server.port), svc, ex)
    assert ctx.headers == ex.headers
    attrs = grpc_server.requests[-1].attributes
    http = attrs.request.http
    assert (http.method, http.path, http.host, http.scheme, http.protocol) == (
        "POST",
        "/api/items?a=1&b=2",
        "gw.example.com",
        "http",
        "HTTP/1.1",
    )
    assert http.id == "req-42"
    assert http.headers["authorization"] == "Bearer t0k"
    assert http.headers["x-multi"] == "one, two"
    assert http.headers["cookie"] == "a=1; b=2"
    assert http.headers[":method"] == "POST"
    assert http.headers[":path"] == "/api/items?a=1&b=2"
    assert http.headers[":authority"] == "gw.example.com"
    assert http.body == "" and http.raw_body == b""
    assert attrs.source.address.socket_address.address == "10.1.2.3"
    assert attrs.destination.address.socket_address.port_value == 3000
    assert abs(attrs.request.time.ToNanoseconds() / 1e9 - time.time()) < 5
    assert attrs.HasField("metadata_context") and not attrs.metadata_context.filter_metadata


async def test_a_grpc_denial_carries_the_services_status_headers_and_body(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: deny(
        status=401,
        headers=[option("www-authenticate", 'Bearer realm="x"'), option("content-length", "99")],
        body="go away",
    )
    err = await denied(grpc_policy(grpc_server.port), svc)
    assert isinstance(err, errors.Denied)
    status, headers, body = errors.response_for(err)
    assert status == 401
    assert headers == [(b"www-authenticate", b'Bearer realm="x"')]
    assert body == b"go away"


async def test_a_grpc_denial_without_a_denied_response_is_a_plain_403(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: external_auth_pb2.CheckResponse(status=common_pb2.Status(code=16))
    err = await denied(grpc_policy(grpc_server.port), svc)
    status, _, body = errors.response_for(err)
    assert status == 403
    assert b"ext_authz: denied" in body


async def test_a_denial_with_an_empty_body_sends_an_empty_body(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: deny()
    err = await denied(grpc_policy(grpc_server.port), svc)
    assert errors.response_for(err) == (403, [], b"")


async def test_header_mutations_follow_envoys_ext_authz_append_semantics(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: allow(
        headers=[
            option("x-user", "alice"),  # append unset: overwrite
            option("x-tag", "b", append=True),  # appended next to the existing value
            option("x-keep", "new", action=Action.ADD_IF_ABSENT),  # present: untouched
            option("x-absent", "added", action=Action.ADD_IF_ABSENT),
            option("x-only-if", "nope", action=Action.OVERWRITE_IF_EXISTS),  # absent: nothing
            option("x-tag2", "z", action=Action.OVERWRITE_IF_EXISTS),
            option("x-empty", ""),  # empty values are dropped ...
            option("x-kept-empty", "", keep_empty=True),  # ... unless keep_empty_value
            option("x-bad", "a\r\nx-injected: 1"),  # never: a header injection
            option("content-length", "0"),  # framing is not the service's to change
            option("host", "evil.example.com"),
        ]
    )
    ex = FakeExchange(
        headers=[
            (b"host", b"gw.example.com"),
            (b"x-user", b"mallory"),
            (b"x-tag", b"a"),
            (b"x-keep", b"old"),
            (b"x-tag2", b"y"),
        ]
    )
    ctx = await run(grpc_policy(grpc_server.port), svc, ex)
    assert ctx.headers == [
        (b"host", b"gw.example.com"),
        (b"x-tag", b"a"),
        (b"x-keep", b"old"),
        (b"x-user", b"alice"),
        (b"x-tag", b"b"),
        (b"x-absent", b"added"),
        (b"x-tag2", b"z"),
        (b"x-kept-empty", b""),
    ]


async def test_headers_to_remove_are_removed_except_host(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: allow(remove=["Authorization", "host", ":path", "x-gone"])
    ex = FakeExchange(
        headers=[
            (b"host", b"gw.example.com"),
            (b"authorization", b"Bearer t"),
            (b"x-gone", b"1"),
            (b"x-stay", b"2"),
        ]
    )
    ctx = await run(grpc_policy(grpc_server.port), svc, ex)
    assert ctx.headers == [(b"host", b"gw.example.com"), (b"x-stay", b"2")]


async def test_response_headers_to_add_reach_the_clients_response(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: allow(
        response_headers=[
            option("x-authz", "ok"),
            option("set-cookie", "a=1", append=True),
            option("set-cookie", "b=2", append=True),
        ]
    )
    ctx = await run(grpc_policy(grpc_server.port), svc)
    assert ctx.response_headers == [(b"x-authz", b"ok"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


async def test_dynamic_metadata_becomes_ctx_extauthz(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: allow(metadata={"user": "alice", "groups": ["a", "b"], "level": 3})
    ctx = await run(grpc_policy(grpc_server.port), svc)
    assert ctx.extauthz == {"user": "alice", "groups": ["a", "b"], "level": 3.0}


async def test_an_allow_without_metadata_leaves_ctx_extauthz_unset(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ctx = await run(grpc_policy(grpc_server.port), svc)
    assert ctx.extauthz is None


async def test_dynamic_metadata_of_a_denial_is_kept_too(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: deny(metadata={"reason": "blocked"})
    msg, target = grpc_policy(grpc_server.port)
    step = extauthz.compile(msg, "p", compile_expr, target)
    ex = FakeExchange()
    ctx = context.RequestContext(ex, svc, list(ex.headers), ex.path)  # type: ignore[arg-type]
    with pytest.raises(errors.Denied):
        await step(ctx)  # type: ignore[misc]
    assert ctx.extauthz == {"reason": "blocked"}


async def test_include_request_headers_limits_what_the_grpc_server_sees(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(
        headers=[(b"host", b"gw.example.com"), (b"authorization", b"Bearer t"), (b"x-secret", b"s")]
    )
    await run(
        grpc_policy(grpc_server.port, include_request_headers=["Authorization", ":method", "x-missing"]),
        svc,
        ex,
    )
    assert dict(grpc_server.requests[-1].attributes.request.http.headers) == {
        "authorization": "Bearer t",
        ":method": "GET",
    }


async def test_the_body_is_sent_and_kept_for_the_proxy(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", chunks=[b'{"a":', b" 1}"], headers=[(b"content-length", b"8")])
    ctx = await run(grpc_policy(grpc_server.port, include_request_body=pb.ExtAuthzBody()), svc, ex)
    http = grpc_server.requests[-1].attributes.request.http
    assert (http.body, http.size) == ('{"a": 1}', 8)
    assert (ctx.body, ctx.body_complete) == (b'{"a": 1}', True)


async def test_pack_as_bytes_sends_the_body_as_raw_bytes(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", body=b"\xff\x00bin")
    await run(
        grpc_policy(grpc_server.port, include_request_body=pb.ExtAuthzBody(pack_as_bytes=True)), svc, ex
    )
    http = grpc_server.requests[-1].attributes.request.http
    assert (http.raw_body, http.body) == (b"\xff\x00bin", "")


async def test_a_body_over_the_limit_gets_413_and_the_service_is_not_asked(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", chunks=[b"x" * 6, b"y" * 6])
    err = await denied(
        grpc_policy(grpc_server.port, include_request_body=pb.ExtAuthzBody(max_request_bytes=10)), svc, ex
    )
    assert isinstance(err, errors.BodyTooLarge) and err.status == 413
    assert "ext_authz" in str(err)
    assert grpc_server.requests == []


async def test_a_partial_body_is_sent_truncated_and_the_rest_still_follows(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", chunks=[b"x" * 6, b"y" * 6, b"z" * 6])
    body = pb.ExtAuthzBody(max_request_bytes=10, allow_partial_message=True)
    ctx = await run(grpc_policy(grpc_server.port, include_request_body=body), svc, ex)
    http = grpc_server.requests[-1].attributes.request.http
    assert (http.body, http.size) == ("xxxxxxyyyy", -1)
    assert (ctx.body, ctx.body_complete) == (b"xxxxxxyyyyyy", False)
    assert await ex.body.read() == b"zzzzzz"


async def test_a_body_an_earlier_step_read_is_reused(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", body=b"unread")
    ctx = await run(
        grpc_policy(grpc_server.port, include_request_body=pb.ExtAuthzBody()),
        svc,
        ex,
        body=b"already read",
        body_complete=True,
    )
    assert grpc_server.requests[-1].attributes.request.http.body == "already read"
    assert ctx.body == b"already read"


async def test_context_extensions_and_cel_metadata_reach_the_server(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    compiled_where.clear()
    spec = pb.ExtAuthzGrpc(
        context={"team": "payments"},
        metadata={"acme.tenant": "tenant", "acme.text": "not-a-map", "acme.broken": "fails"},
    )
    await run((pb.ExtAuthz(grpc=spec), ("127.0.0.1", grpc_server.port, False)), svc)
    attrs = grpc_server.requests[-1].attributes
    assert dict(attrs.context_extensions) == {"team": "payments"}
    meta = attrs.metadata_context.filter_metadata
    assert set(meta) == {"acme.tenant"}
    assert dict(meta["acme.tenant"]) == {"tenant": "acme", "tier": 2.0}
    assert "policies[0].extAuthz.grpc.metadata[acme.tenant]" in compiled_where


async def test_without_cel_metadata_the_jwt_claims_go_under_jwt_authn(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    await run(grpc_policy(grpc_server.port), svc, jwt={"sub": "alice", "iss": "https://idp"})
    meta = grpc_server.requests[-1].attributes.metadata_context.filter_metadata
    payload = meta["envoy.filters.http.jwt_authn"]["jwt_payload"]
    assert dict(payload) == {"sub": "alice", "iss": "https://idp"}


async def test_query_parameters_are_set_and_removed(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.decide = lambda _r: allow(query_set={"user": "a b", "keep": "new"}, query_remove=["token"])
    ex = FakeExchange(query="token=secret&keep=old&x=1")
    ctx = await run(grpc_policy(grpc_server.port), svc, ex)
    assert ctx.ex.query == "x=1&user=a%20b&keep=new"


async def test_a_stopped_grpc_service_denies_with_403_or_deny_status(svc: services.Services) -> None:
    port = stopped_port()
    err = await denied(grpc_policy(port), svc)
    assert isinstance(err, errors.Denied) and err.status == 403
    assert str(err) == "ext_authz: authorization service unavailable"
    err = await denied(grpc_policy(port, deny_status=503), svc)
    assert err.status == 503


async def test_a_stopped_grpc_service_lets_requests_through_when_failing_open(svc: services.Services) -> None:
    ctx = await run(grpc_policy(stopped_port(), fail_open=True), svc)
    assert ctx.extauthz is None


async def test_a_slow_grpc_service_times_out(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.delay = 2.0
    started = time.monotonic()
    err = await denied(grpc_policy(grpc_server.port, timeout={"nanos": 200_000_000}), svc)
    assert err.status == 403
    assert time.monotonic() - started < 1.5
    ctx = await run(grpc_policy(grpc_server.port, timeout={"nanos": 100_000_000}, fail_open=True), svc)
    assert ctx.extauthz is None


async def test_a_grpc_error_status_counts_as_no_decision(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    grpc_server.abort_code = grpc.StatusCode.INTERNAL
    err = await denied(grpc_policy(grpc_server.port, deny_status=500), svc)
    assert err.status == 500


async def test_one_grpc_client_serves_every_request_to_a_target(
    grpc_server: extauthz_servers.GrpcAuthzServer, svc: services.Services
) -> None:
    for _ in range(3):
        await run(grpc_policy(grpc_server.port), svc)
    assert len(grpc_server.requests) == 3
    assert svc.client(extauthz.GRPC_KIND, ("127.0.0.1", grpc_server.port, False)) is svc.client(
        extauthz.GRPC_KIND, ("127.0.0.1", grpc_server.port, False)
    )


# HTTP ----------------------------------------------------------------------------------------


async def test_an_allowed_http_check_copies_the_included_response_headers(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http_server.answer = HttpAnswer(200, [("X-User", "alice"), ("x-other", "no"), ("content-length", "0")])
    http = pb.ExtAuthzHttp(include_response_headers=["x-user", "x-absent"])
    ex = FakeExchange(
        method="DELETE", path="/api/items/7", query="force=1", headers=[(b"x-user", b"mallory")]
    )
    ctx = await run(http_policy(http_server.port, http), svc, ex)
    assert ctx.headers == [(b"x-user", b"alice")]
    got = http_server.requests[-1]
    assert (got.method, got.path) == ("DELETE", "/api/items/7?force=1")


async def test_http_sends_only_authorization_by_default_plus_cel_headers(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http = pb.ExtAuthzHttp(add_request_headers={"x-route": "route-name", "x-broken": "fails"})
    ex = FakeExchange(headers=[(b"authorization", b"Bearer t"), (b"x-secret", b"s"), (b"cookie", b"c=1")])
    await run(http_policy(http_server.port, http), svc, ex)
    got = http_server.requests[-1]
    assert got.header("authorization") == "Bearer t"
    assert got.header("x-route") == "route-r1"
    assert got.header("x-secret") is None and got.header("cookie") is None and got.header("x-broken") is None


async def test_http_include_request_headers_replaces_the_default(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(headers=[(b"authorization", b"Bearer t"), (b"x-api-key", b"k")])
    await run(http_policy(http_server.port, include_request_headers=["X-Api-Key"]), svc, ex)
    got = http_server.requests[-1]
    assert got.header("x-api-key") == "k"
    assert got.header("authorization") is None


async def test_an_http_denial_relays_the_services_status_headers_and_body(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http_server.answer = HttpAnswer(
        401, [("WWW-Authenticate", "Basic"), ("Content-Type", "text/plain")], b"who?"
    )
    err = await denied(http_policy(http_server.port), svc)
    status, headers, body = errors.response_for(err)
    assert status == 401
    assert (b"www-authenticate", b"Basic") in headers
    assert not any(k in (b"content-length", b"transfer-encoding", b"connection") for k, _ in headers)
    assert body == b"who?"


async def test_a_5xx_from_the_http_service_is_relayed_not_failed_open(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http_server.answer = HttpAnswer(503, [], b"busy")
    err = await denied(http_policy(http_server.port, fail_open=True), svc)
    assert errors.response_for(err)[0] == 503


async def test_an_http_401_becomes_a_redirect_when_one_is_configured(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http_server.answer = HttpAnswer(401, [], b"login first")
    err = await denied(http_policy(http_server.port, pb.ExtAuthzHttp(redirect="login")), svc)
    assert errors.response_for(err) == (
        302,
        [(b"location", b"https://login.example.com/?from=/api/items")],
        b"",
    )
    http_server.answer = HttpAnswer(429, [], b"slow down")
    err = await denied(http_policy(http_server.port, pb.ExtAuthzHttp(redirect="login")), svc)
    assert err.status == 429


async def test_the_http_path_expression_chooses_the_check_path(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    await run(http_policy(http_server.port, pb.ExtAuthzHttp(path="user-path")), svc)
    assert http_server.requests[-1].path == "/check/api/items"
    err = await denied(http_policy(http_server.port, pb.ExtAuthzHttp(path="relative-path")), svc)
    assert err.status == 403 and len(http_server.requests) == 1


async def test_http_sends_the_body_and_says_whether_it_is_partial(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    ex = FakeExchange(method="POST", body=b"hello")
    await run(http_policy(http_server.port, include_request_body=pb.ExtAuthzBody()), svc, ex)
    got = http_server.requests[-1]
    assert (got.body, got.header("x-envoy-auth-partial-body")) == (b"hello", "false")
    ex = FakeExchange(method="POST", chunks=[b"a" * 8, b"b" * 8])
    body = pb.ExtAuthzBody(max_request_bytes=10, allow_partial_message=True)
    await run(http_policy(http_server.port, include_request_body=body), svc, ex)
    got = http_server.requests[-1]
    assert (got.body, got.header("x-envoy-auth-partial-body")) == (b"aaaaaaaabb", "true")


async def test_a_stopped_http_service_fails_closed_or_open(svc: services.Services) -> None:
    port = stopped_port()
    err = await denied(http_policy(port, deny_status=401), svc)
    assert err.status == 401
    assert str(err) == "ext_authz: authorization service unavailable"
    ctx = await run(http_policy(port, fail_open=True), svc)
    assert ctx.response_headers == []


async def test_a_slow_http_service_times_out(
    http_server: extauthz_servers.HttpAuthzServer, svc: services.Services
) -> None:
    http_server.delay = 0.6
    started = time.monotonic()
    err = await denied(http_policy(http_server.port, timeout={"nanos": 150_000_000}), svc)
    assert err.status == 403
    assert time.monotonic() - started < 0.55


# compile -------------------------------------------------------------------------------------


def test_compile_rejects_a_bad_deny_status_and_bad_header_names() -> None:
    msg = pb.ExtAuthz(
        grpc=pb.ExtAuthzGrpc(),
        deny_status=99,
        include_request_headers=["ok", "bad name"],
    )
    with pytest.raises(errors.ConfigError) as caught:
        extauthz.compile(msg, "policies[3].extAuthz", compile_expr, ("127.0.0.1", 1, False))
    assert caught.value.problems == [
        "policies[3].extAuthz.deny_status: 99 is not an HTTP status (200-599)",
        "policies[3].extAuthz.include_request_headers[1]: 'bad name' is not a header name",
    ]


def test_the_step_module_imports_no_event_loop_or_network_module() -> None:
    code = (
        "import sys, dataplane.policies.extauthz; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'grpc', 'socket', 'uvloop') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"
