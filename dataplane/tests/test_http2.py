"""HTTP/2 clients on a real agentgw-proxy process: h2c prior knowledge on a plain port.

A raw h2 client (`h2_client`) talks to the gateway, which forwards to an HTTP/1.1 upstream
(aiohttp echo). Covered: requests and bodies both ways through the stream windows, a deadline
from `grpc-timeout`, header limits, a stream reset by the client, malformed frames, a bad
preface and a PING flood (each cut off while another client keeps being served), and SIGTERM
(GOAWAY, the in-flight stream finishes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import h2.errors
import hyperframe.frame
import pytest
import pytest_asyncio

from dataplane.server import http2
from dataplane.tests import h2_client, harness

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    upstream: harness.Upstream


def config(port: int, upstream: str) -> str:
    return harness.simple_config(port, upstream)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = Path(tmp_path_factory.mktemp("h2"))
    port = harness.free_port()
    async with harness.Upstream("h1-echo") as up:
        gw = harness.GatewayProcess(tmp, config(port, up.address)).start()
        try:
            yield Env(gw, port, up)
        finally:
            gw.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def client(env: Env) -> AsyncIterator[h2_client.H2Client]:
    c = await h2_client.H2Client.open(env.port)
    try:
        yield c
    finally:
        await c.close()


async def still_serving(env: Env) -> None:
    """Another client gets an answer (the process survived whatever the test did)."""
    other = await h2_client.H2Client.open(env.port)
    try:
        reply = await other.response(other.request("GET", "/still-there"))
        assert reply.status == 200
    finally:
        await other.close()


# --------------------------------------------------------------------------------------------
# Requests


async def test_an_h2c_client_is_proxied_to_an_http1_upstream(client: h2_client.H2Client) -> None:
    reply = await client.response(
        client.request("GET", "/hello?x=1", [("x-test", "yes")], authority="h2.test")
    )
    assert reply.status == 200
    seen = json.loads(reply.body)
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/hello", "x=1")
    assert seen["host"] == "h2.test"
    assert seen["headers"]["x-test"] == "yes"
    assert seen["headers"]["x-forwarded-proto"] == "http"


async def test_many_streams_on_one_connection_are_answered_concurrently(client: h2_client.H2Client) -> None:
    sids = [client.request("GET", f"/n/{i}", [("x-echo-delay-ms", "200")]) for i in range(20)]
    started = time.monotonic()
    replies = [await client.response(sid) for sid in sids]
    assert [json.loads(r.body)["path"] for r in replies] == [f"/n/{i}" for i in range(20)]
    assert time.monotonic() - started < 2.0  # not one after the other (20 x 200 ms)


async def test_a_request_body_bigger_than_the_stream_window_reaches_the_upstream(
    client: h2_client.H2Client,
) -> None:
    body = b"a" * (3 * 1024 * 1024)
    sid = client.request("POST", "/upload", [("content-type", "application/octet-stream")], end=False)
    await client.stream_body(sid, body)
    reply = await client.response(sid, timeout=20)
    assert reply.status == 200
    assert json.loads(reply.body)["body_len"] == len(body)


async def test_a_stream_over_the_concurrency_limit_is_refused_and_the_others_carry_on(
    client: h2_client.H2Client,
) -> None:
    await asyncio.sleep(0.1)  # the gateway's SETTINGS (and our ACK) are through
    client.conn.remote_settings.max_concurrent_streams = 1000  # this client ignores the limit
    client.conn.remote_settings.acknowledge()
    sids = [client.request("POST", f"/open/{i}", end=False) for i in range(http2.MAX_CONCURRENT_STREAMS + 1)]
    refused = await client.response(sids[-1])
    assert refused.reset == h2.errors.ErrorCodes.REFUSED_STREAM
    for sid in sids[:-1]:
        client.conn.end_stream(sid)
    client.flush()
    replies = [await client.response(sid) for sid in sids[:-1]]
    assert all(r.status == 200 for r in replies)


async def test_more_headers_than_the_limit_get_431(client: h2_client.H2Client) -> None:
    reply = await client.response(client.request("GET", "/", [(f"x-h{i}", "v") for i in range(120)]))
    assert reply.status == 431


async def test_a_grpc_timeout_the_backend_misses_ends_as_deadline_exceeded(
    client: h2_client.H2Client,
) -> None:
    started = time.monotonic()
    headers = [("content-type", "application/grpc"), ("grpc-timeout", "300m"), ("x-echo-delay-ms", "5000")]
    reply = await client.response(client.request("POST", "/slow.Service/Call", headers, body=b"\0\0\0\0\0"))
    assert time.monotonic() - started < 3.0
    assert reply.status == 200
    assert reply.headers["grpc-status"] == "4"  # DEADLINE_EXCEEDED, trailers-only
    assert "deadline" in reply.headers["grpc-message"]
    assert reply.body == b""


async def test_a_stream_the_client_resets_leaves_the_connection_serving(client: h2_client.H2Client) -> None:
    slow = client.request("GET", "/slow", [("x-echo-delay-ms", "3000")])
    await asyncio.sleep(0.2)
    client.conn.reset_stream(slow, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    reply = await client.response(client.request("GET", "/after-reset"))
    assert reply.status == 200


async def test_an_http1_client_on_the_same_port_still_gets_http1(env: Env) -> None:
    raw = await harness.raw_request(env.port, b"GET /h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")


# --------------------------------------------------------------------------------------------
# Hostile clients


async def test_a_malformed_frame_gets_goaway_while_others_are_served(
    env: Env, client: h2_client.H2Client
) -> None:
    # A SETTINGS frame on a stream (RFC 9113 6.5: a connection error of type PROTOCOL_ERROR).
    client.send_raw(b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")
    assert await client.closed()
    assert client.goaway == h2.errors.ErrorCodes.PROTOCOL_ERROR
    await still_serving(env)


async def test_a_bad_preface_is_not_taken_for_http2_and_the_connection_ends(env: Env) -> None:
    raw = await harness.raw_request(env.port, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", read_timeout=3)
    assert not raw.startswith(b"\x00")  # no SETTINGS frame: it was never taken for HTTP/2
    assert raw == b"" or raw.startswith(b"HTTP/1.1 400")
    await still_serving(env)


async def test_a_partial_preface_waits_for_the_rest(env: Env) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        writer.write(http2.PREFACE[:10])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(http2.PREFACE[10:] + hyperframe.frame.SettingsFrame(0).serialize())
        await writer.drain()
        async with asyncio.timeout(3):
            head = await reader.readexactly(9)
        assert head[3] == 0x4  # the gateway's SETTINGS: it speaks HTTP/2
    finally:
        writer.close()


async def test_a_ping_flood_is_cut_off(env: Env, client: h2_client.H2Client) -> None:
    ping = hyperframe.frame.PingFrame(0)
    ping.opaque_data = b"12345678"
    client.send_raw(ping.serialize() * 5000)
    assert await client.closed()
    assert client.goaway == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    await still_serving(env)


# --------------------------------------------------------------------------------------------
# Drain


async def test_sigterm_sends_goaway_and_the_in_flight_stream_finishes(env: Env, tmp_path: Path) -> None:
    port = harness.free_port()
    gw = harness.GatewayProcess(tmp_path, config(port, env.upstream.address)).start()
    try:
        c = await h2_client.H2Client.open(port)
        try:
            sid = c.request("GET", "/in-flight", [("x-echo-delay-ms", "1000")])
            await asyncio.sleep(0.3)
            gw.terminate()
            reply = await c.response(sid, timeout=10)
            assert reply.status == 200
            assert json.loads(reply.body)["path"] == "/in-flight"
            assert c.goaway == h2.errors.ErrorCodes.NO_ERROR
            assert c.goaway_last_stream == sid
            assert await c.closed()
        finally:
            await c.close()
    finally:
        gw.stop()
