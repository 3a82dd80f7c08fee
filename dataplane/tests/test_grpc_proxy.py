"""gRPC through the gateway: a real grpcio client, a real agentgw-proxy process, a real grpcio server.

One gateway (started once for the module) serves:

- port `plain` (prior-knowledge h2c): `/test.Echo/*` to the grpcio server over h2c
  (`http.version: "2"`), `/test.Down/*` to a port nobody listens on, nothing else (404);
- port `tls` (HTTPS, ALPN h2): `/test.Echo/*` to a grpcio server speaking TLS (ALPN h2 upstream).

The client is `grpc.aio` with bytes in and out (generic calls, no generated stubs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from dataplane.tests import certs, grpc_echo, harness

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    echo: grpc_echo.EchoServer
    plain: int
    tls: int
    ca: certs.CA


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = Path(tmp_path_factory.mktemp("grpc"))
    ca = certs.CA(tmp / "ca")
    gw_leaf = ca.issue("gw", dns=["gw.example.com"])
    upstream_leaf = ca.issue("upstream", dns=["upstream.internal"])
    echo = await grpc_echo.EchoServer.start()
    tls_echo = await grpc_echo.EchoServer.start(tls=upstream_leaf)
    aging = await grpc_echo.EchoServer.start(
        options=[("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 5000)]
    )
    plain, tls_port, nobody = harness.free_port(), harness.free_port(), harness.free_port()
    config = f"""\
binds:
- port: {plain}
  listeners:
  - name: grpc
    routes:
    - name: aging
      matches:
      - path: {{pathPrefix: /test.Echo/}}
        headers: [{{name: x-backend, value: {{exact: aging}}}}]
      backends:
      - host: {aging.address}
        policies: {{http: {{version: "2"}}}}
    - name: echo
      matches: [{{path: {{pathPrefix: /test.Echo/}}}}]
      backends: [{{backend: echo}}]
    - name: weightless
      matches: [{{path: {{pathPrefix: /test.Weightless/}}}}]
      backends:
      - host: {echo.address}
        weight: 0
    - name: down
      matches: [{{path: {{pathPrefix: /test.Down/}}}}]
      backends:
      - host: 127.0.0.1:{nobody}
        policies: {{http: {{version: "HTTP/2"}}}}
- port: {tls_port}
  listeners:
  - name: secure
    protocol: HTTPS
    tls: {{cert: {gw_leaf.cert_file}, key: {gw_leaf.key_file}}}
    routes:
    - name: tls-echo
      backends:
      - host: {tls_echo.address}
        policies:
          http: {{version: "2"}}
          backendTLS: {{root: {ca.cert_file}, hostname: upstream.internal}}
backends:
- name: echo
  host: {echo.address}
  policies: {{http: {{version: "2"}}}}
