"""Remote and file key sets: first fetch, refetch on unknown kid (rate-limited), periodic refresh.

A real aiohttp server on 127.0.0.1 serves a JWK set the test rotates and counts its hits;
file key sets live in tmp_path. Steps come from `jwt.compile` with a url or file source and
get their `JwksSource` through a `services.Services` registry, as in the worker.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Hashable
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import algorithms

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context, jwks, jwt, services

ISSUER = "https://idp.example.com"


class FakeExchange:
    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = "GET"
        self.path = "/"
        self.query = ""
        self.headers = headers
        self.client_addr = "127.0.0.1"


def request(svc: services.Services, tok: str | None = None) -> context.RequestContext:
    hs = [(b"authorization", b"Bearer " + tok.encode())] if tok is not None else []
    return context.RequestContext(FakeExchange(list(hs)), svc, list(hs), "/")  # type: ignore[arg-type]


class Signer:
    """An EC key with a kid: its public JWK and tokens signed with it."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        d = algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        d["kid"] = self.kid
        return d

    def token(self) -> str:
        claims = {"iss": ISSUER, "sub": self.kid, "exp": int(time.time()) + 300}
        return pyjwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


def document(*signers: Signer) -> str:
    return json.dumps({"keys": [s.jwk() for s in signers]})


