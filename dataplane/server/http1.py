"""The downstream HTTP/1.1 server: a uvloop protocol on httptools' llhttp parser.

aiohttp's full server measured 0.18x nginx on this machine, a bare protocol with a C parser
1.48x (docs/benchmarks.md), so the request path uses this thin layer and aiohttp serves only
the admin endpoints.

In: bytes from a client socket. Out: one `Exchange` per request, handed to the handler
coroutine (`proxy.Proxy.handle`) in its own task. The handler answers through the exchange
(`respond`, or `start` + `write` + `end`); the connection takes care of framing (Content-Length,
chunked, close-delimited), keep-alive, pipelining (requests are answered in order), upgrades
(the connection becomes a byte tunnel) and backpressure in both directions.

Protection (settings.Limits): header block size and count (431), header read timeout (408),
idle timeout, conflicting Content-Length / Transfer-Encoding and other parser errors (400 and
close). A request whose body the handler did not read is answered, then the connection closed.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import time
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import httptools

from dataplane import errors, headerlist, settings, tls
from dataplane.server import streams, transports

log = logging.getLogger(__name__)

Handler = Callable[["Exchange"], Coroutine[Any, Any, None] | None]

H2_PREFACE: bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The first bytes of every HTTP/2 connection (RFC 9113 3.4)."""

HandOver = Callable[[asyncio.Transport, bytes, "HTTP1Connection"], None]
"""Takes a connection over as HTTP/2: its transport, the bytes read so far, and the HTTP/1.1
connection it replaces (for the scheme and SNI)."""
"""Called per request, synchronously. It answers at once (or arranges callbacks that will) and
returns None, or returns a coroutine that the connection runs as a task."""

REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"expect"})
"""Headers that framing checks and routing look at; counted as they are parsed."""
_CHUNK_END = b"0\r\n\r\n"

IDLE, READING_HEAD, ACTIVE, CLOSED = 0, 1, 2, 3


def status_line(status: int, version: bytes = b"1.1") -> bytes:
    return b"HTTP/%s %d %s\r\n" % (version, status, REASONS.get(status, b"Unknown"))


def encode_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])