"""
    gw = harness.GatewayProcess(tmp, config).start()
    try:
        yield Env(gw, echo, plain, tls_port, ca)
    finally:
        gw.stop()
        await echo.stop()
        await tls_echo.stop()
        await aging.stop()


def channel(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=grpc_echo.OPTIONS)


def method(name: str, service: str = grpc_echo.SERVICE) -> str:
    return f"/{service}/{name}"


def access_log(env: Env) -> list[dict[str, object]]:
    return [json.loads(line) for line in env.gw.access_log.read_text().splitlines() if line.strip()]


async def wait_for_log(env: Env, path: str, timeout: float = 3.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            for entry in reversed(access_log(env)):
                if entry["path"] == path:
                    return entry
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Calls of every shape


async def test_a_unary_call_carries_metadata_both_ways_and_trailing_metadata(env: Env) -> None:
    async with channel(env.plain) as ch:
        call = ch.unary_unary(method("Unary"))(b"hello", metadata=(("x-req", "abc"),), timeout=10)
        assert await call == b"echo:hello"
        assert ("x-init", "1") in tuple(await call.initial_metadata())
        assert ("x-trail", "abc") in tuple(await call.trailing_metadata())
        assert await call.code() == grpc.StatusCode.OK
    entry = await wait_for_log(env, method("Unary"))
    assert (entry["version"], entry["grpc_status"], entry["status"]) == ("2", "0", 200)


async def test_server_streaming_delivers_every_message_in_order(env: Env) -> None:
    async with channel(env.plain) as ch:
        call = ch.unary_stream(method("ServerStream"))(b"2000", timeout=20)
        got = [message async for message in call]
    assert got == [b"%d" % i for i in range(2000)]


async def test_client_streaming_delivers_every_message(env: Env) -> None:
    async def messages() -> AsyncIterator[bytes]:
        for i in range(500):
            yield b"x" * (i % 50)

    async with channel(env.plain) as ch:
        reply = await ch.stream_unary(method("ClientStream"))(messages(), timeout=20)
    assert reply == b"500/%d" % sum(i % 50 for i in range(500))


async def test_a_bidirectional_call_answers_each_message_before_the_client_finishes(env: Env) -> None:
    async with channel(env.plain) as ch:
        call = ch.stream_stream(method("Bidi"))(timeout=20)
        for word in (b"one", b"two", b"three"):
            await call.write(word)
            assert await call.read() == word.upper()  # an answer while the request is still open
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_a_server_error_status_and_message_reach_the_client_unchanged(env: Env) -> None:
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("Unary"))(b"fail:no such thing \xc3\xa9 %", timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no such thing \u00e9 %"


async def test_a_trailers_only_answer_from_the_backend_reaches_the_client(env: Env) -> None:
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("NoSuchMethod"))(b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # the backend's, not the gateway's
    assert "route_not_found" not in (info.value.details() or "")
    entry = await wait_for_log(env, method("NoSuchMethod"))
    assert (entry["route"], entry["grpc_status"]) == ("echo", "12")


async def test_a_large_message_goes_both_ways(env: Env) -> None:
    payload = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    async with channel(env.plain) as ch:
        reply = await ch.unary_unary(method("Unary"))(payload, timeout=30)
    assert reply == b"echo:" + payload


async def test_fifty_concurrent_calls_share_one_channel(env: Env) -> None:
    async with channel(env.plain) as ch:
        call = ch.unary_unary(method("Unary"))
        replies = await asyncio.gather(*(call(b"%d" % i, timeout=20) for i in range(50)))
    assert replies == [b"echo:%d" % i for i in range(50)]


async def test_calls_keep_working_when_the_backend_retires_connections_with_goaway(env: Env) -> None:
    # The backend sends GOAWAY on every connection older than 300 ms (and lets open calls finish).
    async with channel(env.plain) as ch:
        call = ch.unary_unary(method("Unary"))
        spanning = await call(b"sleep:1", metadata=(("x-backend", "aging"),), timeout=10)
        assert spanning == b"echo:sleep:1"  # in flight when its connection was told to go away
        for i in range(12):
            reply = await call(b"%d" % i, metadata=(("x-backend", "aging"),), timeout=10)
            assert reply == b"echo:%d" % i
            await asyncio.sleep(0.1)


# --------------------------------------------------------------------------------------------
# The gateway's own answers are gRPC statuses


async def test_a_call_no_route_matches_is_unimplemented(env: Env) -> None:
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("Nothing", service="test.Missing"))(b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "route_not_found" in (info.value.details() or "")
    entry = await wait_for_log(env, method("Nothing", service="test.Missing"))
    assert (entry["status"], entry["grpc_status"]) == (200, "12")


async def test_a_backend_that_is_down_is_unavailable(env: Env) -> None:
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("Unary", service="test.Down"))(b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "upstream_connect_error" in (info.value.details() or "")


async def test_a_route_without_a_usable_backend_is_unavailable(env: Env) -> None:
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("Unary", service="test.Weightless"))(b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no_backend" in (info.value.details() or "")


async def test_a_deadline_shorter_than_the_handler_is_exceeded_and_the_upstream_call_is_cancelled(
    env: Env,
) -> None:
    env.echo.cancelled.clear()
    async with channel(env.plain) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method("Unary"))(b"sleep:10", timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    async with asyncio.timeout(5):
        await env.echo.cancelled.wait()  # the gateway reset the upstream stream


# --------------------------------------------------------------------------------------------
# TLS, and HTTP/1.1 clients


async def test_grpc_over_tls_negotiates_h2_on_both_sides(env: Env) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=env.ca.cert_file.read_bytes())
    options = [("grpc.ssl_target_name_override", "gw.example.com")]
    async with grpc.aio.secure_channel(f"127.0.0.1:{env.tls}", creds, options=options) as ch:
        call = ch.unary_unary(method("Unary"))(b"secure", metadata=(("x-req", "t"),), timeout=10)
        assert await call == b"echo:secure"
        assert ("x-trail", "t") in tuple(await call.trailing_metadata())


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


async def http1_grpc_call(port: int, te_trailers: bool) -> bytes:
    body = grpc_frame(b"from http/1.1")
    te = b"te: trailers\r\n" if te_trailers else b""
    request = (
        b"POST /test.Echo/Unary HTTP/1.1\r\nhost: gw\r\ncontent-type: application/grpc\r\n"
        + te
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )
    return await harness.raw_request(port, request)


async def test_an_http1_client_reaches_an_http2_backend_and_gets_trailers_when_it_asks(env: Env) -> None:
    raw = await http1_grpc_call(env.plain, te_trailers=True)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert b"transfer-encoding: chunked" in head.lower()
    assert grpc_frame(b"echo:from http/1.1") in rest
    assert rest.endswith(b"\r\n\r\n") and b"\r\n0\r\n" in rest
    trailer_block = rest[rest.rindex(b"\r\n0\r\n") + 5 :]
    assert b"grpc-status: 0" in trailer_block
    assert b"x-trail" in trailer_block


async def test_an_http1_client_that_did_not_ask_for_trailers_gets_none(env: Env) -> None:
    raw = await http1_grpc_call(env.plain, te_trailers=False)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert grpc_frame(b"echo:from http/1.1") in rest
    assert b"grpc-status" not in rest
