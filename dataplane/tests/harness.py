"""Test harness: run a real `agentgw-proxy` process on 127.0.0.1 and real upstream servers.

Integration tests use `GatewayProcess` (a subprocess started from a YAML config written to a
temp dir, with admin/stats/readiness on free ports) and `Upstream` (an aiohttp server in the
test's event loop). Every process started here is stopped by its PID in `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """An agentgw-proxy subprocess serving `config` (YAML text, without the `config:` block)."""

    def __init__(self, tmp: Path, config: str, workers: int = 1, extra_config: str = "") -> None:
        self.tmp = tmp
        self.admin_port = free_port()
        self.stats_port = free_port()
        self.ready_port = free_port()
        self.path = tmp / "config.yaml"
        self.access_log = tmp / "access.log"
        self.stderr_log = tmp / "proxy.err"
        self.workers = workers
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.write(config)

    def header(self) -> str:
        return (
            "config:\n"
            f"  adminAddr: 127.0.0.1:{self.admin_port}\n"
            f"  statsAddr: 127.0.0.1:{self.stats_port}\n"
            f"  readinessAddr: 127.0.0.1:{self.ready_port}\n"
            + "".join(f"  {line}\n" for line in self.extra_config.splitlines() if line.strip())
        )

    def write(self, config: str) -> None:
        """Replace the config file atomically (write a temp file, rename), as editors do."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.header() + config)
        os.replace(tmp, self.path)

    def start(self, timeout: float = 15.0) -> GatewayProcess:
        with open(self.access_log, "wb") as out, open(self.stderr_log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dataplane", "-f", str(self.path), "--workers", str(self.workers)],
                cwd=REPO,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.stderr()}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout}s: {self.stderr()}")

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ready_port), timeout=0.5) as s:
                s.sendall(b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stderr(self) -> str:
        try:
            return self.stderr_log.read_text()[-4000:]
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def url(self, port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{port}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/metrics"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAME = web.AppKey("name", str)


async def echo(request: web.Request) -> web.StreamResponse:
    """Answer with what the upstream saw: method, path, query, headers and body size."""
    body = await request.read()
    status = int(request.headers.get("x-echo-status", "200"))
    delay = float(request.headers.get("x-echo-delay-ms", "0")) / 1000
    if delay:
        await asyncio.sleep(delay)
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "host": request.host,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_len": len(body),
            "backend": request.app[NAME],
        },
        status=status,
    )


class Upstream:
    """A real HTTP server on 127.0.0.1 (aiohttp), with a catch-all handler."""

    def __init__(self, name: str = "upstream", handler: Handler = echo) -> None:
        self.name = name
        self.handler = handler
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.requests = 0

    async def __aenter__(self) -> Upstream:
        app = web.Application(client_max_size=1 << 30)
        app[NAME] = self.name

        async def counted(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            return await self.handler(request)

        app.router.add_route("*", "/{tail:.*}", counted)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def simple_config(port: int, upstream: str, policies: str = "", extra_route: str = "") -> str:
    """One bind, one listener, one catch-all route to `upstream`, optional route policies."""
    pol = f"      policies:\n{policies}" if policies else ""
    return (
        "binds:\n"
        f"- port: {port}\n"
        "  listeners:\n"
        "  - routes:\n"
        f"{extra_route}"
        "    - name: main\n"
        f"{pol}"
        "      backends:\n"
        f"      - host: {upstream}\n"
    )


async def raw_request(port: int, data: bytes, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh connection and return everything read until close/timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(read_timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def client() -> Any:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def read_response(
    reader: asyncio.StreamReader, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length, chunked or close-delimited) from `reader`."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
            if size == 0:
                return status, headers, b"".join(parts)
    return status, headers, await reader.read()
