"""ext_authz end to end: a real gateway process asking real authorization services.

One gateway (started once for the module) serves a route per case; behind it the echo upstream
reports what it received (headers, body length and hash), and the gRPC (Envoy
`Authorization/Check`) and HTTP authorization servers of `extauthz_servers` record every check
and answer per request path. A second gRPC server is stopped mid-module to test failure modes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from api.proto.envoy.service.auth.v3 import external_auth_pb2
from dataplane.tests import extauthz_servers as authz
from dataplane.tests import harness

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def upstream_handler(request: web.Request) -> web.StreamResponse:
    """What the upstream saw, with the body's length and sha256 (to check it arrived whole)."""
    body = await request.read()
    return web.json_response(
        {
            "path": request.path,
            "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
    )


def decide(request: external_auth_pb2.CheckRequest) -> external_auth_pb2.CheckResponse:
    """The gRPC service's answers, by request path."""
    http = request.attributes.request.http
    path = http.path.partition("?")[0]
    if path.startswith("/grpc/deny"):
        return authz.deny(
            status=418,
            headers=[authz.option("x-deny-reason", "teapot"), authz.option("www-authenticate", "Custom")],
            body="no tea for you",
        )
    if path.startswith("/grpc-meta"):
        return authz.allow(metadata={"tier": http.headers.get("x-tier", "none"), "user": "alice"})
    return authz.allow(
        headers=[authz.option("x-auth-user", "alice"), authz.option("x-tenant", "overwritten")],
        remove=["x-secret"],
    )


def _route(name: str, prefix: str, policies: str, upstream: str) -> str:
    pol = "".join(f"        {line}\n" for line in policies.strip("\n").splitlines())
    return (
        f"    - name: {name}\n"
        f"      matches: [{{path: {{pathPrefix: {prefix}}}}}]\n"
        f"      policies:\n{pol}"
        f"      backends:\n      - host: {upstream}\n"
    )


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    grpc: authz.GrpcAuthzServer
    dying: authz.GrpcAuthzServer
    """Only the failure-mode routes use it; a test stops it."""
    http_allow: authz.HttpAuthzServer
    http_deny: authz.HttpAuthzServer

    async def request(self, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        async with (
            harness.client() as c,
            c.request(method, self.gw.url(self.port, path), allow_redirects=False, **kwargs) as r,
        ):
            body = await r.read()
            headers = {k.lower(): v for k, v in r.headers.items()}
            if r.headers.get("content-type", "").startswith("application/json"):
                return r.status, headers, json.loads(body)
            return r.status, headers, body

    def grpc_checks(self, prefix: str) -> list[external_auth_pb2.CheckRequest]:
        return [r for r in self.grpc.requests if r.attributes.request.http.path.startswith(prefix)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    grpc_server = await authz.GrpcAuthzServer.start()
    dying = await authz.GrpcAuthzServer.start()
    http_allow = await authz.HttpAuthzServer.start()
    http_deny = await authz.HttpAuthzServer.start()
    http_allow.answer = authz.HttpAnswer(
        status=200, headers=[("x-auth-user", "bob"), ("x-not-copied", "1")], body=b"ok"
    )
    http_deny.answer = authz.HttpAnswer(
        status=403, headers=[("x-deny-reason", "blocked"), ("content-type", "text/plain")], body=b"nope"
    )
    grpc_server.decide = decide
    try:
        async with harness.Upstream("svc", upstream_handler) as up:
            g = f"127.0.0.1:{grpc_server.port}"
            d = f"127.0.0.1:{dying.port}"
            routes = "".join(
                [
                    _route(
                        "grpc",
                        "/grpc/",
                        f"extAuthz: {{host: '{g}', protocol: {{grpc: {{context: {{tenant: acme, "
                        "zone: eu}, metadata: {gw: '{\"route\": request.path}'}}}}",
                        up.address,
                    ),
                    _route(
                        "grpc-meta",
                        "/grpc-meta",
                        f"extAuthz: {{host: '{g}', protocol: {{grpc: {{}}}}}}\n"
                        "authorization: {rules: ['extauthz.tier == \"gold\"']}\n"
                        "transformations: {request: {set: {x-meta-user: extauthz.user}}}",
                        up.address,
                    ),
                    _route(
                        "grpc-body",
                        "/grpc-body",
                        f"extAuthz: {{host: '{g}', protocol: {{grpc: {{}}}}, "
                        "includeRequestBody: {maxRequestBytes: 1024, allowPartialMessage: true}}",
                        up.address,
                    ),
                    _route(
                        "grpc-body-strict",
                        "/grpc-strict-body",
                        f"extAuthz: {{host: '{g}', protocol: {{grpc: {{}}}}, "
                        "includeRequestBody: {maxRequestBytes: 1024}}",
                        up.address,
                    ),
                    _route(
                        "fail-deny", "/down/deny", f"extAuthz: {{host: '{d}', failureMode: deny}}", up.address
                    ),
                    _route(
                        "fail-allow",
                        "/down/allow",
                        f"extAuthz: {{host: '{d}', failureMode: allow}}",
                        up.address,
                    ),
                    _route(
                        "fail-503",
                        "/down/status",
                        f"extAuthz: {{host: '{d}', failureMode: {{denyWithStatus: 503}}}}",
                        up.address,
                    ),
                    _route(
                        "http-allow",
                        "/http/allow",
                        f"extAuthz:\n  host: '127.0.0.1:{http_allow.port}'\n"
                        "  includeRequestHeaders: [authorization, x-api-client]\n"
                        "  protocol:\n    http:\n      includeResponseHeaders: [x-auth-user]\n"
                        "      addRequestHeaders:\n"
                        "        x-original-path: request.path\n"
                        "        x-method-and-client: "
                        '\'request.method + ":" + request.headers["x-api-client"]\'',
                        up.address,
                    ),
                    _route(
                        "http-deny",
                        "/http/deny",
                        f"extAuthz: {{host: '127.0.0.1:{http_deny.port}', protocol: {{http: {{}}}}}}",
                        up.address,
                    ),
                    _route(
                        "apikey-then-authz",
                        "/keyed",
                        "apiKey: {mode: strict, keys: [{key: k-123, metadata: {team: red}}]}\n"
                        f"extAuthz: {{host: '{g}', protocol: {{grpc: {{}}}}}}",
                        up.address,
                    ),
                ]
            )
            port = harness.free_port()
            config = f"binds:\n- port: {port}\n  listeners:\n  - name: main\n    routes:\n{routes}"
            tmp = Path(tmp_path_factory.mktemp("extauthz"))
            gw = harness.GatewayProcess(tmp, config).start()
            try:
                yield Env(gw, port, grpc_server, dying, http_allow, http_deny)
            finally:
                gw.stop()
    finally:
        for server in (grpc_server, dying):
            await server.stop()
        for http_server in (http_allow, http_deny):
            await http_server.stop()


# --------------------------------------------------------------------------------------------
# gRPC


async def test_a_grpc_allow_adds_and_removes_headers_on_the_upstream_request(env: Env) -> None:
    status, _, seen = await env.request(
        "/grpc/allow?x=1", headers={"x-secret": "s3cret", "x-tenant": "mine", "x-kept": "yes"}
    )
    assert status == 200, seen
    assert seen["headers"]["x-auth-user"] == "alice"
    assert seen["headers"]["x-tenant"] == "overwritten"
    assert "x-secret" not in seen["headers"]
    assert seen["headers"]["x-kept"] == "yes"
    assert seen["path"] == "/grpc/allow" and seen["query"] == "x=1"
    check = env.grpc_checks("/grpc/allow")[-1]
    http = check.attributes.request.http
    assert (http.method, http.path) == ("GET", "/grpc/allow?x=1")
    assert http.headers["x-secret"] == "s3cret"  # the service sees what the client sent
    assert http.host == f"127.0.0.1:{env.port}"


async def test_a_grpc_deny_returns_the_services_status_headers_and_body(env: Env) -> None:
    status, headers, body = await env.request("/grpc/deny")
    assert status == 418
    assert headers["x-deny-reason"] == "teapot"
    assert headers["www-authenticate"] == "Custom"
    assert body == b"no tea for you"


async def test_grpc_context_extensions_and_cel_metadata_reach_the_service(env: Env) -> None:
    status, _, _ = await env.request("/grpc/ctx")
    assert status == 200
    attributes = env.grpc_checks("/grpc/ctx")[-1].attributes
    assert dict(attributes.context_extensions) == {"tenant": "acme", "zone": "eu"}
    assert dict(attributes.metadata_context.filter_metadata["gw"]) == {"route": "/grpc/ctx"}


async def test_dynamic_metadata_from_the_service_feeds_a_later_cel_rule_on_the_route(env: Env) -> None:
    status, _, seen = await env.request("/grpc-meta", headers={"x-tier": "gold"})
    assert status == 200, seen
    assert seen["headers"]["x-meta-user"] == "alice"
    status, _, body = await env.request("/grpc-meta", headers={"x-tier": "silver"})
    assert status == 403
    assert b"authorization" in body


async def test_the_request_body_goes_to_the_service_and_whole_to_the_upstream(env: Env) -> None:
    small = b"a=1&b=" + b"x" * 294
    status, _, seen = await env.request("/grpc-body", method="POST", data=small)
    assert status == 200, seen
    assert seen["body_len"] == len(small)
    assert seen["body_sha256"] == hashlib.sha256(small).hexdigest()
    http = env.grpc_checks("/grpc-body")[-1].attributes.request.http
    assert http.body == small.decode()
    assert http.size == len(small)

    big = bytes(i % 26 + 97 for i in range(50_000))
    status, _, seen = await env.request("/grpc-body", method="POST", data=big)
    assert status == 200, seen
    assert seen["body_len"] == len(big)
    assert seen["body_sha256"] == hashlib.sha256(big).hexdigest()
    http = env.grpc_checks("/grpc-body")[-1].attributes.request.http
    assert http.body == big[:1024].decode()  # partial: the first maxRequestBytes
    assert http.size == -1


async def test_a_body_over_the_limit_without_partial_messages_gets_413(env: Env) -> None:
    before = len(env.grpc_checks("/grpc-strict-body"))
    status, _, _ = await env.request("/grpc-strict-body", method="POST", data=b"z" * 4096)
    assert status == 413
    assert len(env.grpc_checks("/grpc-strict-body")) == before
    status, _, seen = await env.request("/grpc-strict-body", method="POST", data=b"z" * 1000)
    assert status == 200 and seen["body_len"] == 1000


async def test_a_stopped_service_denies_allows_or_answers_the_configured_status(env: Env) -> None:
    for path in ("/down/deny", "/down/allow", "/down/status"):
        assert (await env.request(path))[0] == 200  # the service is up and allows
    await env.dying.stop()
    status, _, body = await env.request("/down/deny")
    assert status == 403
    assert b"ext_authz" in body
    status, _, seen = await env.request("/down/allow")
    assert status == 200 and seen["path"] == "/down/allow"
    status, _, body = await env.request("/down/status")
    assert status == 503
    assert b"ext_authz" in body


# --------------------------------------------------------------------------------------------
# HTTP


async def test_an_http_allow_copies_the_included_response_headers_into_the_upstream_request(
    env: Env,
) -> None:
    status, _, seen = await env.request(
        "/http/allow/x?q=1", headers={"authorization": "Bearer t", "x-api-client": "cli", "x-other": "o"}
    )
    assert status == 200, seen
    assert seen["headers"]["x-auth-user"] == "bob"
    assert "x-not-copied" not in seen["headers"]
    check = env.http_allow.requests[-1]
    assert (check.method, check.path) == ("GET", "/http/allow/x?q=1")
    assert check.header("authorization") == "Bearer t"
    assert check.header("x-api-client") == "cli"
    assert check.header("x-other") is None  # not in includeRequestHeaders


async def test_http_add_request_headers_evaluate_cel_for_the_auth_server(env: Env) -> None:
    status, _, _ = await env.request("/http/allow/cel", method="POST", headers={"x-api-client": "web"})
    assert status == 200
    check = env.http_allow.requests[-1]
    assert check.header("x-original-path") == "/http/allow/cel"
    assert check.header("x-method-and-client") == "POST:web"


async def test_an_http_deny_returns_the_services_status_and_body(env: Env) -> None:
    status, headers, body = await env.request("/http/deny", headers={"authorization": "Bearer t"})
    assert status == 403
    assert body == b"nope"
    assert headers["x-deny-reason"] == "blocked"
    assert env.http_deny.requests[-1].header("authorization") == "Bearer t"


# --------------------------------------------------------------------------------------------
# Order


async def test_authentication_runs_before_ext_authz(env: Env) -> None:
    before = len(env.grpc_checks("/keyed"))
    status, _, _ = await env.request("/keyed")
    assert status == 401
    status, _, _ = await env.request("/keyed", headers={"authorization": "Bearer wrong"})
    assert status == 401
    assert len(env.grpc_checks("/keyed")) == before  # the service was never asked
    status, _, seen = await env.request("/keyed", headers={"authorization": "Bearer k-123"})
    assert status == 200, seen
    assert len(env.grpc_checks("/keyed")) == before + 1
