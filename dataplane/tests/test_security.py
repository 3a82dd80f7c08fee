"""Security policies end to end: a real gateway process, real clients, real auth services.

One gateway serves a route per policy (JWT, API key, basic auth, CEL authorization, local and
global rate limits, ext_authz over HTTP and gRPC, CSRF, transformations), plus listener-level,
top-level targeted and backend-level policies. Keys, tokens and passwords are generated here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dataplane.tests import harness
from dataplane.tests import rls_server as rls

ISSUER = "https://issuer.test"
HASHED = hashlib.sha256(b"k-hashed").hexdigest()


def _rsa_jwks() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    return key, json.dumps({"keys": [jwk]})


def _token(key: Any, **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "alice", "aud": "agentgw", "exp": int(time.time()) + 300, **claims}
    return pyjwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def _route(name: str, prefix: str, policies: str, backend: str = "host: {up}") -> str:
    pol = "".join(f"        {line}\n" for line in policies.strip("\n").splitlines())
    return (
        f"    - name: {name}\n"
        f"      matches: [{{path: {{pathPrefix: {prefix}}}}}]\n"
        f"      policies:\n{pol}"
        f"      backends:\n      - {backend}\n"
    )


class Setup:
    def __init__(self, gw: harness.GatewayProcess, port: int, key: Any, rls: rls.RlsServer) -> None:
        self.gw = gw
        self.port = port
        self.key = key
        self.rls = rls

    async def get(
        self, path: str, method: str = "GET", **kwargs: Any
    ) -> tuple[int, dict[str, str], dict[str, Any] | bytes]:
        async with (
            harness.client() as c,
            c.request(method, self.gw.url(self.port, path), allow_redirects=False, **kwargs) as r,
        ):
            body = await r.read()
            headers = {k.lower(): v for k, v in r.headers.items()}
            if r.headers.get("content-type", "").startswith("application/json"):
                return r.status, headers, json.loads(body)
            return r.status, headers, body


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    key, jwks = _rsa_jwks()
    (tmp_path / "jwks.json").write_text(jwks)
    sha_password = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    (tmp_path / "htpasswd").write_text(f"bob:{{SHA}}{sha_password}\n")
    async with (
        harness.Upstream() as up,
        rls.RlsServer({("edge", (("user", None),)): rls.Limit(2, "minute")}) as limiter,
    ):
        port = harness.free_port()
        jwt_policy = f"""
jwtAuth:
  mode: strict
  issuer: {ISSUER}
  audiences: [agentgw]
  jwks: {{file: {tmp_path / "jwks.json"}}}
