"""Upstream HTTP/1.1: pooled keep-alive connections and one request/response exchange on them.

In: a target (host, port), a request head, a body stream. Out: an `UpstreamResponse` whose
head is awaited and whose body is a `streams.ByteStream`. Called by `proxy` for the primary
request, retries and mirrors.

Pooling: idle connections per (host, port, TLS spec), newest first; one that has been idle past
`pool_idle_timeout`, or closed by the peer, is discarded on checkout. A request that fails on a
reused connection before any response byte arrives is retried once on a fresh connection when
its body can be replayed (the peer may have closed the idle connection as we wrote).

TLS: `tls` is False/None (plain TCP), True (system trust, SNI and verification against the
host) or a `tls.ClientTls` (custom roots, client certificate, SNI override, SAN list, insecure
modes). The spec is part of the pool key, so connections made with different client
certificates or trust are never shared.

Errors: connect failures raise `errors.UpstreamUnavailable` (503), a reset or malformed response
`errors.UpstreamError` (502); timeouts are applied by the caller.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import ssl
import time
import typing
from collections.abc import Hashable

import httptools

from dataplane import errors, settings, tls
from dataplane.server import streams, transports
from dataplane.telemetry import metrics

_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


TlsArg = bool | tls.ClientTls | None
"""What callers pass as `tls`: falsy for plain TCP, True for system trust, or a spec."""


def _spec(host: str, tls_arg: TlsArg) -> tls.ClientTls | None:
    if not tls_arg:
        return None
    if tls_arg is True:
        return tls.system(host)
    return tls_arg


def _key(host: str, port: int, spec: tls.ClientTls | None) -> Hashable:
    """Pool key: plain and TLS connections, and connections of different TLS specs, never mix."""
    return (host, port, spec)


def address_label(host: str, port: int, spec: tls.ClientTls | None) -> str:
    """The address as errors name it."""
    return f"{host}:{port}" if spec is None else f"tls:{host}:{port}"


def connect_error(exc: OSError, where: str, timeout: float) -> errors.UpstreamUnavailable:
    """What a failed connect to an upstream (timeout, refusal, TLS handshake) answers: 503.
    `where` is the `address_label`."""
    if isinstance(exc, TimeoutError):
        return errors.UpstreamUnavailable(f"connect to {where} timed out after {timeout:g}s")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return errors.UpstreamUnavailable(
            f"TLS handshake with {where} failed: certificate verify failed: {exc.verify_message}"
        )
    if isinstance(exc, ssl.SSLError):
        return errors.UpstreamUnavailable(f"TLS handshake with {where} failed: {exc.reason or exc}")
    return errors.UpstreamUnavailable(f"connect to {where} failed: {exc.strerror or exc}")


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream, reused across exchanges while keep-alive holds."""

    def __init__(self, pool: Pool, key: Hashable) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._response: Response | None = None
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._upgraded = False
        self._tunnel: streams.ByteStream | None = None
        self._producer: streams.Readable | None = None

    # asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        transports.tune(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        resp = self._response
        if self._tunnel is not None:
            self._tunnel.feed_eof()
        if resp is not None and not resp.complete:
            if resp.head_received and resp.close_delimited:
                resp.finish(keep_alive=False)
            else:
                resp.fail(
                    errors.UpstreamError("upstream closed the connection before the response was complete")
                )
        transports.release(self._drain_waiters, errors.UpstreamError("upstream connection closed"))

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.feed(data)
            return
        resp = self._response
        if resp is None:
            # Bytes with no request outstanding: the connection is out of sync.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._upgraded = True
            self._tunnel = streams.ByteStream(self)
            self._tunnel.feed(data[offset:])
        except httptools.HttpParserError as exc:
            resp.fail(errors.UpstreamError(f"malformed response from upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._producer is not None:
            self._producer.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        transports.release(self._drain_waiters)
        if self._producer is not None:
            self._producer.resume_reading()

    # parser callbacks -----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self._response
        if resp is not None:
            name = name.lower()
            resp.headers.append((name, value))
            if name in _FRAMING:
                resp.framed = True
                if name == b"content-length":
                    resp.length = value

    def on_headers_complete(self) -> None:
        resp = self._response
        if resp is None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            resp.headers = []  # interim response (100 Continue): wait for the final one
            resp.framed = False
            resp.length = None
            return
        resp.status = status
        resp.keep_alive = self._parser.should_keep_alive()
        resp.head_received = True
        resp.close_delimited = not resp.framed
        if resp.head_only or status in (204, 304) or status == 101:
            resp.close_delimited = False
        resp.on_head()
        if resp.head_only and status != 101 and not resp.complete:
            # HEAD: llhttp cannot know there is no body; end here and never reuse the connection.
            resp.finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        resp = self._response
        if resp is not None:
            resp.on_body(body)

    def on_message_complete(self) -> None:
        resp = self._response
        if resp is not None and resp.head_received and not resp.complete:
            resp.finish(keep_alive=resp.keep_alive and not self._upgraded)

    # used by the exchange -------------------------------------------------------------------
    def begin(self, resp: Response) -> None:
        self._response = resp

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise errors.UpstreamError("upstream connection closed")
        if self._write_paused:
            w = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(w)
            await w

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def released(self, keep_alive: bool) -> None:
        self._response = None
        if keep_alive and not self.closed:
            self._pool.put(self)
        else:
            self.close()

    def set_producer(self, producer: streams.Readable) -> None:
        """Tunnels: whoever `write`s to this connection without awaiting `drain` (the client
        side of a tunnel) is paused while the upstream socket's write buffer is full."""
        self._producer = producer
        if self._write_paused:
            producer.pause_reading()

    def take_tunnel(self) -> streams.ByteStream:
        """After a 101: the bytes the upstream sends from now on."""
        if self._tunnel is None:
            self._tunnel = streams.ByteStream(self)
        return self._tunnel

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response(abc.ABC):
    """What an upstream connection reports one response to. Two kinds exist:

    - `UpstreamResponse`: for coroutines; the head is a future, the body a `streams.ByteStream`.
    - `proxy.FastRelay`: the request path's fast lane; callbacks write straight to the client.

    The connection fills `status`, `headers`, `keep_alive`, `head_received`, `close_delimited`,
    then calls `on_head`, `on_body` per chunk, and `finish` or `fail` once.
    """

    __slots__ = (
        "close_delimited",
        "complete",
        "conn",
        "framed",
        "head_only",
        "head_received",
        "headers",
        "keep_alive",
        "length",
        "status",
    )

    def __init__(self, conn: UpstreamConnection, head_only: bool) -> None:
        self.conn = conn
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.head_received = False
        self.close_delimited = False
        self.framed = False
        """Content-Length or Transfer-Encoding seen: the body is not delimited by close."""
        self.complete = False
        self.head_only = head_only
        self.length: bytes | None = None

    @abc.abstractmethod
    def on_head(self) -> None: ...

    @abc.abstractmethod
    def on_body(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def finish(self, keep_alive: bool) -> None: ...

    @abc.abstractmethod
    def fail(self, exc: errors.ProxyError) -> None: ...

    def content_length(self) -> int | None:
        if self.length is None:
            return None
        try:
            return int(self.length)
        except ValueError:
            return None


class UpstreamResponse(Response):
    """The response to one upstream request, awaited by a coroutine: head future, body stream."""

    __slots__ = ("body", "head_waiter")

    def __init__(self, conn: UpstreamConnection, head_only: bool) -> None:
        super().__init__(conn, head_only)
        self.head_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.body = streams.ByteStream(conn)
        conn.begin(self)

    def on_head(self) -> None:
        if not self.head_waiter.done():
            self.head_waiter.set_result(None)

    def on_body(self, chunk: bytes) -> None:
        self.body.feed(chunk)

    def finish(self, keep_alive: bool) -> None:
        self.complete = True
        self.body.feed_eof()
        if not self.head_waiter.done():
            self.head_waiter.set_exception(errors.UpstreamError("upstream response ended without a head"))
        if self.status == 101:
            return  # the connection now carries the tunnel: its user closes it, never the pool
        self.conn.released(keep_alive and not self.head_only)

    def fail(self, exc: errors.ProxyError) -> None:
        if self.complete:
            return
        self.complete = True
        if not self.head_waiter.done():
            self.head_waiter.set_exception(exc)
        else:
            self.body.set_exception(exc)
        self.conn.released(False)

    def discard(self) -> None:
        """The caller gives up on this response (retry, timeout, client gone)."""
        if not self.complete:
            self.complete = True
            self.body.detach_source()
            if not self.head_waiter.done():
                self.head_waiter.cancel()
            self.conn.released(False)


class Pool:
    """Idle upstream connections per (host, port, TLS spec)."""

    def __init__(self, config: settings.Upstream, stats: metrics.Registry) -> None:
        self._config = config
        self._idle: dict[Hashable, collections.deque[UpstreamConnection]] = {}
        self._connect_duration = stats.upstream_connect_duration
        self._loop = asyncio.get_running_loop()

    def take_idle(self, host: str, port: int, tls: TlsArg = False) -> UpstreamConnection | None:
        """An idle pooled connection, or None — without waiting (the request path's fast lane)."""
        idle = self._idle.get((host, port, _spec(host, tls) if tls else None))
        if idle:
            horizon = self._loop.time() - self._config.pool_idle_timeout
            while idle:
                conn = idle.pop()
                if not conn.closed and conn.idle_since >= horizon:
                    conn.reused = True
                    return conn
                conn.close()
        return None

    async def acquire(
        self, host: str, port: int, connect_timeout: float | None, tls: TlsArg = False
    ) -> UpstreamConnection:
        conn = self.take_idle(host, port, tls)
        if conn is not None:
            return conn
        return await self.connect(host, port, connect_timeout, tls)

    async def connect(
        self, host: str, port: int, connect_timeout: float | None, tls: TlsArg = False
    ) -> UpstreamConnection:
        """A new connection; with `tls`, verified as its spec says (True: system CAs, `host`)."""
        spec = _spec(host, tls)
        key = _key(host, port, spec)
        label = address_label(host, port, spec)
        started = time.monotonic()
        timeout = connect_timeout or self._config.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self._loop.create_connection(
                    lambda: UpstreamConnection(self, key),
                    host,
                    port,
                    ssl=spec.context() if spec is not None else None,
                    server_hostname=spec.server_hostname if spec is not None else None,
                )
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            raise connect_error(exc, label, timeout) from exc
        if spec is not None and spec.checks_names_after_handshake:
            transport = conn.transport
            problem = spec.peer_problem(
                transport.get_extra_info("peercert") if transport is not None else None
            )
            if problem is not None:
                conn.abort()
                raise errors.UpstreamUnavailable(f"TLS handshake with {label} failed: {problem}")
        self._connect_duration.observe((), time.monotonic() - started)
        return conn

    def put(self, conn: UpstreamConnection) -> None:
        idle = self._idle.setdefault(conn.key, collections.deque())
        if len(idle) >= self._config.pool_max_idle:
            conn.close()
            return
        conn.idle_since = self._loop.time()
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.key)
        if idle:
            try:
                idle.remove(conn)
            except ValueError:
                pass

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    @property
    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())
