"""Upstream HTTP/2: multiplexed connections to backends whose policy says HTTP2 (gRPC).

In: a target (host, port, TLS spec), request fields (pseudo-headers first) and a body (bytes,
or a `streams.ByteStream` pumped while the response streams back: gRPC's bidirectional calls).
Out: a `Response` whose head is awaited and whose body is a `streams.ByteStream`; trailers
(grpc-status, ...) are in `Response.trailers` once the body ended. Called by `proxy` when
`tables.Target.http2` is set.

Connections: prior-knowledge h2c on plain TCP, ALPN "h2" over TLS (`tls.h2` of the target's
spec; a server that does not pick "h2" is an error). One connection per (host, port, TLS spec)
carries many streams; a second is opened when the server's SETTINGS_MAX_CONCURRENT_STREAMS is
reached, and concurrent callers wait for one connection attempt instead of each opening their
own. A GOAWAY retires a connection: streams it accepted finish, new ones go to a new connection,
and the streams it refused (above its last stream id, or reset with REFUSED_STREAM) are
retryable (`Refused`).

Flow control: request bodies are sent as the server's windows allow (the sender awaits window
updates and the socket's drain); response bodies give credit back to the server only as the
proxy reads them, so a slow client slows the backend's stream, not the connection. `discard`
resets the stream (RST_STREAM CANCEL): the client went away, a deadline passed, or a retry.

Errors: connect failures and TLS problems raise `errors.UpstreamUnavailable` (503); a reset,
a protocol error or a closed connection `errors.UpstreamError` (502); timeouts are applied by
the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import typing
from collections.abc import Hashable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from dataplane import errors, settings, tls
from dataplane.backends import http as upstream
from dataplane.server import http2, streams, transports
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)

STREAM_WINDOW = 1 << 20
"""Initial receive window per stream (response bodies): 1 MiB in flight before the backend waits."""

CONNECTION_WINDOW = 16 << 20
"""Receive window of a whole connection."""

_CLIENT_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None)


class Refused(errors.UpstreamUnavailable):
    """The backend did not process the stream (GOAWAY above it, REFUSED_STREAM): safe to retry."""

    reason = "upstream_refused_stream"


class Response:
    """One stream to a backend: its response head, body and trailers, and the request body's sender."""

    __slots__ = (
        "_conn",
        "_paused",
        "_pump",
        "_unacked",
        "_window_waiter",
        "body",
        "complete",
        "head_received",
        "head_waiter",
        "headers",
        "status",
        "stream_id",
        "trailers",
    )

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.head_received = False
        self.complete = False
        self.head_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.body = streams.ByteStream(self)
        self._paused = False
        self._unacked = 0
        self._pump: asyncio.Task[None] | None = None
        self._window_waiter: asyncio.Future[None] | None = None

    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    # response body flow control (streams.Readable) ------------------------------------------
    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        if self._unacked:
            size, self._unacked = self._unacked, 0
            self._conn.acknowledge(self.stream_id, size)

    # request body ---------------------------------------------------------------------------
    async def send(self, data: bytes, end: bool) -> None:
        """Send request body bytes as the windows allow; `end` closes our side after them."""
        view = memoryview(data)
        conn = self._conn
        while view:
            if self.complete:
                return
            window = conn.window(self.stream_id)
            if window <= 0:
                self._window_waiter = asyncio.get_running_loop().create_future()
                await self._window_waiter
                continue
            conn.send_data(self.stream_id, view[:window].tobytes())
            view = view[window:]
            await conn.drain()
        if end and not self.complete:
            conn.end_stream(self.stream_id)

    def stream_from(self, body: streams.ByteStream, prefix: bytes) -> None:
        """Send `prefix`, then `body` as it arrives, while the response comes back."""
        self._pump = asyncio.get_running_loop().create_task(self._copy(body, prefix))

    async def _copy(self, body: streams.ByteStream, prefix: bytes) -> None:
        try:
            if prefix:
                await self.send(prefix, end=False)
            while chunk := await body.read():
                await self.send(chunk, end=False)
            await self.send(b"", end=True)
        except errors.ClientGone:
            self.discard()  # the client left mid-request: the backend must not wait for the rest
        except errors.ProxyError as exc:
            log.debug("request body to %s stopped: %s", self._conn.label, exc)

    def window_opened(self) -> None:
        waiter = self._window_waiter
        if waiter is not None:
            self._window_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # events from the connection -------------------------------------------------------------
    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        self.head_received = True
        if not self.head_waiter.done():
            self.head_waiter.set_result(None)

    def on_data(self, data: bytes, flow_controlled: int) -> None:
        self.body.feed(data)
        if self._paused:
            self._unacked += flow_controlled
        elif flow_controlled:
            self._conn.acknowledge(self.stream_id, flow_controlled)

    def finish(self) -> None:
        if self.complete:
            return
        self.complete = True
        self.body.feed_eof()
        if not self.head_waiter.done():
            self.head_waiter.set_exception(errors.UpstreamError("upstream response ended without a head"))
        self._stop_pump()

    def fail(self, exc: errors.ProxyError) -> None:
        if self.complete:
            return
        self.complete = True
        if not self.head_waiter.done():
            self.head_waiter.set_exception(exc)
        else:
            self.body.set_exception(exc)
        self._stop_pump()
        self.window_opened()

    def discard(self) -> None:
        """The caller gives up on this response: reset the stream (RST_STREAM CANCEL)."""
        if self.complete:
            return
        self.complete = True
        self.body.detach_source()
        if not self.head_waiter.done():
            self.head_waiter.cancel()
        self._stop_pump()
        self.window_opened()
        self._conn.cancel(self.stream_id)

    def _stop_pump(self) -> None:
        pump = self._pump
        if pump is not None and not pump.done() and pump is not asyncio.current_task():
            pump.cancel()
        self._pump = None


