"""Fixed-rate HTTP/1.1 GET load for latency measurement, used by run.sh when `hey` is not installed.

Opens C keep-alive connections to a loopback URL and sends R requests/s in total for D seconds:
connection k sends its i-th request at t0 + (i*C + k)/R, or at once if it is running late. Latency is
measured from the send to the end of the response body. Prints a summary in hey's text format (the
lines bench/http/report.py reads). Standard library only.

Usage: fixed_rate.py --duration 10 --connections 10 --rate 1000 http://127.0.0.1:PORT/
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import socket
import sys
import time
import urllib.parse


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _connection(
    k: int,
    args: argparse.Namespace,
    host: str,
    port: int,
    request: bytes,
    t0: float,
    latencies: list[float],
    codes: collections.Counter[int],
    errors: collections.Counter[str],
) -> None:
    end = t0 + args.duration
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    i = 0
    while True:
        due = t0 + (k + i * args.connections) / args.rate
        if due >= end:
            break
        i += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
                conn[1].get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader, writer = conn
            start = time.perf_counter()
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), 5)
            latencies.append(time.perf_counter() - start)
            codes[status] += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            if conn is not None:
                conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def run(args: argparse.Namespace) -> int:
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname or "", url.port or 80
    if url.scheme != "http" or not ipaddress.ip_address(host).is_loopback:
        print("fixed_rate.py: only http:// URLs on a loopback address", file=sys.stderr)
        return 2
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: fixed_rate.py\r\n\r\n".encode()
    latencies: list[float] = []
    codes: collections.Counter[int] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    t0 = time.perf_counter() + 0.05
    await asyncio.gather(
        *(
            _connection(k, args, host, port, request, t0, latencies, codes, errors)
            for k in range(args.connections)
        )
    )
    total = time.perf_counter() - t0
    latencies.sort()

    def pct(p: int) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    print("Summary:")
    print(f"  Total:\t{total:.4f} secs")
    print(f"  Requests/sec:\t{len(latencies) / total:.4f}")
    if latencies:
        print("\nLatency distribution:")
        for p in (10, 25, 50, 75, 90, 95, 99):
            print(f"  {p}% in {pct(p):.4f} secs")
    print("\nStatus code distribution:")
    for code, count in sorted(codes.items()):
        print(f"  [{code}]\t{count} responses")
    if errors:
        print("\nError distribution:")
        for name, count in errors.most_common():
            print(f"  [{count}]\t{name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--connections", type=int, default=10, help="keep-alive connections")
    parser.add_argument("--rate", type=float, default=1000.0, help="total requests per second")
    parser.add_argument("url")
    args = parser.parse_args()
    if not (0 < args.duration <= 600 and 0 < args.connections <= 1000 and 0 < args.rate <= 100_000):
        parser.error("duration must be in (0, 600], connections in (0, 1000], rate in (0, 100000]")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
