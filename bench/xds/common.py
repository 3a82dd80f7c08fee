"""Shared pieces of the xDS benchmark (bench/xds/run.sh): route sets, processes, HTTP, /proc.

- Route sets: one bind, one listener, N routes; route i matches the exact path /r/<i> and answers
  with a directResponse (status 200, body "v<version>"), so no upstream is needed.
- Processes: every process is started in its own session (process group); its PID is appended to
  $BENCH_XDS_PIDFILE so that run.sh can stop it by PID if this Python process dies first, and
  `Procs.stop` stops it by PID (TERM to its group, KILL after 5 s).
- HTTP: a minimal keep-alive HTTP/1.1 client on asyncio streams (no aiohttp in the timed loop),
  and one-shot GETs for readiness and /metrics. Everything goes to 127.0.0.1.

Standard library plus the project's own `api` package (for lowering) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from api import standalone  # noqa: E402
from api.proto.agentgw.v1 import resource_pb2 as pb  # noqa: E402

VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
PROXY = str(VENV_BIN / "agentgw-proxy")
CONTROLLER = str(VENV_BIN / "agentgw-controller")
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[bench-xds {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


# ---- route sets ---------------------------------------------------------------------------------


def route_dict(n: int, port: int) -> dict[str, Any]:
    """The standalone file (as parsed YAML) for `n` direct-response routes on `port`."""
    return {
        "binds": [
            {
                "port": port,
                "listeners": [
                    {
                        "routes": [
                            {
                                "name": f"r{i}",
                                "matches": [{"path": {"exact": f"/r/{i}"}}],
                                "policies": {"directResponse": {"status": 200, "body": "v0"}},
                            }
                            for i in range(n)
                        ]
                    }
                ],
            }
        ]
    }


def route_yaml(n: int, port: int) -> str:
    """The same file as YAML text (what `agentgw-controller --from-file` reads)."""
    lines = ["binds:", f"- port: {port}", "  listeners:", "  - routes:"]
    for i in range(n):
        lines += [
            f"    - name: r{i}",
            f"      matches: [{{path: {{exact: /r/{i}}}}}]",
            "      policies: {directResponse: {status: 200, body: v0}}",
        ]
    return "\n".join(lines) + "\n"


def route_resources(n: int, port: int) -> list[pb.Resource]:
    """Validate and lower the route set exactly as a file would be (minus YAML parsing)."""
    return standalone.lower(standalone.File.model_validate(route_dict(n, port)))


def route_index(resources: Sequence[pb.Resource]) -> dict[int, int]:
    """Route number i (path /r/<i>) -> its position in `resources`."""
    out = {}
    for pos, r in enumerate(resources):
        if r.WhichOneof("kind") == "route":
            out[int(r.route.matches[0].path.exact.rsplit("/", 1)[1])] = pos
    return out


def with_body(resources: list[pb.Resource], pos: int, body: str) -> list[pb.Resource]:
    """A copy of the set in which only the route at `pos` answers `body`: a one-route edit."""
    edited = pb.Resource()
    edited.CopyFrom(resources[pos])
    edited.route.policies.direct_response.body = body.encode()
    out = list(resources)
    out[pos] = edited
    return out


# ---- processes ----------------------------------------------------------------------------------


class Procs:
    """Processes started by this run; each one is stopped by its PID."""

    def __init__(self) -> None:
        self.live: dict[int, subprocess.Popen[bytes]] = {}
        self.pidfile = os.environ.get("BENCH_XDS_PIDFILE")

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, logdir: Path
    ) -> subprocess.Popen[bytes]:
        with open(os.devnull, "wb") as out, open(logdir / f"{name}.log", "ab") as err:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,  # the proxy's JSON access log: one line per poll, not wanted
                stderr=err,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.live[proc.pid] = proc
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write(f"{proc.pid}\n")
        log(f"started {name} (pid {proc.pid}): {' '.join(argv)}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        pid = proc.pid
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                proc.wait()
        # anything left in its group (there should be nothing)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        self.live.pop(pid, None)

    def stop_all(self) -> None:
        for proc in list(self.live.values()):
            self.stop(proc)


def cancel_on_signals() -> None:
    """SIGTERM/SIGINT (run.sh's timeout, Ctrl-C) cancel the calling task, so its `finally:` blocks
    stop the processes it started while the event loop still runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)