class Connection(asyncio.Protocol):
    """One HTTP/2 connection to a backend, carrying many `Response` streams."""

    def __init__(self, client: Client, key: Hashable, label: str) -> None:
        self._client = client
        self.key = key
        self.label = label
        self.transport: asyncio.Transport | None = None
        self._h2 = http2.connection(_CLIENT_CONFIG)
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
            },
        )
        self._h2.decoder.max_header_list_size = 1 << 20
        self._streams: dict[int, Response] = {}
        self.closed = False
        self.retired = False
        """GOAWAY received (or sent): no new streams."""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the server's first SETTINGS arrived (it speaks HTTP/2)."""
        self.idle_since = time.monotonic()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        transports.tune(transport)
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.retired = True
        self._client.forget(self)
        if not self.ready.done():
            self.ready.set_exception(errors.UpstreamUnavailable(f"{self.label} closed the connection"))
        self._fail_all(
            errors.UpstreamError("upstream closed the connection before the response was complete")
        )
        transports.release(self._drain_waiters, errors.UpstreamError("upstream connection closed"))

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            problem = errors.UpstreamError(f"HTTP/2 protocol error from upstream: {exc}")
            if not self.ready.done():
                self.ready.set_exception(
                    errors.UpstreamUnavailable(f"{self.label} does not speak HTTP/2: {exc}")
                )
            self._send()
            self._fail_all(problem)
            self.close()
            return
        for event in events:
            self._event(event)
        self._send()

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        transports.release(self._drain_waiters)

    # events -----------------------------------------------------------------------------------
    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            resp = self._streams.get(event.stream_id)
            if resp is not None:
                resp.on_data(event.data, event.flow_controlled_length)
            elif event.flow_controlled_length:
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ResponseReceived):
            resp = self._streams.get(event.stream_id)
            if resp is not None:
                status, headers = _split_head(event.headers)
                if status == 0:
                    self._reset(resp, errors.UpstreamError("upstream response without a valid :status"))
                else:
                    resp.on_head(status, headers)
        elif isinstance(event, h2.events.TrailersReceived):
            resp = self._streams.get(event.stream_id)
            if resp is not None:
                resp.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            resp = self._streams.pop(event.stream_id, None)
            if resp is not None:
                resp.finish()
                stream = self._h2.streams.get(event.stream_id)
                if stream is not None and not stream.closed:
                    # The response ended before the request body: stop sending it.
                    self.cancel(event.stream_id)
                self._idle_check()
        elif isinstance(event, h2.events.StreamReset):
            resp = self._streams.pop(event.stream_id, None)
            if resp is not None:
                code = event.error_code
                if code == h2.errors.ErrorCodes.REFUSED_STREAM and not resp.head_received:
                    resp.fail(Refused(f"{self.label} refused the stream"))
                else:
                    resp.fail(errors.UpstreamError(f"upstream reset the stream ({_code_name(code)})"))
                self._idle_check()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
            if isinstance(event, h2.events.RemoteSettingsChanged) or event.stream_id == 0:
                for resp in list(self._streams.values()):
                    resp.window_opened()
            else:
                resp = self._streams.get(event.stream_id)
                if resp is not None:
                    resp.window_opened()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event.last_stream_id or 0, event.error_code)

    def _goaway(self, last_stream_id: int, code: object) -> None:
        """The server retires this connection: streams above `last_stream_id` were never seen
        (retryable); the others may finish."""
        self.retired = True
        self._client.forget(self)
        if not self.ready.done():
            self.ready.set_exception(errors.UpstreamUnavailable(f"{self.label} sent GOAWAY at once"))
        for sid in [s for s in self._streams if s > last_stream_id]:
            self._streams.pop(sid).fail(Refused(f"{self.label} is going away ({_code_name(code)})"))
        self._idle_check()

    def _idle_check(self) -> None:
        if not self._streams:
            self.idle_since = time.monotonic()
            if self.retired:
                self.close()

    def _fail_all(self, exc: errors.ProxyError) -> None:
        pending, self._streams = self._streams, {}
        for resp in pending.values():
            resp.fail(exc)

    def _reset(self, resp: Response, exc: errors.ProxyError) -> None:
        self._streams.pop(resp.stream_id, None)
        resp.fail(exc)
        self.cancel(resp.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)

    # used by Client and Response ------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Can take one more stream now."""
        if self.closed or self.retired:
            return False
        return self._h2.open_outbound_streams < self._h2.remote_settings.max_concurrent_streams

    def open(self, fields: list[tuple[bytes, bytes]], end_stream: bool) -> Response:
        sid = self._h2.get_next_available_stream_id()
        resp = Response(self, sid)
        self._streams[sid] = resp
        try:
            self._h2.send_headers(sid, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            self._streams.pop(sid, None)
            raise errors.UpstreamError(f"cannot send the request to {self.label}: {exc}") from exc
        self._send()
        return resp

    def window(self, stream_id: int) -> int:
        if self.closed:
            raise errors.UpstreamError("upstream connection closed")
        try:
            return min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
        except h2.exceptions.ProtocolError as exc:
            raise errors.UpstreamError(f"the upstream stream closed: {exc}") from exc

    def send_data(self, stream_id: int, data: bytes) -> None:
        try:
            self._h2.send_data(stream_id, data)
        except h2.exceptions.ProtocolError as exc:
            raise errors.UpstreamError(f"the upstream stream closed: {exc}") from exc
        self._send()

    def end_stream(self, stream_id: int) -> None:
        try:
            self._h2.end_stream(stream_id)
        except h2.exceptions.ProtocolError as exc:
            raise errors.UpstreamError(f"the upstream stream closed: {exc}") from exc
        self._send()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if not self.closed:
            self._h2.acknowledge_received_data(size, stream_id)
            self._send()

    def cancel(self, stream_id: int, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset one stream (the caller gave up on it); the connection stays."""
        self._streams.pop(stream_id, None)
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream_id, code)
            self._send()
        self._idle_check()

    async def drain(self) -> None:
        if self.closed:
            raise errors.UpstreamError("upstream connection closed")
        if self._write_paused:
            w = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(w)
            await w

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def _send(self) -> None:
        data = self._h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.retired = True
            self._send()
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class Client:
    """HTTP/2 connections per (host, port, TLS spec), shared by all requests of a worker."""

    def __init__(self, config: settings.Upstream, stats: metrics.Registry) -> None:
        self._config = config
        self._conns: dict[Hashable, list[Connection]] = {}
        self._connecting: dict[Hashable, asyncio.Future[Connection]] = {}
        self._connect_duration = stats.upstream_connect_duration

    async def open(
        self,
        host: str,
        port: int,
        connect_timeout: float | None,
        spec: tls.ClientTls | None,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool,
    ) -> Response:
        """Start a request: a stream on a connection with room (a new one if needed)."""
        spec = tls.h2(spec) if spec is not None else None
        key = (host, port, spec)
        conn = self._pick(key)
        while conn is None:
            pending = self._connecting.get(key)
            if pending is None:
                future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
                self._connecting[key] = future
                try:
                    conn = await self._connect(host, port, connect_timeout, spec, key)
                except BaseException as exc:
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                        future.exception()  # marked retrieved: waiting callers re-raise it
                    else:
                        future.cancel()
                    raise
                finally:
                    self._connecting.pop(key, None)
                self._conns.setdefault(key, []).append(conn)
                future.set_result(conn)
            else:
                await asyncio.shield(pending)
                conn = self._pick(key)
        return conn.open(fields, end_stream)

    def _pick(self, key: Hashable) -> Connection | None:
        conns = self._conns.get(key)
        if not conns:
            return None
        horizon = time.monotonic() - self._config.pool_idle_timeout
        for conn in list(conns):
            if conn.closed or conn.retired:
                conns.remove(conn)
            elif conn.stream_count == 0 and conn.idle_since < horizon:
                conns.remove(conn)
                conn.close()
            elif conn.available:
                return conn
        return None

    async def _connect(
        self, host: str, port: int, connect_timeout: float | None, spec: tls.ClientTls | None, key: Hashable
    ) -> Connection:
        label = upstream.address_label(host, port, spec)
        started = time.monotonic()
        timeout = connect_timeout or self._config.connect_timeout
        loop = asyncio.get_running_loop()
        conn: Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, key, label),
                    host,
                    port,
                    ssl=spec.context() if spec is not None else None,
                    server_hostname=spec.server_hostname if spec is not None else None,
                )
                if spec is not None:
                    self._check_tls(conn, spec, label)
                await conn.ready
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            if conn is not None:
                conn.close()
            raise upstream.connect_error(exc, label, timeout) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._connect_duration.observe((), time.monotonic() - started)
        return conn

    @staticmethod
    def _check_tls(conn: Connection, spec: tls.ClientTls, label: str) -> None:
        transport = conn.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        problem = None
        if spec.checks_names_after_handshake:
            problem = spec.peer_problem(
                transport.get_extra_info("peercert") if transport is not None else None
            )
        if problem is None and (ssl_object is None or ssl_object.selected_alpn_protocol() != "h2"):
            problem = "the server did not agree to HTTP/2 (ALPN h2)"
        if problem is not None:
            conn.close()
            raise errors.UpstreamUnavailable(f"TLS handshake with {label} failed: {problem}")

    def forget(self, conn: Connection) -> None:
        conns = self._conns.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        for conns in self._conns.values():
            for conn in conns:
                conn.close()
        self._conns.clear()


def _split_head(fields: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = 0
    headers = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":status":
                try:
                    status = int(value)
                except ValueError:
                    status = 0
        else:
            headers.append((name, value))
    return status, headers


def _code_name(code: object) -> str:
    try:
        return h2.errors.ErrorCodes(typing.cast(int, code)).name
    except (ValueError, TypeError):
        return str(code)
