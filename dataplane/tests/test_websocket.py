"""WebSockets through a real gateway process to a real aiohttp WebSocket upstream.

After the 101 the gateway is a byte tunnel: messages of any size go both ways, a close from
either side (clean or abrupt) tears down both TCP connections, and an upstream that refuses the
upgrade has its answer passed to the client unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from dataplane.tests import harness

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class State:
    open: int = 0
    opened: int = 0
    close_codes: list[int | None] = dataclasses.field(default_factory=list)
    last_headers: dict[str, str] = dataclasses.field(default_factory=dict)


def make_handler(state: State) -> harness.Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/refuse":
            return web.Response(status=403, text="no websockets here", headers={"x-refused": "yes"})
        if request.path == "/plain":
            return web.Response(text="plain http")
        if request.path == "/late":
            await asyncio.sleep(0.3)  # the 101 comes late
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        state.open += 1
        state.opened += 1
        state.last_headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == "close-me":
                        await ws.close(code=4000, message=b"bye from upstream")
                        break
                    if msg.data == "drop-me":
                        assert request.transport is not None
                        request.transport.abort()
                        break
                    await ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
        finally:
            state.open -= 1
            state.close_codes.append(ws.close_code)
        return ws

    return handler


class SlowWebSocketUpstream:
    """Accepts the upgrade by hand, then reads nothing until `release` is set; counts bytes.

    (aiohttp's WebSocket server keeps reading into memory whatever the handler does, so it
    cannot show whether the gateway holds a fast client back.)
    """

    def __init__(self) -> None:
        self.port = harness.free_port()
        self.release = asyncio.Event()
        self.received = 0
        self.expect = 0
        """Close the connection once this many bytes have arrived."""
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> SlowWebSocketUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, limit=64 * 1024)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            key = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", head).group(1)  # type: ignore[union-attr]
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            writer.write(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            await writer.drain()
            await self.release.wait()
            while self.received < self.expect and (chunk := await reader.read(1024 * 1024)):
                self.received += len(chunk)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    state: State
    slow: SlowWebSocketUpstream

    def url(self, path: str = "/ws") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    state = State()
    async with harness.Upstream("ws", make_handler(state)) as up, SlowWebSocketUpstream() as slow:
        port = harness.free_port()
        slow_route = (
            "    - name: slow\n"
            "      matches: [{path: {pathPrefix: /slow}}]\n"
            f"      backends: [{{host: '127.0.0.1:{slow.port}'}}]\n"
        )
        gw = harness.GatewayProcess(
            Path(tmp_path_factory.mktemp("websocket")),
            harness.simple_config(port, up.address, extra_route=slow_route),
        ).start()
        try:
            yield Env(gw, port, state, slow)
        finally:
            gw.stop()


def gateway_sockets(env: Env) -> int:
    """Open sockets of the gateway process (listeners, admin, client and upstream connections)."""
    assert env.gw.proc is not None and env.gw.proc.poll() is None, env.gw.stderr()
    fd_dir = f"/proc/{env.gw.proc.pid}/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}").startswith("socket:"):
                count += 1
    return count


async def wait_until(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def settled_sockets(env: Env) -> int:
    """The gateway's socket count once earlier tests' connections are gone (stable for 0.1 s)."""
    await wait_until(lambda: env.state.open == 0)
    deadline = time.monotonic() + 3
    count = gateway_sockets(env)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = gateway_sockets(env)
        if now == count:
            break
        count = now
    return count


# --------------------------------------------------------------------------------------------


async def test_text_and_binary_messages_round_trip(env: Env) -> None:
    payloads: list[str | bytes] = [
        "hello",
        "",
        "ünïcødé ✓",
        "t" * 70_000,  # 16-bit and 64-bit length forms
        b"\x00\x01\x02\xff",
        b"",
        bytes(range(256)) * 4096,  # 1 MiB binary
    ]
    async with harness.client() as c, c.ws_connect(env.url("/ws?x=1"), max_msg_size=0) as ws:
        for payload in payloads:
            if isinstance(payload, str):
                await ws.send_str(payload)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.TEXT
            else:
                await ws.send_bytes(payload)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY
            assert msg.data == payload
        # Interleaved, without waiting for each answer.
        for i in range(50):
            await ws.send_str(f"m{i}")
        for i in range(50):
            assert (await ws.receive_str(timeout=5)) == f"m{i}"
    assert env.state.last_headers.get("x-forwarded-for") == "127.0.0.1"
    assert env.state.last_headers.get("upgrade", "").lower() == "websocket"


async def test_client_close_tears_down_both_connections(env: Env) -> None:
    before = await settled_sockets(env)
    async with harness.client() as c:
        ws = await c.ws_connect(env.url())
        await ws.send_str("ping")
        assert await ws.receive_str(timeout=5) == "ping"
        assert env.state.open == 1
        assert gateway_sockets(env) == before + 2  # one to the client, one to the upstream
        await ws.close(code=1000)
        assert ws.close_code == 1000
    await wait_until(lambda: env.state.open == 0)
    assert env.state.close_codes[-1] == 1000
    await wait_until(lambda: gateway_sockets(env) <= before)


async def test_upstream_close_tears_down_both_connections(env: Env) -> None:
    before = await settled_sockets(env)
    async with harness.client() as c:
        ws = await c.ws_connect(env.url(), autoclose=True)
        await ws.send_str("close-me")
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 4000
        assert msg.extra == "bye from upstream"
        await ws.close()
    await wait_until(lambda: env.state.open == 0)
    await wait_until(lambda: gateway_sockets(env) <= before)


async def test_abrupt_client_disconnect_closes_the_upstream_websocket(env: Env) -> None:
    before = await settled_sockets(env)
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    await wait_until(lambda: env.state.open == 1)
    writer.transport.abort()  # no close frame, just gone
    await wait_until(lambda: env.state.open == 0)
    await wait_until(lambda: gateway_sockets(env) <= before)


async def test_a_client_gone_before_the_101_arrives_does_not_leave_the_upstream_open(env: Env) -> None:
    before = await settled_sockets(env)
    opened = env.state.opened
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    writer.write(
        b"GET /late HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    writer.transport.abort()  # gone while the upstream is still deciding
    del reader
    await wait_until(lambda: env.state.opened == opened + 1)
    await wait_until(lambda: env.state.open == 0)
    await wait_until(lambda: gateway_sockets(env) <= before)


async def test_abrupt_upstream_disconnect_closes_the_client_connection(env: Env) -> None:
    before = await settled_sockets(env)
    async with harness.client() as c:
        ws = await c.ws_connect(env.url())
        await ws.send_str("drop-me")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
        await ws.close()
    await wait_until(lambda: env.state.open == 0)
    await wait_until(lambda: gateway_sockets(env) <= before)


async def test_many_concurrent_websockets_each_get_their_own_echoes(env: Env) -> None:
    before = await settled_sockets(env)
    count, messages = 100, 20
    opened_before = env.state.opened

    async with harness.client() as c:

        async def one(i: int) -> None:
            async with c.ws_connect(env.url(f"/ws?client={i}")) as ws:
                for j in range(messages):
                    await ws.send_str(f"{i}:{j}")
                    await ws.send_bytes(b"%d-%d" % (i, j))
                for j in range(messages):
                    assert await ws.receive_str(timeout=10) == f"{i}:{j}"
                    assert await ws.receive_bytes(timeout=10) == b"%d-%d" % (i, j)

        async with asyncio.timeout(30):
            await asyncio.gather(*(one(i) for i in range(count)))
    assert env.state.opened - opened_before == count
    await wait_until(lambda: env.state.open == 0, timeout=5)
    await wait_until(lambda: gateway_sockets(env) <= before, timeout=5)


async def test_a_non_101_answer_to_an_upgrade_is_passed_to_the_client(env: Env) -> None:
    async with harness.client() as c:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await c.ws_connect(env.url("/refuse"))
        assert info.value.status == 403
    response = await harness.raw_request(
        env.port,
        b"GET /refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        read_timeout=3,
    )
    assert response.startswith(b"HTTP/1.1 403 "), response[:300]
    assert b"x-refused: yes" in response.lower()
    assert response.endswith(b"no websockets here")
    # A plain (non-upgrade) answer to an upgrade request, then the gateway still serves.
    response = await harness.raw_request(
        env.port,
        b"GET /plain HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        read_timeout=3,
    )
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert response.endswith(b"plain http")
    async with harness.client() as c, c.ws_connect(env.url()) as ws:
        await ws.send_str("still works")
        assert await ws.receive_str(timeout=5) == "still works"


def gateway_rss(env: Env) -> int:
    assert env.gw.proc is not None
    with open(f"/proc/{env.gw.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_fast_websocket_client_is_held_back_when_the_upstream_reads_slowly(env: Env) -> None:
    mb = 1024 * 1024
    total = 60 * mb
    frame = b"w" * mb
    slow = env.slow
    slow.release.clear()
    slow.received = 0
    slow.expect = total
    async with harness.client() as c, c.ws_connect(env.url("/slow"), max_msg_size=0) as ws:
        baseline = gateway_rss(env)
        peak = baseline

        async def send_all() -> None:
            for _ in range(total // mb):
                await ws.send_bytes(frame)

        sender = asyncio.create_task(send_all())
        try:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not sender.done():
                peak = max(peak, gateway_rss(env))
                await asyncio.sleep(0.02)
            peak = max(peak, gateway_rss(env))
            stalled_growth = peak - baseline
            held_back = not sender.done()
        finally:
            slow.release.set()
        async with asyncio.timeout(20):
            await sender
            await wait_until(lambda: slow.received >= total, timeout=15)
    assert held_back, "the client wrote 60 MB although the upstream read nothing"
    assert stalled_growth < 25 * mb, f"gateway RSS grew {stalled_growth / mb:.1f} MB buffering the client"
