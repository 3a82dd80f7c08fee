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
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from dataplane.tests import harness


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


class Controller:
    def __init__(self, tmp: Path, text: str) -> None:
        self.path = tmp / "fleet.yaml"
        self.xds_port = harness.free_port()
        self.metrics_port = harness.free_port()
        self.log = tmp / "controller.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write(text)

    def write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def start(self) -> Controller:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller",
                    "--from-file",
                    str(self.path),
                    "--xds-port",
                    str(self.xds_port),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                cwd=harness.REPO,
                stderr=err,
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class XdsProxy(harness.GatewayProcess):
    """A proxy with only startup settings in its file; routing comes over xDS."""

    def __init__(self, tmp: Path, xds_port: int) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, "")
        self.xds_port = xds_port

    def start(self, timeout: float = 15.0) -> XdsProxy:
        env = {
            **os.environ,
            "XDS_ADDRESS": f"127.0.0.1:{self.xds_port}",
            "NAMESPACE": "default",
            "GATEWAY": "fleet",
        }
        with open(self.access_log, "wb") as out, open(self.stderr_log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dataplane", "-f", str(self.path)],
                cwd=harness.REPO,
                stdout=out,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited: {self.stderr()}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"proxy not ready: {self.stderr()}")


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
