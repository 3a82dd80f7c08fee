"""xDS authorization: the real grpc.aio server on 127.0.0.1 with a fake TokenReview reviewer.

A stream is served only when its bearer token authenticates as the ServiceAccount the deployer
creates for the Gateway its ROLE names (e2e/test_k8s_auth.py: the real TokenReview and proxy).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from api.proto.xds import ads_pb2, ads_pb2_grpc
from controller.k8s import tokenreview
from controller.tests import xds_fixtures as fx
from controller.xds import cache, server, snapshot

GW = cache.GatewayKey("team-a", "gw")
OTHER = cache.GatewayKey("team-b", "gw")
WAIT = 5.0


class FakeReviewer:
    """Token -> username; unknown tokens are rejected; `fail` makes the API unreachable."""

    def __init__(self) -> None:
        self.users = {
            "good": "system:serviceaccount:team-a:gw",
            "other-sa": "system:serviceaccount:team-a:someone-else",
            "other-ns": "system:serviceaccount:team-b:gw",
        }
        self.calls = 0
        self.fail = False

    async def review(self, token: str) -> str | None:
        self.calls += 1
        if self.fail:
            raise OSError("apiserver unreachable")
        return self.users.get(token)


class Env:
    def __init__(self, port: int, c: cache.SnapshotCache, ads: server.DeltaAds, reviewer: FakeReviewer):
        self.port = port
        self.cache = c
        self.ads = ads
        self.reviewer = reviewer
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def first_response(
        self, token: str | None, gateway: cache.GatewayKey = GW
    ) -> ads_pb2.DeltaDiscoveryResponse:
        """Open a stream as `gateway`'s proxy; its first response, or the AioRpcError it ends with."""
        metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel).DeltaAggregatedResources(
            metadata=metadata
        )
        node = ads_pb2.Node(
            id=f"{gateway.role}~pod",
            metadata=struct_pb2.Struct(fields={"ROLE": struct_pb2.Value(string_value=gateway.role)}),
        )
        await call.write(ads_pb2.DeltaDiscoveryRequest(node=node, type_url=snapshot.TYPE_URL))
        try:
            response = await asyncio.wait_for(call.read(), WAIT)
        finally:
            call.cancel()
        assert response is not grpc.aio.EOF
        assert isinstance(response, ads_pb2.DeltaDiscoveryResponse)
        return response

    async def refused(self, token: str | None, gateway: cache.GatewayKey = GW) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.first_response(token, gateway)
        code: grpc.StatusCode = err.value.code()
        return code


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    c = cache.SnapshotCache()
    c.publish(GW, fx.gateway("a"))
    c.publish(OTHER, fx.gateway("a"))
    reviewer = FakeReviewer()
    ads = server.DeltaAds(c, c.stats, tokenreview.ServiceAccountAuthorizer(reviewer))
    srv, port = await server.start(ads, 0, "127.0.0.1")
    e = Env(port, c, ads, reviewer)
    try:
        yield e
    finally:
        await asyncio.wait_for(ads.close_streams(), WAIT)
        await e.channel.close()
        await srv.stop(None)


async def test_the_gateways_own_service_account_is_served(env: Env) -> None:
    response = await env.first_response("good")
    assert response.resources
    assert env.ads.denied.values == {}


async def test_no_token_is_unauthenticated(env: Env) -> None:
    assert await env.refused(None) == grpc.StatusCode.UNAUTHENTICATED
    assert env.ads.denied.get((str(GW), "UNAUTHENTICATED")) == 1
    assert env.reviewer.calls == 0


async def test_an_invalid_token_is_unauthenticated(env: Env) -> None:
    assert await env.refused("forged") == grpc.StatusCode.UNAUTHENTICATED


async def test_another_service_account_is_denied(env: Env) -> None:
    assert await env.refused("other-sa") == grpc.StatusCode.PERMISSION_DENIED
    assert env.ads.denied.get((str(GW), "PERMISSION_DENIED")) == 1
    assert "agentgw_xds_auth_denied_total" in env.cache.stats.render()


async def test_a_proxy_of_another_namespace_is_denied(env: Env) -> None:
    # team-b's proxy claims team-a's gateway: same gateway name, wrong namespace
    assert await env.refused("other-ns", GW) == grpc.StatusCode.PERMISSION_DENIED
    # and is served for its own
    assert (await env.first_response("other-ns", OTHER)).resources


async def test_reviews_are_cached_per_token(env: Env) -> None:
    for _ in range(3):
        await env.first_response("good")
    assert env.reviewer.calls == 1


async def test_an_unreachable_apiserver_is_unavailable_and_not_cached(env: Env) -> None:
    env.reviewer.fail = True
    assert await env.refused("good") == grpc.StatusCode.UNAVAILABLE
    env.reviewer.fail = False
    assert (await env.first_response("good")).resources


def test_bearer_token_parsing() -> None:
    assert server.bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert server.bearer_token([("Authorization", b"bearer  abc ")]) == "abc"
    assert server.bearer_token([("authorization", "Basic abc")]) is None
    assert server.bearer_token([("authorization", "Bearer ")]) is None
    assert server.bearer_token(None) is None


def test_the_service_account_name_follows_the_deployer() -> None:
    long_name = "a" * 70
    username = tokenreview.service_account_of(cache.GatewayKey("ns", long_name))
    assert username.startswith("system:serviceaccount:ns:aaa")
    assert len(username.rsplit(":", 1)[1]) <= 63


async def test_answers_expire() -> None:
    now = [0.0]
    reviewer = FakeReviewer()
    auth = tokenreview.ServiceAccountAuthorizer(reviewer, ttl=60, negative_ttl=5, clock=lambda: now[0])
    await auth.authorize("good", GW)
    now[0] = 59
    await auth.authorize("good", GW)
    assert reviewer.calls == 1
    now[0] = 61
    await auth.authorize("good", GW)
    assert reviewer.calls == 2
    with pytest.raises(server.Denied):
        await auth.authorize("forged", GW)
    now[0] = 65
    with pytest.raises(server.Denied):
        await auth.authorize("forged", GW)
    assert reviewer.calls == 3
    now[0] = 67
    with pytest.raises(server.Denied):
        await auth.authorize("forged", GW)
    assert reviewer.calls == 4