class Exchange:
    """One request and its response on a downstream connection."""

    __slots__ = (
        "_chunked",
        "_ended",
        "_pending_head",
        "authority",
        "body",
        "bytes_out",
        "client_addr",
        "client_port",
        "conn",
        "expect_continue",
        "head_sent",
        "head_size",
        "headers",
        "keep_alive",
        "method",
        "on_gone",
        "path",
        "port",
        "query",
        "raw_target",
        "special",
        "started",
        "status",
        "tunnel_prefix",
        "upgrade",
        "version",
    )

    def __init__(self, conn: HTTP1Connection) -> None:
        self.conn = conn
        self.started = time.monotonic()
        self.method = ""
        self.raw_target = b""
        self.path = "/"
        self.query = ""
        self.version = b"1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.upgrade = False
        self.expect_continue = False
        self.body: streams.ByteStream = streams.EMPTY
        self.client_addr = conn.client_addr
        self.client_port = conn.client_port
        self.port = conn.port
        self.status = 0
        self.head_sent = False
        self.bytes_out = 0
        self.tunnel_prefix = b""
        self._chunked = False
        self._ended = False
        self._pending_head = b""
        self.authority = ""
        """The Host header (or the absolute-form target's authority), decoded once."""
        self.head_size = 0
        self.special = 0
        """Host headers (times 0x100) plus Content-Length / Transfer-Encoding / Expect headers."""
        self.on_gone: Callable[[], None] | None = None
        """Set by a callback-driven handler: called if the client leaves before the end."""

    # request accessors ----------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        """A request header by lower-case name; repeated headers are joined with ","."""
        return headerlist.get_text(self.headers, name)

    @property
    def bytes_in(self) -> int:
        return self.body.received

    # responding -----------------------------------------------------------------------------
    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """Send a complete response with a known body."""
        if self.method == "HEAD" or status in (204, 304) or status < 200:
            payload = b""
        else:
            payload = body
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        self.conn.write(self._head(status, headers) + payload)
        self.bytes_out += len(payload)
        self._ended = True
        self.conn.exchange_done(self)

    def start(self, status: int, headers: list[tuple[bytes, bytes]], content_length: int | None) -> None:
        """Prepare the head of a streamed response; `content_length` None means unknown length.

        The head is held until the first `write`, `end` or `flush`, so a response whose body
        is already here leaves in one socket write (half the syscalls of head-then-body).
        """
        if self.method == "HEAD" or status in (204, 304) or (status < 200 and status != 101):
            if content_length is not None and self.method == "HEAD":
                headers = [*headers, (b"content-length", b"%d" % content_length)]
            self._send_head(status, headers)
            return
        if status == 101:
            # Switching protocols: the head must leave now, before any tunnelled byte (the
            # tunnel writes to the connection directly, not through this exchange).
            self.conn.write(self._head(status, headers))
            return
        if content_length is not None:
            headers = [*headers, (b"content-length", b"%d" % content_length)]
        else:
            if self.version == b"1.1":
                self._chunked = True
                headers = [*headers, (b"transfer-encoding", b"chunked")]
            else:
                self.keep_alive = False
        self._send_head(status, headers)

    def _send_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._pending_head = self._head(status, headers)

    def _head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        self.status = status
        self.head_sent = True
        if status == 101:
            conn_header = b"upgrade"
        else:
            self.keep_alive = self.keep_alive and self.conn.can_keep_alive(self)
            conn_header = b"keep-alive" if self.keep_alive else b"close"
        return status_line(status) + encode_headers(headers) + b"connection: " + conn_header + b"\r\n\r\n"

    def flush(self) -> None:
        """Send a held response head now (before waiting for a slow or streaming body)."""
        if self._pending_head:
            head, self._pending_head = self._pending_head, b""
            self.conn.write(head)

    def write(self, data: bytes) -> None:
        """Send body bytes; raise ClientGone once the client connection is closed, so a relay
        stops pulling the upstream (an endless stream would otherwise be read forever)."""
        if self.conn.closed:
            raise errors.ClientGone("client closed the connection")
        if not data or self.method == "HEAD":
            return
        self.bytes_out += len(data)
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if self._pending_head:
            data, self._pending_head = self._pending_head + data, b""
        self.conn.write(data)

    async def drain(self) -> None:
        await self.conn.drain()

    def end(self, trailers: bytes = b"") -> None:
        if self._ended:
            return
        self._ended = True
        tail = (b"0\r\n%s\r\n" % trailers if trailers else _CHUNK_END) if self._chunked else b""
        if self._pending_head:
            tail, self._pending_head = self._pending_head + tail, b""
        if tail:
            self.conn.write(tail)
        self.conn.exchange_done(self)

    def abort(self) -> None:
        """The response cannot be completed: drop the connection so the client sees it."""
        self._ended = True
        self.keep_alive = False
        self.conn.abort()

    @property
    def ended(self) -> bool:
        return self._ended

    def send_continue(self) -> None:
        if self.expect_continue:
            self.expect_continue = False
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class HTTP1Connection(asyncio.Protocol):
    """One client connection. Parser callbacks fill an Exchange; the handler runs per request."""

    def __init__(
        self,
        handler: Handler,
        limits: settings.Limits,
        port: int,
        registry: set[HTTP1Connection],
        tls_listener: bool = False,
        to_h2: HandOver | None = None,
    ) -> None:
        self._handler = handler
        self._tls_listener = tls_listener
        self._to_h2 = to_h2
        self._sniff = to_h2 is not None and not tls_listener
        """Compare the first bytes with the HTTP/2 preface (plain ports): true until they differ."""
        self._sniffed = b""
        self._limits = limits
        self.port = port
        self._registry = registry
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self.client_addr = ""
        self.client_port = 0
        self.scheme = "http"
        """"https" on a TLS listener (set once per connection, in connection_made)."""
        self.sni: str | None = None
        """On a TLS listener, the server name the client sent (None without SNI): the listener
        whose certificate it got."""
        self._state = IDLE
        self.deadline = 0.0
        self._parsing: Exchange | None = None
        self._current: Exchange | None = None
        self._queue: collections.deque[Exchange] = collections.deque()
        self._url_parts: list[bytes] = []
        self._head_bytes = 0
        self._in_head = False
        self._began = 0
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._upgraded = False
        self._tunnel: Callable[[bytes], None] | None = None
        self._tunnel_closed: Callable[[], None] | None = None
        self._resume_callbacks: list[Callable[[], None]] = []
        self._peer_eof = False
        self._task: asyncio.Task[None] | None = None

    # asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._tls_listener:
            # The handshake is done; the hostname the SNI chose may still refuse the client
            # (client certificate, version).
            ssl_object = transport.get_extra_info("ssl_object")
            why = tls.refusal(ssl_object)
            if why is not None:
                log.debug("TLS connection from %s refused: %s", transport.get_extra_info("peername"), why)
                typing.cast(asyncio.Transport, transport).abort()  # uvloop's are not subclasses
                return
            self.sni = tls.server_name(ssl_object)
            self.scheme = "https"
            if (
                self._to_h2 is not None
                and ssl_object is not None
                and ssl_object.selected_alpn_protocol() == "h2"
            ):
                self._to_h2(typing.cast(asyncio.Transport, transport), b"", self)
                return
        self._transport = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.client_addr, self.client_port = transports.tune(transport)
        self._registry.add(self)
        self._set_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = CLOSED
        self._registry.discard(self)
        gone = errors.ClientGone("client closed the connection")
        for ex in (self._parsing, self._current, *self._queue):
            if ex is not None and not ex.body.complete:
                ex.body.set_exception(gone)
        transports.release(self._drain_waiters, gone)
        if self._tunnel_closed is not None:
            cb, self._tunnel_closed = self._tunnel_closed, None
            cb()
        current, task = self._current, self._task
        if current is not None and not current.ended:
            # Nobody will read the answer: stop waiting for the upstream (a slow first byte
            # from an LLM or a long poll would otherwise hold the upstream request open).
            if task is not None and not task.done():
                task.cancel()
            elif current.on_gone is not None:
                current.on_gone()

    def data_received(self, data: bytes) -> None:
        if self._sniff:
            if self._sniffed:
                data, self._sniffed = self._sniffed + data, b""
            if data[:1] == b"P" and H2_PREFACE.startswith(data[:24]):
                if len(data) >= len(H2_PREFACE):
                    self._hand_over(data)
                    return
                self._sniffed = data  # a partial preface: wait for the rest (the head timeout runs)
                if self._state == IDLE:
                    self._state = READING_HEAD
                    self.deadline = self._loop.time() + self._limits.header_read_timeout
                return
            self._sniff = False
        if self._tunnel is not None:
            self._tunnel(data)
            return
        if self._upgraded:
            # Upgrade requested, upstream not answered yet: hold the early tunnel bytes.
            if self._current is not None:
                self._current.tunnel_prefix += data
            return
        was_idle = self._state == IDLE
        if was_idle:
            self._state = READING_HEAD
            self.deadline = self._loop.time() + self._limits.header_read_timeout
        continuing_head = self._in_head
        self._began = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._upgraded = True
            target = self._current or self._parsing
            if target is not None:
                target.tunnel_prefix += data[offset:]
            return
        except httptools.HttpParserError as exc:
            # Errors raised by our parser callbacks (header limits, framing checks) come back
            # wrapped in HttpParserCallbackError with the original as context.
            cause = exc.__context__
            if isinstance(cause, errors.ProxyError):
                self._reject(cause)
            elif self._state != CLOSED:
                self._reject(errors.BadRequest(f"malformed request: {exc}"))
            return
        except errors.ProxyError as exc:
            self._reject(exc)
            return
        if self._in_head:
            # A head still incomplete after this segment. Count the segment only when all of it
            # is head: the head started before it, or it started a head on an idle connection.
            # (A head that begins after a body in the same segment is counted from the next
            # one: memory stays bounded by the limit plus one read.) Heads that complete are
            # measured exactly in on_headers_complete.
            if (continuing_head and self._began == 0) or (was_idle and self._began == 1):
                self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._reject(
                    errors.HeadersTooLarge(f"request head exceeds {self._limits.max_header_bytes} bytes")
                )

    def _hand_over(self, data: bytes) -> None:
        """The client speaks HTTP/2 (prior knowledge): the connection becomes an HTTP/2 one."""
        transport, to_h2 = self._transport, self._to_h2
        self._sniff = False
        if transport is None or to_h2 is None:
            return
        self._registry.discard(self)
        self._transport = None
        self._state = CLOSED
        to_h2(transport, data, self)

    def eof_received(self) -> bool | None:
        self._peer_eof = True
        if self._tunnel is not None:
            return False  # a tunnel ends with its client: close, and the tunnel with it
        # Nothing in flight: close now. Otherwise half-close: finish that response, then close.
        return self._current is not None or bool(self._queue)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        transports.release(self._drain_waiters)
        callbacks, self._resume_callbacks = self._resume_callbacks, []
        for cb in callbacks:
            cb()

    # parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._state == IDLE:
            self._state = READING_HEAD
            self.deadline = self._loop.time() + self._limits.header_read_timeout
        self._parsing = Exchange(self)
        self._url_parts = []
        self._in_head = True
        self._head_bytes = 0
        self._began += 1

    def on_url(self, url: bytes) -> None:
        self._url_parts.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self._parsing
        assert ex is not None
        name = name.lower()
        ex.headers.append((name, value))
        ex.head_size += len(name) + len(value) + 4
        if name in _SPECIAL:
            if name == b"host":
                ex.authority = value.decode("latin-1")
                ex.special += 0x100  # hosts counted apart: one Host alone needs no checks
            else:
                ex.special += 1
        if len(ex.headers) > self._limits.max_header_count:
            raise errors.HeadersTooLarge(f"more than {self._limits.max_header_count} request headers")

    def on_headers_complete(self) -> None:
        ex = self._parsing
        assert ex is not None
        self._in_head = False
        parser = self._parser
        ex.method = parser.get_method().decode("ascii")
        ex.version = parser.get_http_version().encode()
        ex.keep_alive = parser.should_keep_alive()
        ex.upgrade = parser.should_upgrade()
        target = b"".join(self._url_parts)
        # The exact size of the head as sent (request line, header lines, blank line).
        head_size = len(ex.method) + len(target) + 14 + ex.head_size
        if head_size > self._limits.max_header_bytes:
            raise errors.HeadersTooLarge(f"request head exceeds {self._limits.max_header_bytes} bytes")
        ex.raw_target = target
        path, sep, query = target.partition(b"?")
        if not path.startswith(b"/"):
            if path == b"*" or ex.method == "CONNECT":
                raise errors.BadRequest(f"{ex.method} {path.decode('latin-1')} is not supported")
            authority, path = _origin_form(path)
            # RFC 9112 3.2.2: the target's authority replaces any Host header.
            ex.headers = [h for h in ex.headers if h[0] != b"host"]
            ex.headers.append((b"host", authority))
            ex.authority = authority.decode("latin-1")
        ex.path = path.decode("latin-1")
        ex.query = query.decode("latin-1") if sep else ""
        if ex.special > 0x100 or ex.special & 0xFF:
            self._check_framing(ex)
        if ex.special & 0xFF and self._has_body(ex):
            ex.body = streams.ByteStream(self, self._limits.body_buffer_high_water)
            ex.expect_continue = ex.version == b"1.1" and any(
                k == b"expect" and v.lower() == b"100-continue" for k, v in ex.headers
            )
        self._state = ACTIVE
        self._head_bytes = 0
        if self._current is None:
            self._dispatch(ex)
        else:
            self._queue.append(ex)
            if self._transport is not None and len(self._queue) > 4:
                self._transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        ex = self._parsing
        if ex is not None:
            ex.body.feed(body)

    def on_message_complete(self) -> None:
        ex = self._parsing
        if ex is not None:
            ex.body.feed_eof()
        self._parsing = None

    # framing checks -------------------------------------------------------------------------
    @staticmethod
    def _check_framing(ex: Exchange) -> None:
        """Reject the request-smuggling shapes llhttp lets through."""
        if sum(1 for k, _ in ex.headers if k == b"host") > 1:
            raise errors.BadRequest("more than one Host header")
        lengths = [v for k, v in ex.headers if k == b"content-length"]
        encodings = [v for k, v in ex.headers if k == b"transfer-encoding"]
        if len(set(lengths)) > 1:
            raise errors.BadRequest("conflicting Content-Length headers")
        if lengths and encodings:
            raise errors.BadRequest("both Content-Length and Transfer-Encoding")
        if encodings:
            codings = [c.strip().lower() for v in encodings for c in v.split(b",")]
            if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                raise errors.BadRequest("unsupported Transfer-Encoding")

    @staticmethod
    def _has_body(ex: Exchange) -> bool:
        for k, v in ex.headers:
            if k == b"transfer-encoding":
                return True
            if k == b"content-length":
                return v.strip() not in (b"0", b"")
        return False

    # request lifecycle ----------------------------------------------------------------------
    def _dispatch(self, ex: Exchange) -> None:
        self._current = ex
        self._task = None
        try:
            coro = self._handler(ex)
        except errors.ProxyError as exc:
            self._fail(ex, exc)
            return
        except Exception:
            log.exception("unhandled error serving %s %s", ex.method, ex.path)
            self._fail(ex, errors.ProxyError("internal error"))
            return
        if coro is not None:
            self._task = self._loop.create_task(self._run(ex, coro))

    async def _run(self, ex: Exchange, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except errors.ProxyError as exc:
            self._fail(ex, exc)
        except Exception:
            log.exception("unhandled error serving %s %s", ex.method, ex.path)
            self._fail(ex, errors.ProxyError("internal error"))
        if not ex.ended and self._state != CLOSED:
            self._fail(ex, errors.ProxyError("handler returned without a response"))

    def _fail(self, ex: Exchange, exc: errors.ProxyError) -> None:
        if ex.ended or self._state == CLOSED:
            return
        if ex.head_sent:
            ex.abort()
            return
        status, headers, body = errors.response_for_request(exc, ex.header("content-type"))
        ex.keep_alive = False
        ex.respond(status, headers, body)

    def can_keep_alive(self, ex: Exchange) -> bool:
        """Decided when the response head goes out: unread request bodies and drains close."""
        return not self._closing and not self._upgraded and ex.body.complete

    def exchange_done(self, ex: Exchange) -> None:
        if ex is not self._current:
            return
        self._current = None
        if self._transport is None or self._state == CLOSED:
            return
        if not ex.keep_alive or ex.status == 101:
            if ex.status != 101:
                self.close()
            return
        if self._queue:
            nxt = self._queue.popleft()
            self._transport.resume_reading()
            self._dispatch(nxt)
        elif self._parsing is not None and self._parsing is not ex:
            # The next request's head is partly here: its header-read clock starts now.
            self._state = READING_HEAD
            self.deadline = self._loop.time() + self._limits.header_read_timeout
        else:
            self._set_idle()

    def _set_idle(self) -> None:
        self._state = IDLE
        self.deadline = self._loop.time() + self._limits.idle_timeout

    def _reject(self, exc: errors.ProxyError) -> None:
        """Answer a request the parser refused, then close: the stream position is unknown."""
        if self._transport is None or self._state == CLOSED:
            return
        if self._current is None or not self._current.head_sent:
            status, headers, body = errors.response_for(exc)
            self.write(
                status_line(status)
                + encode_headers(headers)
                + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                + body
            )
        self.close()

    # used by Exchange and the proxy ---------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._transport is not None and self._state != CLOSED:
            self._transport.write(data)

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    @property
    def closed(self) -> bool:
        return self._state == CLOSED

    async def drain(self) -> None:
        if self._state == CLOSED:
            raise errors.ClientGone("client closed the connection")
        if self._write_paused:
            w = self._loop.create_future()
            self._drain_waiters.append(w)
            await w

    def on_resume(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the client's socket accepts writes again."""
        if self._write_paused:
            self._resume_callbacks.append(callback)
        else:
            callback()

    def pause_reading(self) -> None:
        if self._transport is not None and self._state != CLOSED:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self._state != CLOSED:
            self._transport.resume_reading()

    def start_tunnel(self, forward: Callable[[bytes], None], closed: Callable[[], None]) -> None:
        """After a 101: every byte from the client goes to `forward`; `closed` runs at EOF."""
        self._tunnel = forward
        self._tunnel_closed = closed
        self._state = ACTIVE
        self.deadline = 0.0
        if self._peer_eof or self._transport is None or self._transport.is_closing():
            # The client went away while the upgrade was pending: end the tunnel right away.
            self.close()
            cb, self._tunnel_closed = self._tunnel_closed, None
            if cb is not None:
                cb()
            return
        self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None and self._state != CLOSED:
            self._state = CLOSED
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._state = CLOSED
            self._transport.abort()

    # drain and timeouts ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._current is not None or self._state == READING_HEAD

    def begin_drain(self) -> None:
        """Stop keep-alive: idle connections close now, busy ones after their response."""
        self._closing = True
        if not self.busy:
            self.close()

    def check_deadline(self, now: float) -> None:
        """Called by the server's sweeper about once a second."""
        if self.deadline and now > self.deadline and self._state in (IDLE, READING_HEAD):
            if self._state == READING_HEAD and self._current is None:
                self._reject(errors.RequestTimeout("request head not received in time"))
            else:
                self.close()


def _origin_form(target: bytes) -> tuple[bytes, bytes]:
    """Split an absolute-form target ("http://host/path") into (authority, path)."""
    scheme_end = target.find(b"://")
    if scheme_end < 0 or target[:scheme_end].lower() not in (b"http", b"https"):
        raise errors.BadRequest("request target must start with '/' or 'http://'")
    slash = target.find(b"/", scheme_end + 3)
    authority = target[scheme_end + 3 : slash if slash >= 0 else len(target)]
    authority = authority.rpartition(b"@")[2]  # userinfo is never forwarded
    if not authority:
        raise errors.BadRequest("absolute-form request target without a host")
    return authority, (target[slash:] if slash >= 0 else b"/")
