"""Remote rate limits against a real RateLimitService (dataplane/tests/rls_server.py, grpc.aio on
127.0.0.1), through the worker's services registry and the "rls" client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context, ratelimit, rls, services
from dataplane.policies.tests.test_ratelimit import HeaderEval, request
from dataplane.tests.rls_server import Limit, RlsServer


@pytest.fixture
async def registry() -> AsyncIterator[services.Services]:
    s = services.Services({rls.KIND: rls.factory})
    try:
        yield s
    finally:
        await s.close()


def seconds(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


def policy(
    port: int, *descriptors: list[tuple[str, str]], fail_open: bool = False, timeout: float = 0.0
) -> context.Step:
    msg = pb.RemoteRateLimit(
        domain="api",
        descriptors=[
            pb.RateLimitDescriptor(entries=[pb.DescriptorEntry(key=k, value=v) for k, v in d])
            for d in descriptors
        ],
        fail_open=fail_open,
    )
    if timeout:
        msg.timeout.CopyFrom(seconds(timeout))
    return ratelimit.compile_remote(msg, "policy", HeaderEval, ("127.0.0.1", port, False))


def ctx_for(registry: services.Services, *headers: tuple[str, str]) -> context.RequestContext:
    ctx = request(*headers)
    ctx.services = registry
    return ctx


async def check(step: context.Step, ctx: context.RequestContext) -> None:
    pending = context.run([step], ctx)
    if pending is not None:
        await pending


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_request_under_the_limit_passes_and_the_service_sees_domain_and_descriptors(
    registry: services.Services,
) -> None:
    limits = {("api", (("user", None),)): Limit(5, "minute")}
    async with RlsServer(limits, ok_request_headers=(("X-RL-Checked", "yes"),)) as server:
        step = policy(server.port, [("user", "x-user")], [("route", '"chat"'), ("user", "x-user")])
        ctx = ctx_for(registry, ("x-user", "alice"))
        await check(step, ctx)
    [seen] = server.requests
    assert seen.domain == "api"
    assert seen.hits_addend == 1
    assert [[(e.key, e.value) for e in d.entries] for d in seen.descriptors] == [
        [("user", "alice")],
        [("route", "chat"), ("user", "alice")],
    ]
    assert ctx.header(b"x-rl-checked") == b"yes"


async def test_over_the_limit_is_429_with_the_service_headers_and_retry_after(
    registry: services.Services,
) -> None:
    limits = {("api", (("user", None),)): Limit(2, "minute")}
    async with RlsServer(
        limits, over_limit_headers=(("X-RateLimit-Limit", "2"),), raw_body=b"slow down\n"
    ) as server:
        step = policy(server.port, [("user", "x-user")])
        for _ in range(2):
            await check(step, ctx_for(registry, ("x-user", "bob")))
        with pytest.raises(errors.RateLimited) as caught:
            await check(step, ctx_for(registry, ("x-user", "bob")))
        await check(step, ctx_for(registry, ("x-user", "carol")))  # counted per user
    error = caught.value
    assert error.status == 429
    assert str(error) == "remote rate limit exceeded"
    hdrs = dict(error.headers)
    assert hdrs[b"x-ratelimit-limit"] == b"2"
    assert 1 <= int(hdrs[b"retry-after"]) <= 60
    assert errors.response_for(error) == (429, list(error.headers), b"slow down\n")
    assert len(server.requests) == 4


async def test_one_descriptor_over_its_limit_refuses_the_request(registry: services.Services) -> None:
    limits = {("api", (("route", "chat"),)): Limit(1, "hour")}
    async with RlsServer(limits) as server:
        step = policy(server.port, [("user", "x-user")], [("route", '"chat"')])
        await check(step, ctx_for(registry, ("x-user", "dan")))
        with pytest.raises(errors.RateLimited) as caught:
            await check(step, ctx_for(registry, ("x-user", "erin")))
    retry = int(dict(caught.value.headers)[b"retry-after"])
    assert 1 <= retry <= 3600
    assert errors.response_for(caught.value)[2] == b"rate_limited: remote rate limit exceeded\n"


async def test_response_headers_from_an_ok_answer_reach_the_client(registry: services.Services) -> None:
    async with RlsServer(ok_response_headers=(("x-quota", "plenty"),)) as server:
        ctx = ctx_for(registry)
        await check(policy(server.port, [("route", '"r"')]), ctx)
    assert ctx.response_headers == [(b"x-quota", b"plenty")]


async def test_no_evaluable_descriptor_means_no_call(registry: services.Services) -> None:
    async with RlsServer() as server:
        assert context.run([policy(server.port, [("user", "x-user")])], ctx_for(registry)) is None
    assert server.requests == []


async def test_a_stopped_service_fails_closed_with_500(registry: services.Services) -> None:
    step = policy(free_port(), [("route", '"r"')])
    with pytest.raises(errors.PolicyUnavailable) as caught:
        await check(step, ctx_for(registry))
    assert caught.value.status == 500
    assert str(caught.value) == "remote rate limit: service unavailable"


async def test_a_stopped_service_lets_requests_through_when_failing_open(
    registry: services.Services, caplog: pytest.LogCaptureFixture
) -> None:
    server = RlsServer({("api", (("route", "r"),)): Limit(1, "minute")})
    port = await server.start()
    step = policy(port, [("route", '"r"')], fail_open=True)
    await check(step, ctx_for(registry))
    await server.stop()
    with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
        for _ in range(3):
            await check(step, ctx_for(registry))  # would be over the limit; the service is gone
    warnings = [r for r in caplog.records if r.name == ratelimit.__name__]
    assert len(warnings) == 1  # rate-limited
    assert "allowing requests (failOpen)" in warnings[0].getMessage()


async def test_a_slow_service_times_out_and_fails_closed(registry: services.Services) -> None:
    async with RlsServer(delay=2.0) as server:
        step = policy(server.port, [("route", '"r"')], timeout=0.2)
        started = time.monotonic()
        with pytest.raises(errors.PolicyUnavailable):
            await check(step, ctx_for(registry))
        assert time.monotonic() - started < 1.5


async def test_a_service_error_fails_open_when_asked(registry: services.Services) -> None:
    async with RlsServer(fail=grpc.StatusCode.INTERNAL) as server:
        await check(policy(server.port, [("route", '"r"')], fail_open=True), ctx_for(registry))
        with pytest.raises(errors.PolicyUnavailable):
            await check(policy(server.port, [("route", '"r"')]), ctx_for(registry))
    assert len(server.requests) == 2


async def test_the_client_reconnects_when_the_service_comes_back(registry: services.Services) -> None:
    port = free_port()
    step = policy(port, [("route", '"r"')], fail_open=True)
    await check(step, ctx_for(registry))  # nothing listening: passes open
    server = RlsServer()
    await server.start(port)
    try:
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            await check(step, ctx_for(registry))
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    assert server.requests


async def test_one_client_per_address_is_shared_and_closed_with_the_registry() -> None:
    registry = services.Services({rls.KIND: rls.factory})
    async with RlsServer() as server:
        step = policy(server.port, [("route", '"r"')])
        await check(step, ctx_for(registry))
        await check(step, ctx_for(registry))
        client: Any = registry.client(rls.KIND, ("127.0.0.1", server.port, False))
        assert client._channel is not None
        await registry.close()
    assert client._channel is None
    assert len(server.requests) == 2


def test_the_factory_takes_host_port_and_tls() -> None:
    assert rls.factory(("::1", 8081, False)).target == "[::1]:8081"
    assert rls.factory(("rls.example", 443, True)).tls
    with pytest.raises(ValueError):
        rls.factory("rls.example:8081")
