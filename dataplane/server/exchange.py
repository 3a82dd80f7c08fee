"""The per-request interface the proxy serves, whatever protocol the client speaks.

`Exchange` is what `proxy.Proxy.handle` receives: one request (method, target, headers, body
stream) and the ways to answer it (`respond`, or `start` + `write` + `end`). `http1.Exchange`
(one request on an HTTP/1.1 connection) and `http2.Exchange` (one HTTP/2 stream) both satisfy
it structurally. `Downstream` is what `Exchange.conn` offers the relay: the scheme and write
backpressure (for HTTP/1.1 the connection, for HTTP/2 the stream's own flow control).

Headers are lower-case `list[tuple[bytes, bytes]]`; an HTTP/2 request's `:authority` arrives as
`host` and its other pseudo-headers are removed, so routing and policies see one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from dataplane.server import streams

if TYPE_CHECKING:
    from dataplane.server import http1, http2


class Downstream(Protocol):
    """The client side as the response relay sees it."""

    @property
    def scheme(self) -> str:
        """ "https" on a TLS listener, else "http"."""

    @property
    def sni(self) -> str | None:
        """On a TLS listener, the server name the client sent (None without SNI)."""

    @property
    def write_paused(self) -> bool:
        """The client cannot take more bytes now: `drain` before writing again."""

    async def drain(self) -> None: ...

    def on_resume(self, callback: Callable[[], None]) -> None: ...


class Exchange(Protocol):
    """One request and its response (see the module docstring)."""

    method: str
    path: str
    query: str
    """Without the "?"; policies may rewrite it (ext_authz query mutations)."""
    raw_target: bytes
    authority: str
    headers: list[tuple[bytes, bytes]]
    body: streams.ByteStream
    on_gone: Callable[[], None] | None
    """Set by a callback-driven handler: called if the client leaves before the end."""
    tunnel_prefix: bytes

    @property
    def conn(self) -> Downstream: ...

    @property
    def port(self) -> int: ...

    @property
    def client_addr(self) -> str: ...

    @property
    def client_port(self) -> int: ...

    @property
    def started(self) -> float: ...

    @property
    def version(self) -> bytes:
        """b"1.1", b"1.0" or b"2"."""

    @property
    def upgrade(self) -> bool: ...

    @property
    def status(self) -> int:
        """The response status once the head is decided, else 0."""

    @property
    def head_sent(self) -> bool: ...

    @property
    def ended(self) -> bool: ...

    @property
    def bytes_in(self) -> int: ...

    @property
    def bytes_out(self) -> int: ...

    def header(self, name: str) -> str | None: ...

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None: ...

    def start(self, status: int, headers: list[tuple[bytes, bytes]], content_length: int | None) -> None: ...

    def flush(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def end(self) -> None: ...

    def abort(self) -> None: ...

    def send_continue(self) -> None: ...


Handler = Callable[["http1.Exchange | http2.Exchange"], Coroutine[Any, Any, None] | None]
"""Called per request, synchronously: answers at once (or arranges callbacks that will) and
returns None, or returns a coroutine the connection runs as a task."""


class ServerConnection(Protocol):
    """What the listener asks of every downstream connection (drain and timeouts)."""

    @property
    def busy(self) -> bool: ...

    def begin_drain(self) -> None: ...

    def check_deadline(self, now: float) -> None: ...

    def abort(self) -> None: ...
