"""HTTP/2 downstream flow control and timeouts on a real agentgw-proxy process.

A client that stops granting window must hold the upstream back (the proxy must not read a large
response into memory for it), and must still get every byte once it reads again; an HTTP/2
connection with no open stream is closed after the idle timeout (`http1IdleTimeout` applies to
both protocols), with a GOAWAY first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import h2.events
import pytest
import pytest_asyncio
from aiohttp import web

from dataplane.tests import h2_client, harness

pytestmark = pytest.mark.asyncio(loop_scope="module")

IDLE_TIMEOUT = 2.0
BIG = 16 * 1024 * 1024
CHUNK = 64 * 1024


@dataclasses.dataclass
class Env:
    gw: harness.GatewayProcess
    port: int
    written: list[int]
    """Bytes the upstream has handed to its socket for /big, updated as it writes."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    written = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path != "/big":
            return await harness.echo(request)
        written[0] = 0
        resp = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        resp.content_length = BIG
        await resp.prepare(request)
        chunk = b"x" * CHUNK
        for _ in range(BIG // CHUNK):
            await resp.write(chunk)  # waits while the proxy does not read (TCP backpressure)
            written[0] += CHUNK
        await resp.write_eof()
        return resp

    async with harness.Upstream("h2-flow", handler) as up:
        port = harness.free_port()
        config = harness.simple_config(port, up.address) + (
            f"frontendPolicies:\n  http:\n    http1IdleTimeout: {IDLE_TIMEOUT:g}s\n"
        )
        gw = harness.GatewayProcess(Path(tmp_path_factory.mktemp("h2flow")), config).start()
        try:
            yield Env(gw, port, written)
        finally:
            gw.stop()


class StingyClient(h2_client.H2Client):
    """Grants no window for received data until `generous` is set: a client that stops reading."""

    generous = False
    held = 0

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived) and not self.generous:
            self.replies[event.stream_id].body += event.data
            self.held += event.flow_controlled_length
            return
        super()._event(event)

    def open_up(self, sid: int) -> None:
        self.generous = True
        if self.held:
            self.conn.acknowledge_received_data(self.held, sid)
            self.held = 0
        self.flush()


def rss(gw: harness.GatewayProcess) -> int:
    assert gw.proc is not None
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_client_that_stops_reading_holds_the_upstream_back_then_gets_every_byte(env: Env) -> None:
    client = await StingyClient.open(env.port)
    try:
        before = rss(env.gw)
        sid = client.request("GET", "/big")
        await asyncio.sleep(2.0)
        stalled_at = env.written[0]
        grown = rss(env.gw) - before
        received = len(client.replies[sid].body)
        # The client granted 64 KiB of window: the proxy may hold some socket buffers' worth
        # more, never the whole response.
        assert received <= 65_535
        assert stalled_at < BIG / 2, f"the upstream wrote {stalled_at} of {BIG} bytes to a stalled client"
        # What the upstream wrote sits mostly in the kernel's socket buffers: the proxy's memory
        # grows by its stream buffers (~256 KiB) and allocator noise, not by the response.
        assert grown < 4 * 1024 * 1024, f"the proxy grew by {grown} bytes for a stalled client"
        await asyncio.sleep(1.0)
        assert env.written[0] - stalled_at <= 4 * CHUNK, "the upstream kept writing to a stalled client"

        client.open_up(sid)
        reply = await client.response(sid, timeout=30)
        assert reply.status == 200
        assert len(reply.body) == BIG and reply.body.count(b"x") == BIG
        assert env.written[0] == BIG
    finally:
        await client.close()


async def test_an_idle_http2_connection_gets_goaway_and_is_closed_after_the_idle_timeout(env: Env) -> None:
    client = await h2_client.H2Client.open(env.port)
    try:
        reply = await client.response(client.request("GET", "/once"))
        assert reply.status == 200
        started = time.monotonic()
        assert await client.closed(timeout=IDLE_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        # The sweeper runs once a second: closed between the timeout and a little after.
        assert IDLE_TIMEOUT - 0.5 <= elapsed <= IDLE_TIMEOUT + 2.5, elapsed
        assert client.goaway == 0  # NO_ERROR: a graceful close
    finally:
        await client.close()


async def test_a_connection_with_an_open_stream_is_not_closed_as_idle(env: Env) -> None:
    client = await h2_client.H2Client.open(env.port)
    try:
        sid = client.request("POST", "/slow-body", body=b"", end=False)  # the request never ends
        assert not await client.closed(timeout=IDLE_TIMEOUT + 2)
        client.send_body(sid, b"done")
        reply = await client.response(sid)
        assert reply.status == 200
    finally:
        await client.close()
