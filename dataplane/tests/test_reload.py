"""Hot reload through a real gateway process: the file is rewritten, traffic follows, nothing fails.

The gateway polls its file every 0.5 s; `GatewayProcess.write` replaces it atomically. Each test
waits for the new config to show in the traffic (bounded polling), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from dataplane.tests import harness

RELOAD_TIMEOUT = 5.0


def routes_config(port: int, main: str, extra: str | None = None, more_ports: tuple[int, ...] = ()) -> str:
    """Bind `port` (and `more_ports`): an optional `/extra` route to `extra`, a catch-all to `main`."""
    out = "binds:\n"
    for p in (port, *more_ports):
        out += f"- port: {p}\n  listeners:\n  - routes:\n"
        if extra is not None:
            out += (
                "    - name: extra\n"
                "      matches: [{path: {pathPrefix: /extra}}]\n"
                f"      backends: [{{host: '{extra}'}}]\n"
            )
        out += f"    - name: main\n      backends: [{{host: '{main}'}}]\n"
    return out


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = RELOAD_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


async def backend_of(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> str | None:
    """The name of the upstream that answered, or None if the request did not get a 200."""
    try:
        async with session.get(url, **kwargs) as r:
            if r.status != 200:
                await r.read()
                return None
            return str((await r.json())["backend"])
    except aiohttp.ClientError:
        return None


async def answers_from(session: aiohttp.ClientSession, url: str, name: str) -> bool:
    return await backend_of(session, url) == name


async def refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return False


async def scrape(session: aiohttp.ClientSession, gw: harness.GatewayProcess) -> str:
    async with session.get(gw.stats_url()) as r:
        assert r.status == 200
        return await r.text()


def sample(text: str, prefix: str) -> float:
    """The value of the one metric line starting with `prefix` (0 if absent)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) <= 1, values
    return values[0] if values else 0.0


FAILURES = 'agentgw_config_reloads_total{result="failure"}'
SUCCESSES = 'agentgw_config_reloads_total{result="success"}'


def replace_bytes(gw: harness.GatewayProcess, data: bytes) -> None:
    """Replace the whole file (no `config:` header) atomically with raw bytes."""
    tmp = gw.path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, gw.path)


async def config_dump(session: aiohttp.ClientSession, gw: harness.GatewayProcess) -> dict[str, Any]:
    async with session.get(gw.admin_url("/config_dump")) as r:
        assert r.status == 200
        return dict(await r.json())


# --------------------------------------------------------------------------------------------


