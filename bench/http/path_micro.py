"""Micro-benchmark of the proxy's own CPU per plain request, without sockets: µs per request.

One `HTTP1Connection` (the client side) and one pooled `UpstreamConnection` are wired to fake
transports that record what is written. Each iteration feeds a request to the client side,
checks the proxy wrote the upstream request, feeds the upstream's response and checks it reached
the client: the whole fast lane (parse, route, request head, relay, metrics, one access-log line
to /dev/null), minus the kernel. The machine's noise hardly touches it, unlike wrk's numbers, so
it is the number to compare when changing the request path:

    .venv/bin/python bench/http/path_micro.py            # the modules as installed
    AGENTGW_PURE=1 .venv/bin/python bench/http/path_micro.py   # the same, from source
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from typing import Any

import uvloop

from api import standalone
from dataplane import accel, runtime, settings
from dataplane.backends import http as upstream
from dataplane.server import http1

ITERATIONS = int(os.environ.get("PATH_MICRO_ITERATIONS", "20000"))
RUNS = 5
UP_PORT = 9

CONFIG = f"""
binds:
- port: 18999
  listeners:
  - routes:
    - backends:
      - host: 127.0.0.1:{UP_PORT}
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18999\r\n\r\n"
BODY = b'{"id":"bench-0001","object":"chat.completion","model":"bench","choices":[{"index":0}]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 16:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(BODY), BODY)
)


class FakeTransport:
    """Records writes; enough of asyncio.Transport for both connection classes."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.out: list[bytes] = []
        self._peer = peer
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def measure() -> list[float]:
    devnull = os.open(os.devnull, os.O_WRONLY)
    worker = runtime.Worker(settings.Settings(), access_log_fd=devnull, host="127.0.0.1")
    problems = await worker.apply(standalone.lower(standalone.load(CONFIG)))
    assert not problems, problems
    await worker.listeners.sync(set())  # no real sockets: the fake transports stand in
    client = http1.HTTP1Connection(worker.proxy.handle, worker.settings.limits, 18999, set())
    down = FakeTransport(("127.0.0.1", 40000))
    client.connection_made(down)  # type: ignore[arg-type]
    up_conn = upstream.UpstreamConnection(worker.pool, ("127.0.0.1", UP_PORT, None))
    up = FakeTransport(("127.0.0.1", UP_PORT))
    up_conn.connection_made(up)  # type: ignore[arg-type]
    worker.pool.put(up_conn)

    def one() -> None:
        client.data_received(REQUEST)
        assert up.out, "the proxy did not write to the upstream (fast lane not taken?)"
        up.out.clear()
        up_conn.data_received(RESPONSE)
        assert down.out and down.out[-1].endswith(BODY), down.out
        down.out.clear()

    for _ in range(2_000):
        one()
    runtime.tune_gc()  # as the worker does at start-up
    if os.environ.get("PATH_MICRO_CYCLES"):
        gc.disable()
        gc.collect()
        for _ in range(1_000):
            one()
        print(f"garbage cycles: {gc.collect() / 1000:.1f} objects per request")
        gc.enable()
    results = []
    for _ in range(RUNS):
        started = time.process_time()
        for _ in range(ITERATIONS):
            one()
        results.append((time.process_time() - started) / ITERATIONS * 1e6)
    worker.access_log.flush()
    os.close(devnull)
    return results


def main() -> None:
    results = uvloop.run(measure())
    print(
        f"request path: {min(results):.1f} µs/request (best of {RUNS} x {ITERATIONS:,}, "
        f"median {statistics.median(results):.1f}; "
        f"runs {', '.join(f'{r:.1f}' for r in results)}; request path {accel.STATE})"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
