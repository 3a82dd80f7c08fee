"""Hostile and odd downstream input against a real gateway process.

Every hostile input must get a 4xx or a closed connection, must never reach the upstream as a
second (smuggled) request, and must leave the gateway serving everybody else: after each one a
normal request through the gateway has to succeed. One gateway and one upstream serve the whole
module (starting a process per test would cost most of the time budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from dataplane.tests import harness

pytestmark = pytest.mark.asyncio(loop_scope="module")

IDLE_TIMEOUT = 2.0
HEADER_READ_TIMEOUT = 10.0  # settings.Limits.header_read_timeout (not configurable from the file)


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    upstream: harness.Upstream
    seen: list[str]
    """path?query of every request the upstream received, in order."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        return await harness.echo(request)

    async with harness.Upstream("protected", handler) as up:
        port = harness.free_port()
        config = harness.simple_config(port, up.address) + (
            f"frontendPolicies:\n  http:\n    http1IdleTimeout: {IDLE_TIMEOUT:g}s\n"
        )
        gw = harness.GatewayProcess(Path(tmp_path_factory.mktemp("protection")), config).start()
        try:
            yield Env(gw, port, up, seen)
        finally:
            gw.stop()


# --------------------------------------------------------------------------------------------
# helpers


async def send_raw(port: int, data: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Send `data` on a fresh connection; read until the gateway closes or `timeout` passes.

    Returns (everything read, whether the gateway closed the connection).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks: list[bytes] = []
    closed = False
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        chunk = await reader.read(65536)
                    except ConnectionError:
                        chunk = b""
                    if not chunk:
                        closed = True
                        break
                    chunks.append(chunk)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return b"".join(chunks), closed


def assert_rejected(response: bytes, closed: bool, status: int | None = None) -> None:
    """A hostile request is answered with one 4xx (or nothing) and the connection is closed."""
    assert closed, f"the gateway left the connection open after {response[:200]!r}"
    if not response:
        return
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert len(statuses) == 1, f"expected one response, got {response[:400]!r}"
    code = int(statuses[0])
    assert 400 <= code < 500, response[:400]
    assert b"aiohttp" not in response, f"the upstream, not the gateway, refused it: {response[:400]!r}"
    if status is not None:
        assert code == status, response[:400]


async def assert_still_serving(env: Env, timeout: float = 3.0) -> None:
    """A normal request from another client succeeds promptly."""
    assert env.gw.proc is not None and env.gw.proc.poll() is None, env.gw.stderr()
    marker = f"/healthy?n={time.monotonic_ns()}"
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
        try:
            writer.write(f"GET {marker} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".encode())
            status, _, body = await harness.read_response(reader)
        finally:
            writer.close()
    assert status == 200, body
    assert marker in env.seen


async def hostile(env: Env, data: bytes, status: int | None = None) -> bytes:
    before = len(env.seen)
    # Read for less than the idle timeout: the close must come from the rejection.
    response, closed = await send_raw(env.port, data, timeout=IDLE_TIMEOUT * 0.75)
    assert_rejected(response, closed, status)
    assert not any("smuggled" in p for p in env.seen[before:]), env.seen[before:]
    await assert_still_serving(env)
    return response


# --------------------------------------------------------------------------------------------
# request smuggling


async def test_content_length_together_with_transfer_encoding_is_rejected(env: Env) -> None:
    for te in (b"chunked", b"identity, chunked"):
        await hostile(
            env,
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        )
        await hostile(
            env,
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + b"\r\nContent-Length: 40\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        )


async def test_two_different_content_lengths_are_rejected(env: Env) -> None:
    await hostile(
        env,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 39\r\n\r\n"
        b"abcdGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )
    await hostile(
        env,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 39\r\n\r\n"
        b"abcdGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )


@pytest.mark.parametrize(
    "encoding",
    [b"chunked, identity", b"gzip", b"identity", b"chunked, gzip", b"chunked, chunked"],
    ids=["chunked-identity", "gzip", "identity", "chunked-gzip", "chunked-twice"],
)
async def test_transfer_encoding_whose_last_coding_is_not_chunked_is_rejected(
    env: Env, encoding: bytes
) -> None:
    await hostile(
        env,
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + encoding + b"\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )


@pytest.mark.parametrize(
    "header",
    [
        b"Transfer-Encoding : chunked",
        b"Transfer-Encoding: xchunked",
        b"Transfer-Encoding: chunkedx",
        b"Transfer-Encoding:\x0bchunked",
        b" Transfer-Encoding: chunked",
        b"Transfer-Encoding\r\n : chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        b"Transfer_Encoding: chunked\r\nContent-Length: 3",
    ],
    ids=[
        "space-before-colon",
        "xchunked",
        "chunkedx",
        "vtab",
        "leading-space",
        "folded",
        "two-headers",
        "underscore",
    ],
)
async def test_obfuscated_transfer_encoding_is_rejected_or_ignored_safely(env: Env, header: bytes) -> None:
    """Either a 400, or the obfuscated header is not taken as chunked: nothing is smuggled."""
    before = len(env.seen)
    response, closed = await send_raw(
        env.port,
        b"POST /a HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        timeout=IDLE_TIMEOUT * 0.75,
    )
    assert not any("smuggled" in p for p in env.seen[before:]), env.seen[before:]
    if header.startswith(b"Transfer_Encoding"):
        # Not a framing header at all: a 3-byte body, then the rest is garbage: the gateway
        # may answer the first request, but must refuse the garbage and close.
        assert closed
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", response)[-1:] == [b"400"], response[:300]
    else:
        assert_rejected(response, closed, 400)
    await assert_still_serving(env)


@pytest.mark.parametrize(
    "chunk",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcdef\r\n0\r\n\r\n",
        b"3\nabc\n0\n\n",
        b"3 \r\nabc\r\n0\r\n\r\n",
    ],
    ids=["letters", "negative", "hex-prefix", "overflow", "size-too-small", "bare-lf", "trailing-space"],
)
async def test_malformed_chunk_sizes_are_rejected(env: Env, chunk: bytes) -> None:
    await hostile(
        env,
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk
        + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"GET example.com/x HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=[
        "garbage",
        "no-target",
        "extra-token",
        "space-in-target",
        "nul-in-target",
        "tls-hello",
        "space-in-name",
        "no-colon",
        "asterisk",
        "connect",
        "relative-no-slash",
    ],
)
async def test_garbage_request_lines_and_headers_get_400_and_close(env: Env, data: bytes) -> None:
    await hostile(env, data)


# --------------------------------------------------------------------------------------------
# header limits


async def test_header_block_over_64_kib_gets_431(env: Env) -> None:
    for size in (65 * 1024, 70 * 1024, 1024 * 1024):
        await hostile(env, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n", 431)
    # Many medium headers adding up to more than 64 KiB.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(70))
    await hostile(env, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)


async def test_header_block_just_under_64_kib_is_accepted(env: Env) -> None:
    # Lines of at most 8 KiB: the aiohttp upstream refuses longer ones.
    lines = b"".join(b"X-Big%d: %s\r\n" % (i, b"c" * 8100) for i in range(8))
    head = b"GET /big-head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + lines + b"\r\n"
    assert 63 * 1024 < len(head) < 64 * 1024
    response, _ = await send_raw(env.port, head)
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]


async def test_more_than_100_headers_get_431(env: Env) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    await hostile(env, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)
    # Exactly 100 (Host included) is fine.
    ok = b"".join(b"X-H%d: v\r\n" % i for i in range(98))
    response, _ = await send_raw(
        env.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + ok + b"\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]


async def test_a_large_body_sent_with_its_head_in_one_write_is_not_taken_for_a_large_head(env: Env) -> None:
    # Whether the gateway's first read holds more than 64 KiB depends on timing: try a few.
    body = b"d" * (2 * 1024 * 1024)
    for _ in range(4):
        response, _ = await send_raw(
            env.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body,
            timeout=5.0,
        )
        assert response.startswith(b"HTTP/1.1 200 "), response[:300]
        assert b'"body_len": %d' % len(body) in response


async def test_an_endless_header_on_a_pipelined_request_is_cut_off(env: Env) -> None:
    """The head limit holds for the second request of a connection too, not only the first.

    Socket buffers on loopback can absorb many MiB, so the proof is that the gateway closes
    the connection (431 or reset) and its memory does not grow with what was sent.
    """
    assert env.gw.proc is not None
    baseline = rss(env.gw.proc.pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    response = b""
    closed = False
    try:
        writer.write(
            b"GET /first HTTP/1.1\r\nHost: x\r\nx-echo-delay-ms: 3000\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: x\r\nX-Endless: "
        )
        sent = 0
        filler = b"e" * 65536
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(2.5):  # while /first is still being answered
                while sent < 32 * 1024 * 1024:
                    writer.write(filler)
                    await writer.drain()
                    sent += len(filler)
        grown = rss(env.gw.proc.pid) - baseline
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                try:
                    while chunk := await reader.read(65536):
                        response += chunk
                except ConnectionError:
                    pass
                closed = True
    finally:
        writer.close()
    assert closed, f"the gateway kept reading a header after {sent} bytes"
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", response)
    assert b"431" in statuses or not statuses or statuses == [b"200"], response[:300]
    assert grown < 16 * 1024 * 1024, f"gateway RSS grew {grown / 1024 / 1024:.1f} MB"
    await assert_still_serving(env)


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --------------------------------------------------------------------------------------------
# timeouts


async def test_stalled_heads_are_cut_after_the_header_timeout_while_other_clients_are_served(
    env: Env,
) -> None:
    """200 slowloris connections plus one trickling a byte every 250 ms: all are cut at ~10 s
    with a 408 (or a close), and a normal client is served promptly the whole time."""
    stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        started = time.monotonic()
        for i in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
            writer.write(b"GET /stall%d HTTP/1.1\r\nHost: x\r\nX-Slow: " % i)
            stalled.append((reader, writer))
        trick_reader, trick_writer = await asyncio.open_connection("127.0.0.1", env.port)

        async def trickle() -> None:
            data = b"GET /trickle HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 200
            for byte in data:
                trick_writer.write(bytes([byte]))
                await trick_writer.drain()
                await asyncio.sleep(0.25)

        trickler = asyncio.create_task(trickle())

        async def read_all(reader: asyncio.StreamReader) -> tuple[bytes, float]:
            try:
                data = await reader.read()
            except ConnectionError:
                data = b""
            return data, time.monotonic() - started

        readers = [asyncio.create_task(read_all(r)) for r, _ in stalled]
        trick_read = asyncio.create_task(read_all(trick_reader))

        # While they stall, normal clients get answers quickly.
        for _ in range(10):
            t0 = time.monotonic()
            await assert_still_serving(env)
            assert time.monotonic() - t0 < 1.0
            await asyncio.sleep(0.3)
        assert not any(t.done() for t in readers), "a stalled head was cut long before the header timeout"

        async with asyncio.timeout(HEADER_READ_TIMEOUT + 5):
            results = await asyncio.gather(*readers, trick_read)
        trickler.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await trickler
        for data, elapsed in results:
            assert HEADER_READ_TIMEOUT - 1 <= elapsed <= HEADER_READ_TIMEOUT + 4, elapsed
            assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert not any(p.startswith(("/stall", "/trickle")) for p in env.seen)
        await assert_still_serving(env)
    finally:
        for _, writer in stalled:
            writer.close()
        with contextlib.suppress(NameError):
            trick_writer.close()


async def test_idle_keep_alive_connections_are_closed_after_http1_idle_timeout(env: Env) -> None:
    async def open_used() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
        writer.write(b"GET /keepalive HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await harness.read_response(reader)
        assert status == 200
        assert headers.get("connection") == "keep-alive"
        return reader, writer

    used = await open_used()
    fresh = await asyncio.open_connection("127.0.0.1", env.port)  # never sends a byte
    started = time.monotonic()

    # Still usable before the timeout.
    second = await open_used()
    await asyncio.sleep(IDLE_TIMEOUT / 2)
    second[1].write(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = await harness.read_response(second[0])
    assert status == 200

    async def eof_after(reader: asyncio.StreamReader) -> float:
        with contextlib.suppress(ConnectionError):
            assert await reader.read() == b""
        return time.monotonic() - started

    async with asyncio.timeout(IDLE_TIMEOUT + 4):
        times = await asyncio.gather(eof_after(used[0]), eof_after(fresh[0]), eof_after(second[0]))
    for (_, writer), elapsed in zip((used, fresh, second), times, strict=True):
        writer.close()
        assert IDLE_TIMEOUT - 0.2 <= elapsed <= IDLE_TIMEOUT + 3.5, times
    await assert_still_serving(env)


# --------------------------------------------------------------------------------------------
# legitimate but unusual requests


async def test_absolute_form_target_is_forwarded_as_origin_form(env: Env) -> None:
    response, _ = await send_raw(
        env.port,
        b"GET http://example.com/abs/path?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert b'"path": "/abs/path"' in response
    assert b'"query": "q=1"' in response
    assert b'"host": "example.com"' in response


async def test_absolute_form_authority_overrides_the_host_header(env: Env) -> None:
    """RFC 9112 3.2.2: with an absolute-form target the Host header is replaced by its authority."""
    response, _ = await send_raw(
        env.port,
        b"GET http://target.example:8080/abs HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert b'"host": "target.example:8080"' in response, response


async def test_two_host_headers_are_rejected(env: Env) -> None:
    await hostile(env, b"GET /a HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400)


async def test_http_1_0_request_without_host_is_served_and_closed(env: Env) -> None:
    response, closed = await send_raw(env.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert closed
    assert re.match(rb"HTTP/1\.[01] 200 ", response), response[:300]
    assert b'"path": "/old"' in response
    assert re.search(rb"(?i)\r\nconnection: close\r\n", response)
    # The upstream still got a Host header (HTTP/1.1 requires one).
    assert re.search(rb'"host": "127\.0\.0\.1:\d+"', response), response


async def test_pipelined_requests_are_answered_in_order_on_one_connection(env: Env) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        # The first request is the slowest: answers must still come back in request order.
        delays = [300, 0, 150, 0, 50, 0, 0, 0]
        writer.write(
            b"".join(
                b"GET /pipe%d HTTP/1.1\r\nHost: x\r\nx-echo-delay-ms: %d\r\n\r\n" % (i, d)
                for i, d in enumerate(delays)
            )
            + b"POST /pipe-post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            + b"GET /pipe-last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        paths = []
        async with asyncio.timeout(10):
            for _ in range(len(delays) + 2):
                status, _, body = await harness.read_response(reader)
                assert status == 200
                paths.append(re.search(rb'"path": "([^"]+)"', body).group(1).decode())  # type: ignore[union-attr]
                if paths[-1] == "/pipe-post":
                    assert b'"body_len": 5' in body
            assert await reader.read() == b""
    finally:
        writer.close()
    assert paths == [f"/pipe{i}" for i in range(len(delays))] + ["/pipe-post", "/pipe-last"]


async def test_expect_100_continue_gets_an_interim_response_before_the_body(env: Env) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        writer.write(
            b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        async with asyncio.timeout(3):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello world")
        async with asyncio.timeout(3):
            status, _, body = await harness.read_response(reader)
    finally:
        writer.close()
    assert status == 200
    assert b'"body_len": 11' in body
    assert b'"expect"' not in body  # hop-by-hop: not forwarded to the upstream


async def test_expect_100_continue_client_that_sends_the_body_anyway_is_served(env: Env) -> None:
    response, _ = await send_raw(
        env.port,
        b"POST /expect2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\nabc",
    )
    final = response.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]
    assert final.startswith(b"HTTP/1.1 200 "), response[:300]
    assert b'"body_len": 3' in final
