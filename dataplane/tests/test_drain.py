"""SIGTERM drains a real gateway process: in-flight requests finish, new ones go elsewhere, exit 0.

Slow requests use the upstream's `x-echo-delay-ms`; each test waits until the upstream has them
before signalling, so "in flight" is a fact, not a guess about timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from dataplane.tests import harness


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


async def received(up: harness.Upstream, n: int) -> bool:
    return up.requests >= n


async def refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return False


async def readiness(gw: harness.GatewayProcess) -> int | None:
    """The readiness status code, or None once the endpoint is gone."""
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"http://127.0.0.1:{gw.ready_port}/healthz/ready", timeout=aiohttp.ClientTimeout(total=1)
            ) as r,
        ):
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def slow_get(port: int, delay_ms: int) -> int:
    """A GET on its own connection that the upstream answers after `delay_ms`; returns the status."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/slow", headers={"x-echo-delay-ms": str(delay_ms)}) as r,
    ):
        await r.read()
        return r.status


async def exit_code(gw: harness.GatewayProcess, timeout: float) -> int:
    assert gw.proc is not None
    try:
        return await asyncio.to_thread(gw.proc.wait, timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the gateway did not exit within {timeout}s: {gw.stderr()}") from exc


# --------------------------------------------------------------------------------------------


async def test_sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_zero(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path,
            harness.simple_config(port, up.address),
            extra_config="connectionTerminationDeadline: 5s",
        ).start()
        try:
            assert await readiness(gw) == 200
            slow = [asyncio.create_task(slow_get(port, 2000)) for _ in range(4)]
            await wait_until(lambda: received(up, 4), "the upstream has the 4 slow requests")
            signalled = time.monotonic()
            gw.terminate()

            await wait_until(lambda: refuses(port), "new connections are refused", timeout=1.5)
            assert await readiness(gw) == 503
            assert not any(t.done() for t in slow)

            assert await asyncio.gather(*slow) == [200, 200, 200, 200]
            assert await exit_code(gw, 5.0) == 0
            assert time.monotonic() - signalled < 5.0
        finally:
            gw.stop()


async def test_connections_are_accepted_until_the_min_termination_deadline_while_not_ready(
    tmp_path: Path,
) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path,
            harness.simple_config(port, up.address),
            extra_config="connectionMinTerminationDeadline: 1s\nconnectionTerminationDeadline: 2s",
        ).start()
        try:
            signalled = time.monotonic()
            gw.terminate()
            await wait_until(lambda: _is(readiness(gw), 503), "readiness fails")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                while time.monotonic() - signalled < 0.5:
                    async with s.get(gw.url(port, "/")) as r:
                        assert r.status == 200
                    await asyncio.sleep(0.05)
            await wait_until(lambda: refuses(port), "new connections are refused after the min deadline")
            assert time.monotonic() - signalled >= 1.0
            assert await exit_code(gw, 4.0) == 0
        finally:
            gw.stop()


async def test_requests_beyond_the_termination_deadline_are_cut_and_the_process_still_exits(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()

    async def never_answers(request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                await release.wait()
        return web.Response(text="too late")

    async with harness.Upstream(handler=never_answers) as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path,
            harness.simple_config(port, up.address),
            extra_config="connectionTerminationDeadline: 1s",
        ).start()
        try:
            stuck = asyncio.create_task(slow_get(port, 0))
            await wait_until(lambda: received(up, 1), "the upstream has the stuck request")
            signalled = time.monotonic()
            gw.terminate()
            assert await exit_code(gw, 4.0) == 0
            assert 0.9 < time.monotonic() - signalled < 4.0
            try:
                async with asyncio.timeout(2):
                    status = await stuck
            except aiohttp.ClientError:
                pass  # cut: the connection was closed under it
            else:
                raise AssertionError(f"a request past the deadline completed with {status}")
        finally:
            release.set()
            gw.stop()


async def test_idle_keep_alive_connections_are_closed_when_the_drain_starts(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path,
            harness.simple_config(port, up.address),
            extra_config="connectionTerminationDeadline: 5s",
        ).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /idle HTTP/1.1\r\nHost: example.com\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"connection: keep-alive" in head.lower()
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)

            slow = asyncio.create_task(slow_get(port, 2500))  # keeps the process draining
            await wait_until(lambda: received(up, 2), "the upstream has the slow request")
            signalled = time.monotonic()
            gw.terminate()
            assert await asyncio.wait_for(reader.read(), 1.5) == b""  # EOF, not a response
            assert time.monotonic() - signalled < 1.5
            assert not slow.done()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            assert await slow == 200
            assert await exit_code(gw, 5.0) == 0
        finally:
            gw.stop()


async def _is(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected


async def test_a_request_on_a_bind_removed_by_reload_still_gets_the_drain_deadline(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        kept, removed = harness.free_port(), harness.free_port()
        both = harness.simple_config(kept, up.address) + harness.simple_config(
            removed, up.address
        ).removeprefix("binds:\n")
        gw = harness.GatewayProcess(tmp_path, both, extra_config="connectionTerminationDeadline: 5s").start()
        try:
            slow = asyncio.create_task(slow_get(removed, 1500))
            await wait_until(lambda: received(up, 1), "the upstream has the slow request")
            gw.write(harness.simple_config(kept, up.address))
            await wait_until(lambda: refuses(removed), "the reload removes the bind")
            gw.terminate()
            assert await slow == 200
            assert await exit_code(gw, 5.0) == 0
        finally:
            gw.stop()
