"""Route policies end to end: a real gateway process between a real client and real upstreams."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest
from aiohttp import web

from dataplane.tests import harness


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


async def _get(url: str, **kwargs: object) -> tuple[int, dict[str, str], bytes]:
    async with harness.client() as c, c.get(url, allow_redirects=False, **kwargs) as r:  # type: ignore[arg-type]
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def test_request_timeout_answers_504_when_the_upstream_is_slow(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        policies = "        timeout: {requestTimeout: 300ms}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            status, _, body = await _get(gw.url(port, "/"), headers={"x-echo-delay-ms": "2000"})
            assert status == 504
            assert b"upstream_request_timeout" in body
            status, _, _ = await _get(gw.url(port, "/"), headers={"x-echo-delay-ms": "10"})
            assert status == 200
        finally:
            gw.stop()


async def test_backend_request_timeout_applies_per_attempt_and_retries(tmp: Path) -> None:
    calls = collections.Counter[str]()

    async def slow_then_fast(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(2)
        return web.Response(text=f"attempt {calls['n']}")

    async with harness.Upstream(handler=slow_then_fast) as up:
        port = harness.free_port()
        policies = (
            "        timeout: {backendRequestTimeout: 300ms}\n        retry: {attempts: 2, codes: [503]}\n"
        )
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            status, _, body = await _get(gw.url(port, "/"))
            assert status == 200
            assert body == b"attempt 2"
        finally:
            gw.stop()


async def test_retry_repeats_on_listed_codes_and_gives_up_after_attempts(tmp: Path) -> None:
    calls = collections.Counter[str]()

    async def flaky(request: web.Request) -> web.Response:
        calls[request.path] += 1
        if request.path == "/recovers" and calls[request.path] < 3:
            return web.Response(status=503, text="busy")
        if request.path == "/never":
            return web.Response(status=503, text="busy")
        return web.Response(text=f"ok after {calls[request.path]}")

    async with harness.Upstream(handler=flaky) as up:
        port = harness.free_port()
        policies = "        retry: {attempts: 3, codes: [503], backoff: 10ms}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            status, _, body = await _get(gw.url(port, "/recovers"))
            assert (status, body) == (200, b"ok after 3")
            status, _, _ = await _get(gw.url(port, "/never"))
            assert status == 503
            assert calls["/never"] == 3
        finally:
            gw.stop()


async def test_retry_replays_the_request_body(tmp: Path) -> None:
    seen: list[bytes] = []

    async def first_fails(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(status=503 if len(seen) == 1 else 200, text="x")

    async with harness.Upstream(handler=first_fails) as up:
        port = harness.free_port()
        policies = "        retry: {attempts: 2, codes: [503]}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            async with harness.client() as c, c.post(gw.url(port, "/"), data=b"payload" * 1000) as r:
                assert r.status == 200
            assert seen == [b"payload" * 1000] * 2
        finally:
            gw.stop()


async def test_retry_moves_on_after_a_connection_error(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        dead = harness.free_port()
        config = (
            "binds:\n"
            f"- port: {port}\n"
            "  listeners:\n"
            "  - routes:\n"
            "    - policies:\n"
            "        retry: {attempts: 5, codes: [503]}\n"
            "      backends:\n"
            f"      - host: 127.0.0.1:{dead}\n"
            "        weight: 1\n"
            f"      - host: {up.address}\n"
            "        weight: 1\n"
        )
        gw = harness.GatewayProcess(tmp, config).start()
        try:
            for _ in range(10):
                status, _, _ = await _get(gw.url(port, "/"))
                assert status == 200
        finally:
            gw.stop()


async def test_mirror_sends_a_copy_and_the_client_sees_only_the_primary(tmp: Path) -> None:
    async with harness.Upstream("primary") as primary, harness.Upstream("mirror") as mirror:
        port = harness.free_port()
        policies = f"        requestMirror: {{backend: {{host: '{mirror.address}'}}, percentage: 1.0}}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, primary.address, policies)).start()
        try:
            for _ in range(5):
                status, _, body = await _get(gw.url(port, "/m"))
                assert status == 200
                assert b'"backend": "primary"' in body
            for _ in range(50):
                if mirror.requests == 5:
                    break
                await asyncio.sleep(0.05)
            assert mirror.requests == 5
        finally:
            gw.stop()


async def test_mirror_percentage_samples_requests(tmp: Path) -> None:
    async with harness.Upstream("primary") as primary, harness.Upstream("mirror") as mirror:
        port = harness.free_port()
        policies = f"        requestMirror: {{backend: {{host: '{mirror.address}'}}, percentage: 0.3}}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, primary.address, policies)).start()
        try:
            for _ in range(200):
                assert (await _get(gw.url(port, "/")))[0] == 200
            await asyncio.sleep(0.3)
            assert 25 <= mirror.requests <= 100
        finally:
            gw.stop()


async def test_a_failing_mirror_does_not_affect_the_client(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        dead = f"127.0.0.1:{harness.free_port()}"
        policies = f"        requestMirror: {{backend: {{host: '{dead}'}}, percentage: 1.0}}\n"
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            assert (await _get(gw.url(port, "/")))[0] == 200
        finally:
            gw.stop()


async def test_cors_preflight_is_answered_by_the_gateway(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        policies = (
            "        cors:\n"
            "          allowOrigins: ['https://app.example.com']\n"
            "          allowMethods: [GET, POST]\n"
            "          allowHeaders: [content-type]\n"
            "          exposeHeaders: [x-trace]\n"
            "          allowCredentials: true\n"
            "          maxAge: 10m\n"
        )
        gw = harness.GatewayProcess(tmp, harness.simple_config(port, up.address, policies)).start()
        try:
            async with (
                harness.client() as c,
                c.options(
                    gw.url(port, "/x"),
                    headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
                ) as r,
            ):
                assert r.status == 200
                assert r.headers["access-control-allow-origin"] == "https://app.example.com"
                assert r.headers["access-control-allow-methods"] == "GET, POST"
                assert r.headers["access-control-allow-headers"] == "content-type"
                assert r.headers["access-control-allow-credentials"] == "true"
                assert r.headers["access-control-max-age"] == "600"
            assert up.requests == 0
            _, headers, _ = await _get(gw.url(port, "/x"), headers={"Origin": "https://app.example.com"})
            assert headers["access-control-allow-origin"] == "https://app.example.com"
            assert headers["access-control-expose-headers"] == "x-trace"
            _, headers, _ = await _get(gw.url(port, "/x"), headers={"Origin": "https://evil.example.com"})
            assert "access-control-allow-origin" not in headers
        finally:
            gw.stop()


async def test_weighted_backends_split_traffic_by_weight(tmp: Path) -> None:
    async with harness.Upstream("a") as a, harness.Upstream("b") as b, harness.Upstream("c") as zero:
        port = harness.free_port()
        config = (
            "binds:\n"
            f"- port: {port}\n"
            "  listeners:\n"
            "  - routes:\n"
            "    - backends:\n"
            f"      - {{host: '{a.address}', weight: 80}}\n"
            f"      - {{host: '{b.address}', weight: 20}}\n"
            f"      - {{host: '{zero.address}', weight: 0}}\n"
        )
        gw = harness.GatewayProcess(tmp, config).start()
        try:
            async with harness.client() as c:
                for _ in range(400):
                    async with c.get(gw.url(port, "/")) as r:
                        assert r.status == 200
            assert zero.requests == 0
            assert 0.7 <= a.requests / 400 <= 0.9
        finally:
            gw.stop()


async def test_route_whose_backends_all_weigh_zero_answers_500(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        config = (
            f"binds:\n- port: {port}\n  listeners:\n  - routes:\n"
            f"    - backends: [{{host: '{up.address}', weight: 0}}]\n"
        )
        gw = harness.GatewayProcess(tmp, config).start()
        try:
            assert (await _get(gw.url(port, "/")))[0] == 500
        finally:
            gw.stop()


async def test_named_backend_policies_modify_headers_both_ways(tmp: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        config = (
            "backends:\n"
            f"- name: echo\n  host: {up.address}\n"
            "  policies:\n"
            "    requestHeaderModifier: {add: {x-from-backend: '1'}, remove: [x-drop]}\n"
            "    responseHeaderModifier: {set: {x-resp: backend}}\n"
            f"binds:\n- port: {port}\n  listeners:\n  - routes:\n"
            "    - policies:\n"
            "        requestHeaderModifier: {set: {x-from-route: '1'}}\n"
            "      backends: [{backend: echo}]\n"
        )
        gw = harness.GatewayProcess(tmp, config).start()
        try:
            status, headers, body = await _get(gw.url(port, "/"), headers={"x-drop": "1"})
            assert status == 200
            assert headers["x-resp"] == "backend"
            assert b'"x-from-backend": "1"' in body
            assert b'"x-from-route": "1"' in body
            assert b"x-drop" not in body
        finally:
            gw.stop()


async def test_listener_hostnames_select_between_listeners_on_one_port(tmp: Path) -> None:
    async with harness.Upstream("a") as a, harness.Upstream("b") as b, harness.Upstream("any") as anyhost:
        port = harness.free_port()
        config = (
            f"binds:\n- port: {port}\n  listeners:\n"
            f"  - hostname: a.example.com\n    routes: [{{backends: [{{host: '{a.address}'}}]}}]\n"
            f"  - hostname: '*.example.com'\n    routes: [{{backends: [{{host: '{b.address}'}}]}}]\n"
            f"  - routes: [{{backends: [{{host: '{anyhost.address}'}}]}}]\n"
        )
        gw = harness.GatewayProcess(tmp, config).start()
        try:
            for host, expect in [
                ("a.example.com", b'"a"'),
                ("x.example.com", b'"b"'),
                ("deep.x.example.com:8080", b'"b"'),
                ("example.com", b'"any"'),
            ]:
                _, _, body = await _get(gw.url(port, "/"), headers={"Host": host})
                assert expect in body, host
        finally:
            gw.stop()
