"""A proxy fleet configured over xDS: `agentgw-controller --from-file` and two proxy processes.

Real processes on 127.0.0.1: the controller serves a standalone file over delta xDS; two
`agentgw-proxy` processes subscribe (XDS_ADDRESS/NAMESPACE/GATEWAY, no routing file) and
serve traffic to real upstreams. Checks: both proxies follow a route change made under load
with zero failed requests; a bad edit is rejected by the controller and the fleet keeps serving;
the controller is killed and restarted while the proxies keep serving their last good config,
and they pick up changes again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from dataplane.tests import harness
from e2e.processes import Controller, XdsProxy


def _routes(port: int, backend: str, extra: str = "") -> str:
    return (
        "binds:\n"
        f"- port: {port}\n"
        "  listeners:\n"
        "  - routes:\n"
        f"{extra}"
        "    - name: main\n"
        f"      backends: [{{host: '{backend}'}}]\n"
    )


async def _wait_for_backend(
    session: aiohttp.ClientSession, url: str, name: str, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as r:
                if r.status == 200 and (await r.json())["backend"] == name:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered from {name}")


async def test_two_proxies_follow_the_controller_under_load_and_survive_its_restart(tmp_path: Path) -> None:
    async with harness.Upstream("blue") as blue, harness.Upstream("green") as green:
        port_a, port_b = harness.free_port(), harness.free_port()
        text = _routes(port_a, blue.address) + _routes(port_b, blue.address).removeprefix("binds:\n")
        ctl = Controller(tmp_path, text).start()
        proxies = [XdsProxy(tmp_path / "a", ctl.xds_port), XdsProxy(tmp_path / "b", ctl.xds_port)]
        try:
            for p in proxies:
                await asyncio.to_thread(p.start)
            urls = [f"http://127.0.0.1:{port_a}/", f"http://127.0.0.1:{port_b}/"]
            async with aiohttp.ClientSession() as session:
                for url in urls:
                    await _wait_for_backend(session, url, "blue")

                failures: list[str] = []
                stop = asyncio.Event()

                async def load(url: str) -> int:
                    n = 0
                    while not stop.is_set() and n < 20_000:
                        try:
                            async with session.get(url) as r:
                                await r.read()
                                if r.status != 200:
                                    failures.append(f"{url}: {r.status}")
                        except aiohttp.ClientError as exc:
                            failures.append(f"{url}: {exc!r}")
                        n += 1
                    return n

                clients = [asyncio.create_task(load(u)) for u in urls for _ in range(4)]
                await asyncio.sleep(0.5)
                # A route change under load: blue -> green on both proxies, zero failures.
                ctl.write(
                    _routes(port_a, green.address) + _routes(port_b, green.address).removeprefix("binds:\n")
                )
                for url in urls:
                    await _wait_for_backend(session, url, "green")
                # A bad edit: rejected by the controller, the fleet keeps serving green.
                ctl.write(_routes(port_a, "not-a-host") + "garbage: [\n")
                await asyncio.sleep(1.0)
                # The controller dies: proxies keep serving their last good config.
                ctl.kill()
                await asyncio.sleep(1.0)
                stop.set()
                counts = await asyncio.gather(*clients)
                assert not failures, failures[:5]
                assert sum(counts) > 100
                for url in urls:
                    async with session.get(url) as r:
                        assert (await r.json())["backend"] == "green"
                # It comes back with a new file: proxies reconnect and follow it.
                ctl.write(
                    _routes(port_a, blue.address) + _routes(port_b, blue.address).removeprefix("binds:\n")
                )
                ctl.start()
                for url in urls:
                    await _wait_for_backend(session, url, "blue", timeout=20.0)
        finally:
            for p in proxies:
                p.stop()
            ctl.stop()