def proc_status_kib(pid: int, field: str = "VmRSS") -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@dataclasses.dataclass
class ProxySettings:
    path: Path
    admin: int
    stats: int
    ready: int


def write_proxy_settings(path: Path) -> ProxySettings:
    """A settings-only file (`config:` block) with operator endpoints on free 127.0.0.1 ports."""
    admin, stats, ready = free_ports(3)
    path.write_text(
        "config:\n"
        f"  adminAddr: {HOST}:{admin}\n"
        f"  statsAddr: {HOST}:{stats}\n"
        f"  readinessAddr: {HOST}:{ready}\n"
        "  connectionTerminationDeadline: 1s\n"
        "  connectionMinTerminationDeadline: 0s\n"
    )
    return ProxySettings(path, admin, stats, ready)


def proxy_env(xds_port: int, namespace: str, gateway: str) -> dict[str, str]:
    return {"XDS_ADDRESS": f"{HOST}:{xds_port}", "NAMESPACE": namespace, "GATEWAY": gateway}


# ---- HTTP ---------------------------------------------------------------------------------------


class HttpError(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            raise HttpError("chunked responses are not supported by this client")
    body = await reader.readexactly(length) if length else b""
    return status, body, close


class KeepAlive:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port; reconnects when it breaks."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.reconnects = 0

    async def get(self, path: str, limit: float = 5.0) -> tuple[int, bytes]:
        async with asyncio.timeout(limit):
            for attempt in range(2):
                if self._conn is None:
                    self._conn = await asyncio.open_connection(HOST, self.port)
                    self.reconnects += attempt
                reader, writer = self._conn
                try:
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                    status, body, close = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    self.close()
                    if attempt:
                        raise
                    continue
                if close:
                    self.close()
                return status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


async def http_get(port: int, path: str, limit: float = 2.0) -> tuple[int, bytes]:
    """One GET on a fresh connection."""
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            status, body, _ = await _read_response(reader)
            return status, body
        finally:
            writer.close()


@dataclasses.dataclass
class Readiness:
    answered: float | None = None
    """Monotonic time of the first readiness answer (any status): the process is up."""
    ready: float | None = None
    """Monotonic time of the first 200."""


async def wait_ready(
    proc: subprocess.Popen[bytes], port: int, limit: float, interval: float = 0.005
) -> Readiness:
    """Poll GET /healthz/ready on 127.0.0.1:port until 200; fail if `proc` exits."""
    out = Readiness()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited with {proc.returncode} before it was ready")
        try:
            status, _ = await http_get(port, "/healthz/ready", limit=1.0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError, ValueError):
            status = 0
        now = time.monotonic()
        if status and out.answered is None:
            out.answered = now
        if status == 200:
            out.ready = now
            return out
        await asyncio.sleep(interval)
    raise TimeoutError(f"127.0.0.1:{port}/healthz/ready not 200 after {limit}s")


async def wait_port(proc: subprocess.Popen[bytes], port: int, limit: float) -> float:
    """Wait until 127.0.0.1:port accepts connections; the monotonic time it first did."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        now = time.monotonic()
        writer.close()
        return now
    raise TimeoutError(f"127.0.0.1:{port} not listening after {limit}s")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            total += float(m.group(3))
    return total


# ---- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (with 50 samples p99 is the largest one)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def write_json(path: str | Path, data: object) -> None:
    Path(path).write_text(json.dumps(data, indent=1))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)
