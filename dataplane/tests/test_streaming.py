"""Bodies stream through the gateway with bounded memory; upstream failures map to clean errors.

One gateway process serves the module, with routes to an aiohttp upstream (streaming bodies,
counting bytes, recording peers), a raw-socket upstream (HTTP/1.0 close-delimited answers,
truncated answers, resets) and a port where nothing listens. Memory is read from the gateway
process's /proc/<pid>/status while the bodies move.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from dataplane.tests import harness

pytestmark = pytest.mark.asyncio(loop_scope="module")

MB = 1024 * 1024
BIG = 50 * MB
CHUNK = b"s" * (64 * 1024)
RSS_GROWTH_LIMIT = 25 * MB


# --------------------------------------------------------------------------------------------
# upstreams


@dataclasses.dataclass
class Stats:
    uploads: list[int] = dataclasses.field(default_factory=list)
    upload_chunked: list[bool] = dataclasses.field(default_factory=list)
    written: dict[str, int] = dataclasses.field(default_factory=dict)
    peers: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    hang_released: dict[str, float] = dataclasses.field(default_factory=dict)


def make_handler(stats: Stats) -> harness.Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/upload":
            total = 0
            async for chunk in request.content.iter_chunked(64 * 1024):
                total += len(chunk)
            stats.uploads.append(total)
            stats.upload_chunked.append(request.headers.get("transfer-encoding", "").lower() == "chunked")
            return web.json_response({"received": total})
        if path == "/download":
            size = int(request.query["size"])
            key = request.query.get("key", "")
            resp = web.StreamResponse()
            resp.content_type = "application/octet-stream"
            if "chunked" not in request.query:
                resp.content_length = size
            await resp.prepare(request)
            sent = 0
            while sent < size:
                piece = CHUNK[: min(len(CHUNK), size - sent)]
                await resp.write(piece)  # waits while the socket to the gateway is full
                sent += len(piece)
                stats.written[key] = sent
            await resp.write_eof()
            return resp
        if path == "/hang":
            # Answer only after 5 s; note when the gateway gives up on this request.
            started = time.monotonic()
            while time.monotonic() - started < 5:
                if request.transport is None or request.transport.is_closing():
                    stats.hang_released[request.query["key"]] = time.monotonic() - started
                    break
                await asyncio.sleep(0.02)
            return web.Response(text="late")
        if path == "/peer":
            peer = request.transport.get_extra_info("peername") if request.transport else None
            stats.peers.append(tuple(peer[:2]) if peer else ("", 0))
            return web.Response(text="ok")
        if path == "/status":
            code = int(request.query["code"])
            headers = {"etag": '"v1"'} if code == 304 else {}
            return web.Response(status=code, headers=headers)
        if path == "/fixed":
            return web.Response(body=b"f" * 1000, content_type="text/plain")
        return await harness.echo(request)

    return handler


HTTP10_BODY = bytes(range(256)) * 4096  # 1 MiB, recognisable


class RawUpstream:
    """A socket-level upstream for answers aiohttp will not produce."""

    def __init__(self) -> None:
        self.port = harness.free_port()
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].split(b"?")[0]
            if path == b"/raw/http10":
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                for i in range(0, len(HTTP10_BODY), 65536):
                    writer.write(HTTP10_BODY[i : i + 65536])
                    await writer.drain()
            elif path == b"/raw/close-no-length":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + HTTP10_BODY[:100000])
                await writer.drain()
            elif path == b"/raw/truncate-length":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (10 * MB))
                writer.write(b"t" * MB)
                await writer.drain()
            elif path == b"/raw/truncate-chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(16):
                    writer.write(b"10000\r\n" + b"c" * 65536 + b"\r\n")
                await writer.drain()
            elif path == b"/raw/reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif path == b"/raw/close":
                pass  # close cleanly without answering
            elif path == b"/raw/garbage":
                writer.write(b"SPDY/99 nonsense\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    stats: Stats
    raw: RawUpstream

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    stats = Stats()
    refused = harness.free_port()  # nothing listens here
    async with harness.Upstream("streaming", make_handler(stats)) as up, RawUpstream() as raw:
        port = harness.free_port()
        config = (
            "binds:\n"
            f"- port: {port}\n"
            "  listeners:\n"
            "  - routes:\n"
            "    - name: raw\n"
            "      matches: [{path: {pathPrefix: /raw}}]\n"
            f"      backends: [{{host: '127.0.0.1:{raw.port}'}}]\n"
            "    - name: refused\n"
            "      matches: [{path: {pathPrefix: /refused}}]\n"
            f"      backends: [{{host: '127.0.0.1:{refused}'}}]\n"
            "    - name: main\n"
            f"      backends: [{{host: '{up.address}'}}]\n"
        )
        gw = harness.GatewayProcess(Path(tmp_path_factory.mktemp("streaming")), config).start()
        try:
            yield Env(gw, port, stats, raw)
        finally:
            gw.stop()


# --------------------------------------------------------------------------------------------
# helpers


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssMonitor:
    """Samples the gateway's resident memory every 20 ms; `growth` is peak minus baseline."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss(pid)
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss(self.pid))
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> RssMonitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.peak = max(self.peak, rss(self.pid))
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def gateway_pid(env: Env) -> int:
    assert env.gw.proc is not None and env.gw.proc.poll() is None, env.gw.stderr()
    return env.gw.proc.pid


