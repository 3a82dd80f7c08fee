"""What every connection protocol does with its transport and its write waiters, in one place.

Used by both server protocols (`http1`, `http2`) and both upstream clients (`backends.http`,
`backends.http2`): `tune` once per connection, `release` whenever writers waiting for the
socket to drain may go on (or must fail because the connection is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


def tune(transport: asyncio.BaseTransport) -> tuple[str, int]:
    """Turn Nagle off (a proxy writes whole messages; waiting for ACKs only adds latency) and
    return the peer's (address, port), ("", 0) when the transport has none."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer = transport.get_extra_info("peername")
    return (peer[0], peer[1]) if isinstance(peer, tuple) else ("", 0)


def release(waiters: list[asyncio.Future[None]], exc: BaseException | None = None) -> None:
    """Resolve every pending waiter (with `exc` if given) and empty the list."""
    pending, waiters[:] = list(waiters), []
    for w in pending:
        if not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)