"""
        routes = "".join(
            [
                _route("jwt", "/jwt", jwt_policy),
                _route(
                    "jwt-authz",
                    "/admin",
                    jwt_policy + "authorization: {rules: ['jwt.sub == \"admin\"']}",
                ),
                _route(
                    "apikey",
                    "/apikey",
                    "apiKey:\n  mode: strict\n  keys:\n"
                    "  - {key: k-plain, metadata: {team: red}}\n"
                    f"  - {{keyHash: 'sha256:{HASHED}', metadata: {{team: blue}}}}\n"
                    "transformations: {request: {set: {x-team: apiKey.team}}}",
                ),
                _route(
                    "basic",
                    "/basic",
                    f"basicAuth: {{mode: strict, realm: gw, htpasswd: {{file: {tmp_path / 'htpasswd'}}}}}\n"
                    "transformations: {request: {set: {x-user: basicAuth.username}}}",
                ),
                _route(
                    "rules",
                    "/rules",
                    "authorization:\n  rules:\n"
                    "  - {require: 'request.method == \"GET\"'}\n"
                    '  - {deny: \'request.headers["x-block"] == "yes"\'}\n'
                    "  - 'request.path.startsWith(\"/rules/ok\")'",
                ),
                _route(
                    "local-rl",
                    "/limited",
                    "localRateLimit: [{maxTokens: 2, tokensPerFill: 1, fillInterval: 60s}]",
                ),
                _route(
                    "keyed-rl",
                    "/per-user",
                    "localRateLimit: [{maxTokens: 1, tokensPerFill: 1, fillInterval: 60s, "
                    "key: 'request.headers[\"x-user\"]'}]",
                ),
                _route(
                    "global-rl",
                    "/global",
                    f"remoteRateLimit: {{host: '127.0.0.1:{limiter.port}', domain: edge, "
                    "descriptors: [{entries: [{key: user, value: 'request.headers[\"x-user\"]'}]}]}",
                ),
                _route("csrf", "/csrf", "csrf: {additionalOrigins: ['https://trusted.example']}"),
                _route(
                    "transform",
                    "/transform",
                    "transformations:\n"
                    "  request:\n    set: {x-path: 'request.path + \"!\"'}\n    remove: [x-drop]\n"
                    "  response:\n    add: {x-served-by: '\"agentgw\"'}",
                ),
                _route("passthrough", "/pass", jwt_policy, backend="backend: pass"),
                _route("cors-jwt", "/cors", jwt_policy + "cors: {allowOrigins: ['https://app.example']}"),
                _route(
                    "response-body",
                    "/wrap",
                    "transformations:\n"
                    "  response:\n"
                    "    set: {content-type: '\"application/json\"'}\n"
                    '    body: \'toJson({"seen": json(response.body).path, "code": response.code})\'',
                ),
            ]
        ).replace("{up}", up.address)
        config = (
            "binds:\n"
            f"- port: {port}\n"
            "  listeners:\n"
            "  - name: main\n"
            "    routes:\n"
            f"{routes}"
            "    - name: open\n"
            "      backends:\n"
            f"      - host: {up.address}\n"
            "backends:\n"
            "- name: pass\n"
            f"  host: {up.address}\n"
            "  policies: {backendAuth: {passthrough: {}}}\n"
            "policies:\n"
            "- name: no-delete\n"
            "  target: {route: {name: open, namespace: default}}\n"
            "  policy: {authorization: {rules: [{deny: 'request.method == \"DELETE\"'}]}}\n"
        )
        gw = harness.GatewayProcess(tmp_path, config).start()
        try:
            yield Setup(gw, port, key, limiter)
        finally:
            gw.stop()


async def test_jwt_strict_needs_a_valid_token_and_strips_it_before_the_backend(setup: Setup) -> None:
    status, headers, body = await setup.get("/jwt")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert b"jwt" in body  # type: ignore[operator]
    status, _, seen = await setup.get("/jwt", headers={"authorization": f"Bearer {_token(setup.key)}"})
    assert status == 200
    assert isinstance(seen, dict)
    assert "authorization" not in seen["headers"]


async def test_jwt_with_a_wrong_audience_or_expired_gets_401(setup: Setup) -> None:
    for token in (
        _token(setup.key, aud="someone-else"),
        _token(setup.key, exp=int(time.time()) - 3600),
        _token(setup.key, iss="https://evil.test"),
        "not.a.token",
    ):
        status, _, _ = await setup.get("/jwt", headers={"authorization": f"Bearer {token}"})
        assert status == 401


async def test_claims_reach_cel_authorization_and_a_deny_is_403(setup: Setup) -> None:
    status, _, body = await setup.get("/admin", headers={"authorization": f"Bearer {_token(setup.key)}"})
    assert status == 403
    assert b"authorization" in body  # type: ignore[operator]
    admin = _token(setup.key, sub="admin")
    status, _, _ = await setup.get("/admin", headers={"authorization": f"Bearer {admin}"})
    assert status == 200


async def test_backend_auth_passthrough_forwards_the_validated_token(setup: Setup) -> None:
    token = _token(setup.key)
    status, _, seen = await setup.get("/pass", headers={"authorization": f"Bearer {token}"})
    assert status == 200
    assert isinstance(seen, dict)
    assert seen["headers"]["authorization"] == f"Bearer {token}"


async def test_api_keys_plain_and_hashed_with_metadata_in_cel(setup: Setup) -> None:
    status, _, _ = await setup.get("/apikey")
    assert status == 401
    status, _, _ = await setup.get("/apikey", headers={"authorization": "Bearer wrong"})
    assert status == 401
    status, _, seen = await setup.get("/apikey", headers={"authorization": "Bearer k-plain"})
    assert status == 200 and isinstance(seen, dict)
    assert seen["headers"]["x-team"] == "red"
    status, _, seen = await setup.get("/apikey", headers={"authorization": "Bearer k-hashed"})
    assert status == 200 and isinstance(seen, dict)
    assert seen["headers"]["x-team"] == "blue"


async def test_basic_auth_from_an_htpasswd_file(setup: Setup) -> None:
    status, headers, _ = await setup.get("/basic")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="gw"'
    bad = base64.b64encode(b"bob:wrong").decode()
    status, _, _ = await setup.get("/basic", headers={"authorization": f"Basic {bad}"})
    assert status == 401
    good = base64.b64encode(b"bob:s3cret").decode()
    status, _, seen = await setup.get("/basic", headers={"authorization": f"Basic {good}"})
    assert status == 200 and isinstance(seen, dict)
    assert seen["headers"]["x-user"] == "bob"


async def test_allow_deny_and_require_rules(setup: Setup) -> None:
    assert (await setup.get("/rules/ok"))[0] == 200
    assert (await setup.get("/rules/other"))[0] == 403  # no allow rule matches
    assert (await setup.get("/rules/ok", headers={"x-block": "yes"}))[0] == 403  # deny
    assert (await setup.get("/rules/ok", method="POST"))[0] == 403  # require


async def test_a_targeted_policy_applies_to_its_route_only(setup: Setup) -> None:
    assert (await setup.get("/anything", method="DELETE"))[0] == 403
    assert (await setup.get("/anything", method="GET"))[0] == 200
    assert (await setup.get("/rules/ok", method="GET"))[0] == 200


async def test_local_rate_limit_answers_429_with_retry_after(setup: Setup) -> None:
    statuses = []
    last: dict[str, str] = {}
    for _ in range(3):
        status, last, _ = await setup.get("/limited")
        statuses.append(status)
    assert statuses == [200, 200, 429]
    assert int(last["retry-after"]) >= 1
    assert last["x-ratelimit-limit"] == "2"
    assert last["x-ratelimit-remaining"] == "0"


async def test_a_keyed_local_rate_limit_counts_each_key_apart(setup: Setup) -> None:
    assert (await setup.get("/per-user", headers={"x-user": "a"}))[0] == 200
    assert (await setup.get("/per-user", headers={"x-user": "a"}))[0] == 429
    assert (await setup.get("/per-user", headers={"x-user": "b"}))[0] == 200


async def test_global_rate_limit_asks_the_rate_limit_service(setup: Setup) -> None:
    statuses = [(await setup.get("/global", headers={"x-user": "carol"}))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (await setup.get("/global", headers={"x-user": "dave"}))[0] == 200
    seen = setup.rls.requests[-1]
    assert seen.domain == "edge"
    assert [(e.key, e.value) for e in seen.descriptors[0].entries] == [("user", "dave")]


async def test_csrf_refuses_cross_site_posts_and_allows_same_origin_and_trusted(setup: Setup) -> None:
    host = f"127.0.0.1:{setup.port}"
    assert (await setup.get("/csrf", method="POST", headers={"origin": "https://evil.example"}))[0] == 403
    assert (await setup.get("/csrf", method="POST", headers={"origin": f"http://{host}"}))[0] == 200
    assert (await setup.get("/csrf", method="POST", headers={"origin": "https://trusted.example"}))[0] == 200
    assert (await setup.get("/csrf", method="POST", headers={"sec-fetch-site": "cross-site"}))[0] == 403
    assert (await setup.get("/csrf", method="GET", headers={"origin": "https://evil.example"}))[0] == 200
    assert (await setup.get("/csrf", method="POST"))[0] == 200  # not a browser


async def test_transformations_set_and_remove_request_headers_and_add_response_headers(setup: Setup) -> None:
    status, headers, seen = await setup.get("/transform/x", headers={"x-drop": "1"})
    assert status == 200 and isinstance(seen, dict)
    assert seen["headers"]["x-path"] == "/transform/x!"
    assert "x-drop" not in seen["headers"]
    assert headers["x-served-by"] == "agentgw"


async def test_a_response_body_transformation_rewrites_the_body_from_the_upstreams(setup: Setup) -> None:
    status, headers, body = await setup.get("/wrap/me")
    assert status == 200
    assert body == {"seen": "/wrap/me", "code": 200}
    assert int(headers["content-length"]) == len(json.dumps(body, separators=(",", ":")))


async def test_a_token_budget_charges_the_usage_llm_responses_report(tmp_path: Path) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"choices": [], "usage": {"total_tokens": 60}})

    async with harness.Upstream(handler=chat) as up:
        port = harness.free_port()
        budget = "{maxTokens: 100, tokensPerFill: 100, fillInterval: 60s, type: tokens}"
        policies = f"        localRateLimit: [{budget}]\n"
        gw = harness.GatewayProcess(tmp_path, harness.simple_config(port, up.address, policies)).start()
        try:
            statuses = []
            for _ in range(3):
                async with harness.client() as c, c.post(gw.url(port, "/v1/chat/completions"), json={}) as r:
                    await r.read()
                    statuses.append(r.status)
            assert statuses == [200, 200, 429]  # 100 tokens: 60 used, then 120 (admitted at 40 left)
        finally:
            gw.stop()


async def test_a_refusal_carries_the_routes_cors_headers_so_browsers_can_read_it(setup: Setup) -> None:
    status, headers, _ = await setup.get("/cors", headers={"origin": "https://app.example"})
    assert status == 401
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["www-authenticate"].startswith("Bearer")