async def warm_up(env: Env) -> None:
    """A few requests first, so lazily allocated buffers are not counted as growth."""
    async with harness.client() as c:
        for _ in range(3):
            async with c.get(env.url(f"/download?size={4 * MB}")) as r:
                assert len(await r.read()) == 4 * MB
            async with c.post(env.url("/upload"), data=b"w" * MB) as r:
                assert r.status == 200


async def assert_still_serving(env: Env) -> None:
    assert env.gw.proc is not None and env.gw.proc.poll() is None, env.gw.stderr()
    async with harness.client() as c, c.get(env.url("/fixed"), timeout=aiohttp.ClientTimeout(total=3)) as r:
        assert r.status == 200
        assert await r.read() == b"f" * 1000


async def body_chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = CHUNK[: min(len(CHUNK), total - sent)]
        yield piece
        sent += len(piece)


# --------------------------------------------------------------------------------------------
# big bodies, bounded memory


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_50_mb_request_body_streams_to_the_upstream_with_bounded_gateway_memory(
    env: Env, framing: str
) -> None:
    await warm_up(env)
    headers = {"content-length": str(BIG)} if framing == "content-length" else {}
    async with (
        RssMonitor(gateway_pid(env)) as mem,
        harness.client() as c,
        c.post(env.url("/upload"), data=body_chunks(BIG), headers=headers) as r,
    ):
        assert r.status == 200
        assert await r.json() == {"received": BIG}
    assert env.stats.uploads[-1] == BIG
    # Unknown length stays chunked all the way to the upstream; a known one is not re-framed.
    assert env.stats.upload_chunked[-1] == (framing == "chunked")
    assert mem.growth < RSS_GROWTH_LIMIT, f"gateway RSS grew {mem.growth / MB:.1f} MB"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_50_mb_response_body_streams_back_with_bounded_gateway_memory(env: Env, framing: str) -> None:
    await warm_up(env)
    query = f"size={BIG}" + ("&chunked=1" if framing == "chunked" else "")
    received = 0
    async with (
        RssMonitor(gateway_pid(env)) as mem,
        harness.client() as c,
        c.get(env.url(f"/download?{query}")) as r,
    ):
        assert r.status == 200
        if framing == "chunked":
            assert r.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in r.headers
        else:
            assert r.headers.get("content-length") == str(BIG)
        async for chunk in r.content.iter_chunked(256 * 1024):
            received += len(chunk)
    assert received == BIG
    assert mem.growth < RSS_GROWTH_LIMIT, f"gateway RSS grew {mem.growth / MB:.1f} MB"


