"""`--workers 2`: a supervisor and two worker processes sharing every port.

The access log carries no PID, so which process serves what is read from the system: the
supervisor lists its workers in /config_dump, and /proc shows which processes hold a listening
socket on the port. Requests go on fresh connections (`force_close`) so the kernel spreads them
over the workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dataplane import supervisor
from dataplane.tests import harness

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


def fresh_connections() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def config_dump(gw: harness.GatewayProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(gw.admin_url("/config_dump")) as r:
        assert r.status == 200
        return dict(await r.json())


async def workers(gw: harness.GatewayProcess) -> list[int]:
    return list((await config_dump(gw))["workers"])


async def scrape(gw: harness.GatewayProcess) -> str:
    async with aiohttp.ClientSession() as s, s.get(gw.stats_url()) as r:
        assert r.status == 200
        return await r.text()


def total(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, even if not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def listening_pids(port: int) -> set[int]:
    """PIDs of the processes that hold a TCP socket listening on `port` (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(entry.name))
                    break
        except OSError:
            continue
    return pids


async def backends(port: int, n: int) -> list[str]:
    """Send `n` GETs, each on a new connection; return who answered (or the failure)."""
    out = []
    async with fresh_connections() as s:
        for _ in range(n):
            try:
                async with s.get(f"http://127.0.0.1:{port}/") as r:
                    out.append(str((await r.json())["backend"]) if r.status == 200 else f"status {r.status}")
            except aiohttp.ClientError as exc:
                out.append(repr(exc))
    return out


def config(port: int, upstream: str) -> str:
    return harness.simple_config(port, upstream)


# --------------------------------------------------------------------------------------------


async def test_two_workers_listen_on_the_same_port_and_are_listed_in_config_dump(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, config(port, a.address), workers=2).start()
        try:
            assert gw.proc is not None
            pids = await workers(gw)
            assert len(set(pids)) == 2
            assert all(alive(p) and parent_of(p) == gw.proc.pid for p in pids)
            assert listening_pids(port) == set(pids)  # the supervisor itself serves no traffic
            assert await backends(port, 10) == ["a"] * 10
        finally:
            gw.stop()


async def test_supervisor_metrics_sum_the_requests_of_every_worker(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, config(port, a.address), workers=2).start()
        try:
            n = 40
            assert await backends(port, n) == ["a"] * n
            text = await scrape(gw)
            assert total(text, "agentgw_requests_total") == n
            assert total(text, "agentgw_request_duration_seconds_count") == n
            assert total(text, "agentgw_downstream_connections_total") == n
            assert 'agentgw_config_reloads_total{result="success"} 1' in text
        finally:
            gw.stop()


async def test_a_hot_reload_reaches_every_worker(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a, harness.Upstream("b") as b:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, config(port, a.address), workers=2).start()
        try:
            version = (await config_dump(gw))["version"]
            gw.write(config(port, b.address))

            async def new_version() -> bool:
                return (await config_dump(gw))["version"] != version

            await wait_until(new_version, "the supervisor reports the new version")
            # 30 connections all land on one of two workers with probability 2**-29
            assert await backends(port, 30) == ["b"] * 30
        finally:
            gw.stop()


async def test_a_killed_worker_is_restarted_and_traffic_continues(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, config(port, a.address), workers=2).start()
        try:
            before = await workers(gw)
            os.kill(before[0], signal.SIGKILL)
            await wait_until(lambda: _true(not alive(before[0])), "the killed worker is gone")
            assert await backends(port, 10) == ["a"] * 10  # the other worker takes every connection

            async def replaced() -> bool:
                now = await workers(gw)
                return now[1] == before[1] and now[0] not in (before[0], None) and alive(now[0])

            await wait_until(replaced, "the supervisor starts a new worker")
            after = await workers(gw)
            await wait_until(lambda: _true(listening_pids(port) == set(after)), "the new worker listens")
            assert await backends(port, 20) == ["a"] * 20
        finally:
            gw.stop()


async def test_a_worker_restarted_while_the_file_is_invalid_serves_the_last_good_config(
    tmp_path: Path,
) -> None:
    async with harness.Upstream("a") as a:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, config(port, a.address), workers=2).start()
        try:
            gw.write("binds: [\n")  # a broken file: the supervisor keeps the last good config

            async def rejected() -> bool:
                return bool((await config_dump(gw))["status"]["last_error"])

            await wait_until(rejected, "the broken file is rejected")
            before = await workers(gw)
            os.kill(before[0], signal.SIGKILL)

            async def replaced() -> bool:
                now = await workers(gw)
                return now[0] not in (before[0], None) and alive(now[0])

            await wait_until(replaced, "the supervisor starts a new worker")
            after = await workers(gw)
            await wait_until(lambda: _true(listening_pids(port) == set(after)), "the new worker listens")
            assert await backends(port, 20) == ["a"] * 20
        finally:
            gw.stop()


async def test_sigterm_drains_every_worker_and_the_supervisor_exits_zero(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path, config(port, a.address), workers=2, extra_config="connectionTerminationDeadline: 5s"
        ).start()
        try:
            assert gw.proc is not None
            pids = await workers(gw)
            slow = [asyncio.create_task(_slow_get(port)) for _ in range(8)]
            await wait_until(lambda: _true(a.requests >= 8), "the upstream has the 8 slow requests")
            gw.terminate()
            assert await asyncio.gather(*slow) == [200] * 8
            try:
                code = await asyncio.to_thread(gw.proc.wait, 5.0)
            except subprocess.TimeoutExpired as exc:
                raise AssertionError(f"the supervisor did not exit: {gw.stderr()}") from exc
            assert code == 0
            assert not any(alive(p) for p in pids)
        finally:
            gw.stop()


async def _slow_get(port: int) -> int:
    async with (
        fresh_connections() as s,
        s.get(f"http://127.0.0.1:{port}/slow", headers={"x-echo-delay-ms": "1500"}) as r,
    ):
        await r.read()
        return r.status


async def _true(value: bool) -> bool:
    return value


async def test_a_late_reply_from_a_worker_is_not_taken_for_the_answer_to_the_next_request() -> None:
    ours, theirs = socket.socketpair()
    child = supervisor._Child(0)
    child.attach(*await asyncio.open_connection(sock=ours))
    worker_in, worker_out = await asyncio.open_connection(sock=theirs)
    try:
        with pytest.raises(TimeoutError):
            await child.request(b"C", b"config", wait=0.1)
        assert (await supervisor.read_frame(worker_in))[0] == b"C"
        await supervisor.send_frame(worker_out, b"A", b"{}")  # the ack arrives after the timeout

        scrape = asyncio.create_task(child.request(b"M", b"", wait=2.0))
        assert (await supervisor.read_frame(worker_in))[0] == b"M"
        await supervisor.send_frame(worker_out, b"m", b'{"metrics": 1}')
        assert await scrape == b'{"metrics": 1}'
    finally:
        child.detach()
        worker_out.close()
        await worker_out.wait_closed()