async def test_reloads_under_load_fail_no_request_and_traffic_follows_each_new_route(tmp_path: Path) -> None:
    async with harness.Upstream("a") as a, harness.Upstream("b") as b:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, routes_config(port, a.address)).start()
        try:
            stop = asyncio.Event()
            statuses: dict[int, int] = {}
            failures: list[str] = []
            served = 0

            async def client(session: aiohttp.ClientSession) -> None:
                nonlocal served
                deadline = time.monotonic() + 20.0
                for _ in range(50_000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    try:
                        async with session.get(gw.url(port, "/load")) as r:
                            await r.read()
                            statuses[r.status] = statuses.get(r.status, 0) + 1
                            served += 1
                    except aiohttp.ClientError as exc:
                        failures.append(repr(exc))

            async with aiohttp.ClientSession() as load, aiohttp.ClientSession() as probe:
                clients = [asyncio.create_task(client(load)) for _ in range(8)]
                started = time.monotonic()
                url = gw.url(port, "/")
                extra = gw.url(port, "/extra/x")

                gw.write(routes_config(port, b.address))  # the route's backend moves to b
                await wait_until(lambda: answers_from(probe, url, "b"), "the catch-all answers from b")

                gw.write(routes_config(port, b.address, extra=a.address))  # a route is added
                await wait_until(lambda: answers_from(probe, extra, "a"), "/extra answers from a")
                assert await backend_of(probe, url) == "b"

                gw.write(routes_config(port, b.address))  # ... and removed
                await wait_until(lambda: answers_from(probe, extra, "b"), "/extra falls to the catch-all (b)")

                gw.write(routes_config(port, a.address))  # back to a
                await wait_until(lambda: answers_from(probe, url, "a"), "the catch-all answers from a again")

                await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
                stop.set()
                await asyncio.gather(*clients)
                assert sample(await scrape(probe, gw), SUCCESSES) == 5

            assert failures == []
            assert set(statuses) == {200}, statuses
            assert served > 100
            assert a.requests > 0 and b.requests > 0
        finally:
            gw.stop()


async def test_an_invalid_reload_keeps_the_last_good_config_and_reports_the_field_path(
    tmp_path: Path,
) -> None:
    bad_files = [
        (
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n"
            "    - matches: [{{path: {{regex: '(unclosed'}}}}]\n"
            "      backends: [{{host: '{up}'}}]\n",
            "binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regular expression",
        ),
        (
            "binds:\n- port: {port}\n  listeners:\n  - routes:\n"
            "    - matchez: []\n"
            "      backends: [{{host: '{up}'}}]\n",
            "binds[0].listeners[0].routes[0].matchez: unknown field",
        ),
        ("binds:\n- port: {port}\n  listeners: [\n", "invalid YAML"),
        ("\udcff\udcfe", "not UTF-8 text"),  # written as the bytes ff fe
    ]
    async with harness.Upstream("a") as a, harness.Upstream("b") as b:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, routes_config(port, a.address)).start()
        try:
            async with aiohttp.ClientSession() as s:
                version = (await config_dump(s, gw))["version"]
                assert version
                for n, (text, expected) in enumerate(bad_files, start=1):
                    if "\udcff" in text:
                        replace_bytes(gw, text.encode("utf-8", "surrogateescape"))
                    else:
                        gw.write(text.format(port=port, up=b.address))

                    async def counted(n: int = n) -> bool:
                        return sample(await scrape(s, gw), FAILURES) == n

                    await wait_until(counted, f"{n} failed reload(s) are counted")
                    dump = await config_dump(s, gw)
                    assert expected in dump["status"]["last_error"]
                    assert dump["status"]["failures"] == n
                    assert dump["version"] == version
                    assert await backend_of(s, gw.url(port, "/")) == "a"

                gw.write(routes_config(port, b.address))
                await wait_until(
                    lambda: answers_from(s, gw.url(port, "/"), "b"), "the next valid file applies"
                )
                dump = await config_dump(s, gw)
                assert dump["version"] != version
                metrics = await scrape(s, gw)
                assert sample(metrics, SUCCESSES) == 2
                assert sample(metrics, FAILURES) == len(bad_files)
        finally:
            gw.stop()


async def test_a_bind_added_by_reload_opens_and_a_removed_one_closes_while_others_keep_serving(
    tmp_path: Path,
) -> None:
    async with harness.Upstream("a") as a:
        first, second = harness.free_port(), harness.free_port()
        gw = harness.GatewayProcess(tmp_path, routes_config(first, a.address)).start()
        try:
            assert await refuses(second)
            async with aiohttp.ClientSession() as s:
                assert await backend_of(s, gw.url(first, "/")) == "a"

                gw.write(routes_config(first, a.address, more_ports=(second,)))
                await wait_until(lambda: answers_from(s, gw.url(second, "/"), "a"), "the new port serves")
                assert await backend_of(s, gw.url(first, "/")) == "a"

                gw.write(routes_config(second, a.address))
                await wait_until(lambda: refuses(first), "the removed port refuses connections")
                # `s` holds a keep-alive connection to `second` from before the reload
                for _ in range(5):
                    assert await backend_of(s, gw.url(second, "/")) == "a"
        finally:
            gw.stop()


async def test_requests_in_flight_during_a_reload_complete_on_the_old_route_even_if_their_bind_is_removed(
    tmp_path: Path,
) -> None:
    async with harness.Upstream("a") as a, harness.Upstream("b") as b:
        kept, removed = harness.free_port(), harness.free_port()
        gw = harness.GatewayProcess(tmp_path, routes_config(kept, a.address, more_ports=(removed,))).start()
        try:
            async with aiohttp.ClientSession() as slow, aiohttp.ClientSession() as s:
                in_flight = [
                    asyncio.create_task(
                        backend_of(slow, gw.url(port, "/slow"), headers={"x-echo-delay-ms": "3000"})
                    )
                    for port in (kept, removed)
                ]
                await wait_until(lambda: _true(a.requests == 2), "the slow requests reach a")
                gw.write(routes_config(kept, b.address))
                await wait_until(lambda: answers_from(s, gw.url(kept, "/"), "b"), "the reload applies")
                assert await refuses(removed)
                assert not any(t.done() for t in in_flight)
                assert await asyncio.gather(*in_flight) == ["a", "a"]
        finally:
            gw.stop()


async def _true(value: bool) -> bool:
    return value