async def test_a_slow_client_holds_back_the_upstream_and_gateway_memory_stays_bounded(env: Env) -> None:
    """Backpressure: while the client reads nothing, the upstream must block on its writes."""
    await warm_up(env)
    key = f"slow{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no receive autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", env.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=64 * 1024)
    try:
        async with RssMonitor(gateway_pid(env)) as mem:
            writer.write(f"GET /download?size={BIG}&key={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            got = 0
            while got < MB:
                got += len(await reader.read(64 * 1024))
            # Stall: read nothing for a while and watch the upstream.
            await asyncio.sleep(1.0)
            written_a = env.stats.written.get(key, 0)
            await asyncio.sleep(0.7)
            written_b = env.stats.written.get(key, 0)
            stall_peak = mem.peak - mem.baseline
            assert written_b == written_a, "the upstream kept writing while the client read nothing"
            in_flight = written_b - got
            assert in_flight < 40 * MB, f"{in_flight / MB:.1f} MB left the upstream ahead of the client"
            # Now drain it quickly.
            async with asyncio.timeout(30):
                while got < BIG:
                    chunk = await reader.read(1024 * 1024)
                    assert chunk
                    got += len(chunk)
        assert got == BIG
        assert stall_peak < RSS_GROWTH_LIMIT, f"gateway RSS grew {stall_peak / MB:.1f} MB while stalled"
        assert mem.growth < RSS_GROWTH_LIMIT, f"gateway RSS grew {mem.growth / MB:.1f} MB"
    finally:
        writer.close()


async def test_a_client_that_disconnects_mid_download_releases_the_upstream(env: Env) -> None:
    key = f"gone{time.monotonic_ns()}"
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    writer.write(f"GET /download?size={BIG}&key={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await reader.readexactly(2 * MB)
    writer.transport.abort()
    await asyncio.sleep(0.5)
    stopped_at = env.stats.written.get(key, 0)
    await asyncio.sleep(0.5)
    assert env.stats.written.get(key, 0) == stopped_at < BIG
    await assert_still_serving(env)


async def test_a_client_that_resets_while_waiting_for_the_response_releases_the_upstream(env: Env) -> None:
    key = f"hang{time.monotonic_ns()}"
    _, writer = await asyncio.open_connection("127.0.0.1", env.port)
    writer.write(f"GET /hang?key={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.3)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST
    deadline = time.monotonic() + 3
    while key not in env.stats.hang_released and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert key in env.stats.hang_released, "the gateway kept the upstream request open for a gone client"
    assert env.stats.hang_released[key] < 1.5
    await assert_still_serving(env)


# --------------------------------------------------------------------------------------------
# framing of odd responses


async def test_head_response_carries_the_length_but_no_body_and_the_connection_stays_usable(env: Env) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"HEAD /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await harness.read_response(reader, head_only=True)
            assert status == 200
            assert headers.get("content-length") == "1000"
            assert "transfer-encoding" not in headers
            writer.write(b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = await harness.read_response(reader)
            assert status == 200
            assert body == b"f" * 1000
            # HEAD to a streamed (chunked) upstream response: no chunked framing downstream either.
            writer.write(
                b"HEAD /download?size=1000&chunked=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            status, headers, _ = await harness.read_response(reader, head_only=True)
            assert status == 200
            assert await reader.read() == b""  # nothing after the head
    finally:
        writer.close()


@pytest.mark.parametrize("code", [204, 304])
async def test_bodiless_statuses_have_no_body_and_keep_the_connection(env: Env, code: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        async with asyncio.timeout(5):
            for _ in range(2):
                writer.write(b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 %d " % code), head
                assert not re.search(rb"(?i)\r\ntransfer-encoding:", head), head
                assert not re.search(rb"(?i)\r\ncontent-length: [1-9]", head), head
                assert re.search(rb"(?i)\r\nconnection: keep-alive\r\n", head), head
            writer.write(b"GET /fixed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _, body = await harness.read_response(reader)
            assert (status, body) == (200, b"f" * 1000)
            assert await reader.read() == b""
    finally:
        writer.close()


async def test_close_delimited_upstream_response_reaches_an_http_1_1_client_chunked(env: Env) -> None:
    async with harness.client() as c:
        for path in ("/raw/http10", "/raw/close-no-length"):
            async with c.get(env.url(path)) as r:
                assert r.status == 200
                assert r.headers.get("transfer-encoding") == "chunked"
                body = await r.read()
            assert body == (HTTP10_BODY if path == "/raw/http10" else HTTP10_BODY[:100000])
    await assert_still_serving(env)


async def test_close_delimited_upstream_response_reaches_an_http_1_0_client_close_delimited(env: Env) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        writer.write(b"GET /raw/http10 HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(10):
            status, headers, body = await harness.read_response(reader)
    finally:
        writer.close()
    assert status == 200
    assert "transfer-encoding" not in headers  # HTTP/1.0 clients do not know chunked
    assert body == HTTP10_BODY


# --------------------------------------------------------------------------------------------
# upstream failures


@pytest.mark.parametrize("path", ["/raw/truncate-length", "/raw/truncate-chunked"])
async def test_an_upstream_closing_mid_response_aborts_the_client_response(env: Env, path: str) -> None:
    received = 0
    async with harness.client() as c:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with c.get(env.url(path)) as r:
                assert r.status == 200
                async for chunk in r.content.iter_chunked(65536):
                    received += len(chunk)
    assert 0 < received < 10 * MB
    await assert_still_serving(env)


async def test_upstream_refusing_the_connection_gives_503(env: Env) -> None:
    async with harness.client() as c, c.get(env.url("/refused/x")) as r:
        assert r.status == 503
        assert "upstream_connect_error" in await r.text()
    await assert_still_serving(env)


@pytest.mark.parametrize("path", ["/raw/reset", "/raw/close", "/raw/garbage"])
async def test_upstream_that_accepts_then_fails_before_answering_gives_502(env: Env, path: str) -> None:
    for method in ("GET", "POST"):
        async with harness.client() as c, c.request(method, env.url(path), data=b"x" * 10) as r:
            assert r.status == 502, await r.text()
            assert "upstream" in await r.text()
    await assert_still_serving(env)


async def test_sequential_requests_reuse_a_few_upstream_connections(env: Env) -> None:
    env.stats.peers.clear()
    async with harness.client() as c:
        for _ in range(40):
            async with c.get(env.url("/peer")) as r:
                assert r.status == 200
                await r.read()
    for _ in range(10):  # a fresh client connection each time: the upstream side is still pooled
        async with harness.client() as c, c.get(env.url("/peer")) as r:
            assert r.status == 200
    assert len(env.stats.peers) == 50
    assert len(set(env.stats.peers)) <= 2, set(env.stats.peers)