class JwksServer:
    """Serves `document` at /keys with `status`; counts requests."""

    def __init__(self, *signers: Signer) -> None:
        self.document = document(*signers)
        self.status = 200
        self.hits = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _keys(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=self.status, text=self.document, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/keys", self._keys)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/keys"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


K1 = Signer("k1")


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    s = JwksServer(K1)
    await s.start()
    yield s
    await s.stop()


def registry(min_refetch: float = jwks.MIN_REFETCH) -> services.Services:
    def factory(key: Hashable) -> jwks.JwksSource:
        kind, location, refresh = key  # type: ignore[misc]
        return jwks.JwksSource(kind, location, refresh, min_refetch=min_refetch, timeout=2.0)

    return services.Services({"jwks": factory})


@pytest.fixture
async def svc() -> AsyncIterator[services.Services]:
    s = registry()
    yield s
    await s.close()


@pytest.fixture
async def fast_svc() -> AsyncIterator[services.Services]:
    """Unknown-kid refetches allowed every 0.2 s."""
    s = registry(min_refetch=0.2)
    yield s
    await s.close()


def url_policy(url: str, mode: int = pb.AUTH_MODE_STRICT, refresh: float | None = None) -> context.Step:
    source = pb.Jwks(url=url)
    if refresh is not None:
        source.refresh_interval.FromSeconds(int(refresh))
    return jwt.compile(
        pb.JwtAuth(mode=mode, providers=[pb.JwtProvider(issuer=ISSUER, jwks=source)]), "policies[0].jwtAuth"
    )


def file_policy(path: Path, refresh: float | None = None) -> context.Step:
    source = pb.Jwks(file=str(path))
    if refresh is not None:
        source.refresh_interval.FromSeconds(int(refresh))
    return jwt.compile(
        pb.JwtAuth(mode=pb.AUTH_MODE_STRICT, providers=[pb.JwtProvider(issuer=ISSUER, jwks=source)]),
        "policies[0].jwtAuth",
    )


async def check(step: context.Step, ctx: context.RequestContext) -> bool:
    """Run the step; True when it had to wait (a fetch), False when it finished at once."""
    pending = context.run([step], ctx)
    if pending is None:
        return False
    await pending
    return True


async def refused(step: context.Step, ctx: context.RequestContext) -> errors.Unauthenticated:
    with pytest.raises(errors.Unauthenticated) as info:
        await check(step, ctx)
    assert info.value.status == 401
    return info.value


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def source(svc: services.Services, url: str, refresh: float = jwt.DEFAULT_REFRESH) -> jwks.JwksSource:
    found = svc.client("jwks", ("url", url, refresh))
    assert isinstance(found, jwks.JwksSource)
    return found


# url ----------------------------------------------------------------------------------------


async def test_a_remote_key_set_is_fetched_once_and_then_tokens_verify_synchronously(
    server: JwksServer, svc: services.Services
) -> None:
    step = url_policy(server.url)
    first = request(svc, K1.token())
    assert await check(step, first) is True
    assert first.jwt is not None and first.jwt["sub"] == "k1"
    second = request(svc, K1.token())
    assert await check(step, second) is False
    assert second.jwt is not None
    assert server.hits == 1


async def test_concurrent_first_requests_share_one_fetch(server: JwksServer, svc: services.Services) -> None:
    step = url_policy(server.url)
    ctxs = [request(svc, K1.token()) for _ in range(20)]
    await asyncio.gather(*(check(step, c) for c in ctxs))
    assert all(c.jwt is not None for c in ctxs)
    assert server.hits == 1


async def test_a_request_without_token_does_not_fetch_keys(
    server: JwksServer, svc: services.Services
) -> None:
    ctx = request(svc)
    assert await check(url_policy(server.url, mode=pb.AUTH_MODE_OPTIONAL), ctx) is False
    assert server.hits == 0


async def test_an_unknown_kid_refetches_the_rotated_key_set(
    server: JwksServer, fast_svc: services.Services
) -> None:
    step = url_policy(server.url)
    await check(step, request(fast_svc, K1.token()))
    await asyncio.sleep(0.25)
    k2 = Signer("k2")
    server.document = document(K1, k2)
    # k2 is unknown to the cached set: one refetch finds it
    ctx = request(fast_svc, k2.token())
    assert await check(step, ctx) is True
    assert ctx.jwt is not None and ctx.jwt["sub"] == "k2"
    assert server.hits == 2
    # a key published right after that waits for the next allowed refetch: refused at once
    k3 = Signer("k3")
    server.document = document(K1, k2, k3)
    with pytest.raises(errors.Unauthenticated):
        context.run([step], request(fast_svc, k3.token()))
    assert server.hits == 2


async def test_an_unknown_kid_within_the_interval_is_refused_without_fetching(
    server: JwksServer, svc: services.Services
) -> None:
    step = url_policy(server.url)
    await check(step, request(svc, K1.token()))
    k3 = Signer("k3")
    server.document = document(K1, k3)
    with pytest.raises(errors.Unauthenticated):
        context.run([step], request(svc, k3.token()))
    assert server.hits == 1


async def test_unknown_kids_refetch_again_once_the_interval_has_passed(
    server: JwksServer, fast_svc: services.Services
) -> None:
    step = url_policy(server.url)
    await check(step, request(fast_svc, K1.token()))
    await asyncio.sleep(0.25)
    await refused(step, request(fast_svc, Signer("nobody").token()))
    assert server.hits == 2
    with pytest.raises(errors.Unauthenticated):
        context.run([step], request(fast_svc, Signer("nobody-else").token()))
    assert server.hits == 2
    await asyncio.sleep(0.25)
    k5 = Signer("k5")
    server.document = document(k5)
    ctx = request(fast_svc, k5.token())
    assert await check(step, ctx) is True
    assert ctx.jwt is not None
    assert server.hits == 3


async def test_the_key_set_is_refreshed_in_the_background(server: JwksServer, svc: services.Services) -> None:
    step = url_policy(server.url, refresh=1)
    k1_token = K1.token()
    await check(step, request(svc, k1_token))
    assert await check(step, request(svc, k1_token)) is False
    k2 = Signer("k2")
    server.document = document(k2)
    await wait_for(lambda: server.hits >= 2)
    await asyncio.sleep(0.05)
    ctx = request(svc, k2.token())
    assert await check(step, ctx) is False
    assert ctx.jwt is not None
    # k1 was rotated out: its token, verified before, is refused at once (the refresh was
    # just now, so there is no refetch)
    with pytest.raises(errors.Unauthenticated):
        context.run([step], request(svc, k1_token))


async def test_a_jwks_server_that_is_down_gets_401_not_500(svc: services.Services) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/keys"
    e = await refused(url_policy(url), request(svc, K1.token()))
    assert str(e) == "jwt authentication: invalid token"
    assert source(svc, url).fetches == 1
    # the next request does not hammer the dead server: refused at once
    with pytest.raises(errors.Unauthenticated):
        context.run([url_policy(url, mode=pb.AUTH_MODE_OPTIONAL)], request(svc, K1.token()))
    assert source(svc, url).fetches == 1
    permissive = request(svc, K1.token())
    await check(url_policy(url, mode=pb.AUTH_MODE_PERMISSIVE), permissive)
    assert permissive.jwt is None


@pytest.mark.parametrize(
    "breakage",
    ["status", "json", "empty", "huge"],
)
async def test_a_failed_refresh_keeps_the_last_good_key_set(
    server: JwksServer, fast_svc: services.Services, breakage: str
) -> None:
    step = url_policy(server.url)
    await check(step, request(fast_svc, K1.token()))
    await asyncio.sleep(0.25)
    if breakage == "status":
        server.status = 500
    elif breakage == "json":
        server.document = "{not json"
    elif breakage == "empty":
        server.document = json.dumps({"keys": []})
    else:
        server.document = json.dumps({"keys": [K1.jwk()], "pad": "x" * (jwks.MAX_DOCUMENT + 1)})
    await refused(step, request(fast_svc, Signer("new").token()))
    assert server.hits == 2
    ctx = request(fast_svc, K1.token())
    assert await check(step, ctx) is False
    assert ctx.jwt is not None


async def test_closing_the_services_stops_the_refresher(server: JwksServer) -> None:
    svc = registry()
    step = url_policy(server.url, refresh=1)
    await check(step, request(svc, K1.token()))
    src = source(svc, server.url, 1.0)
    await svc.close()
    assert not src.may_refresh()
    await asyncio.sleep(1.2)
    assert server.hits == 1


# file ---------------------------------------------------------------------------------------


async def test_a_file_key_set_is_read_and_a_rotation_found_on_unknown_kid(
    tmp_path: Path, fast_svc: services.Services
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(document(K1))
    step = file_policy(path)
    ctx = request(fast_svc, K1.token())
    assert await check(step, ctx) is True
    assert ctx.jwt is not None
    await asyncio.sleep(0.25)
    k2 = Signer("k2")
    path.write_text(document(k2))
    rotated = request(fast_svc, k2.token())
    assert await check(step, rotated) is True
    assert rotated.jwt is not None and rotated.jwt["sub"] == "k2"


async def test_a_file_key_set_is_re_read_periodically(tmp_path: Path, svc: services.Services) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(document(K1))
    step = file_policy(path, refresh=1)
    await check(step, request(svc, K1.token()))
    src = svc.client("jwks", ("file", str(path), 1.0))
    k3 = Signer("k3")
    path.write_text(document(k3))
    await wait_for(lambda: src.fetches >= 2)
    await asyncio.sleep(0.05)
    ctx = request(svc, k3.token())
    assert await check(step, ctx) is False
    assert ctx.jwt is not None


async def test_a_missing_key_file_gets_401(tmp_path: Path, svc: services.Services) -> None:
    await refused(file_policy(tmp_path / "absent.json"), request(svc, K1.token()))


def test_the_factory_builds_a_source_from_the_compiled_key() -> None:
    src = jwks.factory(("url", "https://idp.example.com/keys", 60.0))
    assert (src.kind, src.location, src.refresh_seconds) == ("url", "https://idp.example.com/keys", 60.0)
    with pytest.raises(TypeError):
        jwks.factory("https://idp.example.com/keys")
