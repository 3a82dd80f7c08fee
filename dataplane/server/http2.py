"""The downstream HTTP/2 server: one asyncio protocol per connection, framed by h2 (sans-IO).

In: the bytes of a connection that began with the client preface (prior-knowledge h2c, handed
over by `listener` after sniffing the first bytes) or that negotiated ALPN "h2" on a TLS
listener. Out: one `Exchange` per stream, handed to the same handler as HTTP/1.1
(`proxy.Proxy.handle`), which answers through it exactly as through an `http1.Exchange`, plus
`end_with_trailers` for gRPC.

Request headers reach the handler lower-case, with `:authority` as `host` and the other
pseudo-headers turned into `method`, `path`, `query`; a CONNECT, a missing `:path` or a Host that
disagrees with `:authority` is answered 400 on its stream. Request bodies are `ByteStream`s fed
from DATA frames; their flow-control credit goes back to the client only as the proxy consumes
them (the stream's window stops the client when the upstream is slow). Response bodies respect
the client's windows: what does not fit waits in the stream's buffer, and `write_paused` (read
through `ex.conn`, the exchange itself) tells the relay to `drain` before writing more.

A response whose head is still held when it ends becomes one HEADERS frame with END_STREAM
(gRPC's "trailers-only" shape: how the gateway's own gRPC errors leave).

Protection: at most `MAX_CONCURRENT_STREAMS` streams (more are refused, REFUSED_STREAM, the
connection lives on), `settings.Limits.max_header_bytes` as
SETTINGS_MAX_HEADER_LIST_SIZE (h2 refuses bigger header blocks) and `max_header_count` (431),
bounded windows, and a budget of control frames (PING, SETTINGS, PRIORITY, RST_STREAM, empty
DATA, unknown frames) refilled at `CONTROL_RATE` per second: a client that exceeds it gets
GOAWAY ENHANCE_YOUR_CALM and is disconnected. A protocol error is a connection error (h2 queues
the GOAWAY); a bad stream is reset without touching the others. The idle timeout closes a
connection with no open stream; `begin_drain` sends GOAWAY, refuses new streams and closes once
the in-flight ones are done.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from dataplane import errors, headerlist, settings
from dataplane.server import exchange, http1, streams, transports

log = logging.getLogger(__name__)

PREFACE: bytes = http1.H2_PREFACE
"""What an HTTP/2 client sends first (RFC 9113 3.4)."""

MAX_CONCURRENT_STREAMS = 100
"""Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)."""

STREAM_WINDOW = 1 << 20
"""Initial per-stream receive window: 1 MiB in flight per upload before the client waits
for the upstream (64 KiB, the protocol default, caps a stream at 64 KiB per round trip)."""

CONNECTION_WINDOW = 16 << 20
"""Receive window of the whole connection: bounds what all its streams buffer together."""

WRITE_HIGH_WATER = 256 * 1024
"""Response bytes a stream may hold beyond the client's window before the relay waits."""

CONTROL_BURST = 500
CONTROL_RATE = 100.0
"""Control-frame budget: a burst of 500, refilled at 100 frames a second. gRPC clients send a
few (settings, keepalive and BDP pings); a flood is cut off within a fraction of a second."""

_REFUSE_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
"""Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2): dropped from responses."""

_SERVER_CONFIG = h2.config.H2Configuration(
    client_side=False, header_encoding=None, validate_outbound_headers=False
)
"""Inbound fields are validated (a CR/LF or a bad pseudo-header must never reach an HTTP/1.1
upstream); outbound validation is skipped: response fields come from a parsed upstream response
or compiled config, and `response_fields` drops the connection-specific ones. It cost ~10% of the
CPU of a proxied HTTP/2 request."""


class GoawayTolerantStateMachine(h2.connection.H2ConnectionStateMachine):
    """h2's connection state machine, except that a GOAWAY (sent or received) does not close it.

    h2 refuses every frame after a GOAWAY, but RFC 9113 6.8 lets the streams at or below its
    last stream id finish (a graceful shutdown, a backend's maximum connection age), and a
    peer may send a PING or SETTINGS right behind it. The owner tracks GOAWAY itself (no new
    streams) and closes the transport when it is done.
    """

    def process_input(self, input_: h2.connection.ConnectionInputs) -> list[h2.events.Event]:
        if input_ in _GOAWAY_INPUTS and self.state != h2.connection.ConnectionState.IDLE:
            return []
        return super().process_input(input_)


_GOAWAY_INPUTS = frozenset(
    {h2.connection.ConnectionInputs.SEND_GOAWAY, h2.connection.ConnectionInputs.RECV_GOAWAY}
)


def connection(config: h2.config.H2Configuration) -> h2.connection.H2Connection:
    """An h2 connection whose state survives GOAWAY (see `GoawayTolerantStateMachine`)."""
    conn = h2.connection.H2Connection(config=config)
    conn.state_machine = GoawayTolerantStateMachine()
    return conn


def response_fields(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Response (or trailer) fields fit for HTTP/2: connection-specific ones dropped."""
    return [h for h in headers if h[0] not in _REFUSE_HEADERS and not (h[0] == b"te" and h[1] != b"trailers")]


class Exchange:
    """One stream: a request and its response (satisfies `exchange.Exchange`; `conn` is the
    stream itself, which carries the `exchange.Downstream` side: scheme and backpressure)."""

    __slots__ = (
        "_end_pending",
        "_ended",
        "_h2c",
        "_out",
        "_paused",
        "_pending_head",
        "_resume_callbacks",
        "_trailers",
        "_unacked",
        "_waiters",
        "authority",
        "body",
        "bytes_out",
        "client_addr",
        "client_port",
        "grpc_status",
        "head_sent",
        "headers",
        "method",
        "on_gone",
        "path",
        "port",
        "query",
        "raw_target",
        "reset",
        "started",
        "status",
        "stream_id",
        "task",
        "te",
        "tunnel_prefix",
    )

    version = b"2"
    upgrade = False

    def __init__(self, h2c: HTTP2Connection, stream_id: int) -> None:
        self._h2c = h2c
        self.stream_id = stream_id
        self.started = time.monotonic()
        self.method = ""
        self.raw_target = b""
        self.path = "/"
        self.query = ""
        self.authority = ""
        self.headers: list[tuple[bytes, bytes]] = []
        self.te: bytes | None = None
        """The request's TE field (b"trailers" from gRPC clients), None without one."""
        self.body: streams.ByteStream = streams.EMPTY
        self.client_addr = h2c.client_addr
        self.client_port = h2c.client_port
        self.port = h2c.port
        self.on_gone: Callable[[], None] | None = None
        self.tunnel_prefix = b""
        self.status = 0
        self.head_sent = False
        self.bytes_out = 0
        self.grpc_status: bytes | None = None
        """The grpc-status this stream's response carried (trailers or trailers-only)."""
        self.reset = False
        """The stream was reset (by the client, or by us): nothing more can be sent."""
        self.task: asyncio.Task[None] | None = None
        self._ended = False
        self._pending_head: list[tuple[bytes, bytes]] | None = None
        self._out = bytearray()
        self._end_pending = False
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._resume_callbacks: list[Callable[[], None]] = []
        self._paused = False
        self._unacked = 0

    # request accessors ----------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        """A request header by lower-case name; repeated headers are joined with ","."""
        return headerlist.get_text(self.headers, name)

    @property
    def bytes_in(self) -> int:
        return self.body.received

    @property
    def ended(self) -> bool:
        return self._ended

    # exchange.Downstream (the relay's view of the client) -------------------------------------
    @property
    def conn(self) -> Exchange:
        return self

    @property
    def scheme(self) -> str:
        return self._h2c.scheme

    @property
    def sni(self) -> str | None:
        return self._h2c.sni

    @property
    def closed(self) -> bool:
        return self.reset or self._h2c.closed

    @property
    def write_paused(self) -> bool:
        return len(self._out) > WRITE_HIGH_WATER or self._h2c.write_paused

    async def drain(self) -> None:
        while self.write_paused:
            if self.closed:
                raise errors.ClientGone("client closed the stream")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        if self.closed:
            raise errors.ClientGone("client closed the stream")

    def on_resume(self, callback: Callable[[], None]) -> None:
        if self.write_paused:
            self._resume_callbacks.append(callback)
        else:
            callback()

    def _wake(self, exc: BaseException | None = None) -> None:
        """Called when buffered bytes left or the stream closed: release waiting writers."""
        if exc is None and self.write_paused:
            return
        transports.release(self._waiters, exc)
        callbacks, self._resume_callbacks = self._resume_callbacks, []
        for cb in callbacks:
            cb()

    # request body flow control (streams.Readable) ---------------------------------------------
    def pause_reading(self) -> None:
        """The body buffer is full: keep the client's credit until the proxy reads it."""
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        if self._unacked:
            size, self._unacked = self._unacked, 0
            self._h2c.acknowledge(self.stream_id, size)

    def received(self, data: bytes, flow_controlled: int) -> None:
        self.body.feed(data)
        if self._paused:
            self._unacked += flow_controlled
        elif flow_controlled:
            self._h2c.acknowledge(self.stream_id, flow_controlled)

    # responding -----------------------------------------------------------------------------
    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """Send a complete response with a known body."""
        if self.method == "HEAD" or status in (204, 304):
            self.start(status, headers, len(body) if self.method == "HEAD" else None)
            self.end()
            return
        self.start(status, headers, len(body) if body else None)  # END_STREAM delimits a body
        if body:
            self.write(body)
        self.end()

    def start(self, status: int, headers: list[tuple[bytes, bytes]], content_length: int | None) -> None:
        """Prepare the response head; it leaves with the first `write`, `flush` or `end`."""
        self.status = status
        self.head_sent = True
        fields = [(b":status", b"%d" % status), *response_fields(headers)]
        if content_length is not None and status not in (204, 304):
            fields.append((b"content-length", b"%d" % content_length))
        self._pending_head = fields

    def flush(self) -> None:
        """Send a held response head now (before waiting for a slow or streaming body)."""
        head = self._pending_head
        if head is not None and not self.closed:
            self._pending_head = None
            self._h2c.send_headers(self.stream_id, head, end_stream=False)

    def write(self, data: bytes) -> None:
        """Queue body bytes; raise ClientGone once the stream is gone (the relay stops)."""
        if self.closed:
            raise errors.ClientGone("client closed the stream")
        if not data or self.method == "HEAD" or self._ended:
            return
        self.flush()
        self.bytes_out += len(data)
        self._out += data
        self._h2c.pump(self)

    def end(self) -> None:
        self._finish(None)

    def end_with_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """End the response with trailer fields (gRPC's grpc-status, grpc-message, ...)."""
        self._finish(response_fields(trailers) if trailers else None)

    def _finish(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        if self._ended:
            return
        self._ended = True
        if self.closed:
            self._h2c.stream_done(self)
            return
        head = self._pending_head
        if head is not None and not self._out:
            self._pending_head = None
            if trailers is None:
                # One HEADERS frame with END_STREAM (gRPC's trailers-only response).
                self._note_grpc(head)
                self._h2c.send_headers(self.stream_id, head, end_stream=True)
                self._h2c.stream_done(self)
                return
            self._h2c.send_headers(self.stream_id, head, end_stream=False)
        if trailers is not None:
            self._note_grpc(trailers)
        self._trailers = trailers
        self._end_pending = True
        self._h2c.pump(self)

    def _note_grpc(self, fields: list[tuple[bytes, bytes]]) -> None:
        for name, value in fields:
            if name == b"grpc-status":
                self.grpc_status = value

    def abort(self) -> None:
        """The response cannot be completed: reset this stream (the connection lives on)."""
        self._ended = True
        self._h2c.reset_stream(self, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def send_continue(self) -> None:
        """HTTP/2 clients do not wait for 100 Continue before sending a body."""

    # used by the connection -------------------------------------------------------------------
    def take_output(self, window: int) -> bytes:
        chunk = bytes(self._out[:window])
        del self._out[:window]
        return chunk

    @property
    def pending_output(self) -> int:
        return len(self._out)

    @property
    def end_pending(self) -> bool:
        return self._end_pending

    def take_trailers(self) -> list[tuple[bytes, bytes]] | None:
        self._end_pending = False
        trailers, self._trailers = self._trailers, None
        return trailers


class HTTP2Connection(asyncio.Protocol):
    """One client connection speaking HTTP/2; streams become `Exchange`s for the handler."""

    def __init__(
        self,
        handler: exchange.Handler,
        limits: settings.Limits,
        port: int,
        registry: set[exchange.ServerConnection],
        scheme: str = "http",
        sni: str | None = None,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self.port = port
        self._registry = registry
        self.scheme = scheme
        self.sni = sni
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._h2 = connection(_SERVER_CONFIG)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self._h2.decoder.max_header_list_size = limits.max_header_bytes
        self._streams: dict[int, Exchange] = {}
        self._blocked: dict[int, Exchange] = {}
        """Streams with response bytes waiting for flow-control window."""
        self.client_addr = ""
        self.client_port = 0
        self.closed = False
        self.write_paused = False
        self._draining = False
        self._goaway_sent = False
        self._budget = float(CONTROL_BURST)
        self._budget_at = self._loop.time()
        self.deadline = self._loop.time() + limits.idle_timeout

    # asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.client_addr, self.client_port = transports.tune(transport)
        self._registry.add(self)
        self._h2.initiate_connection()
        # h2 takes a stream over the limit for a connection error; RFC 9113 5.1.2 wants only
        # that stream refused. The SETTINGS frame just built advertises the limit; h2's own check
        # is lifted once the client acknowledges it, and `_request` refuses the extra streams.
        self._h2.local_settings.max_concurrent_streams = 2**31 - 1
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._registry.discard(self)
        for ex in list(self._streams.values()):
            self._gone(ex)
        self._streams.clear()
        self._blocked.clear()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 queued a GOAWAY with the error code: send it, then hang up.
            log.debug("HTTP/2 protocol error from %s: %s", self.client_addr, exc)
            self._send()
            self.close()
            return
        for event in events:
            self._event(event)
            if self.closed:
                return
        self._send()

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for ex in list(self._streams.values()):
            ex._wake()

    # events -----------------------------------------------------------------------------------
    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            ex = self._streams.get(event.stream_id)
            if ex is None:
                # Data for a stream we already finished: return the connection's credit.
                if event.flow_controlled_length:
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                ex.received(event.data, event.flow_controlled_length)
            if not event.data and event.stream_ended is None:
                self._spend(1)  # empty DATA frames: a classic CPU-burning flood
        elif isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.StreamEnded):
            ex = self._streams.get(event.stream_id)
            if ex is not None:
                ex.body.feed_eof()
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                ex = self._blocked.get(event.stream_id)
                if ex is not None:
                    self.pump(ex)
            else:
                for ex in list(self._blocked.values()):
                    self.pump(ex)
        elif isinstance(event, h2.events.StreamReset):
            self._spend(1)
            ex = self._streams.get(event.stream_id)
            if ex is not None:
                ex.reset = True
                self._gone(ex)
                self.stream_done(ex)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._spend(1)
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                for ex in list(self._blocked.values()):
                    self.pump(ex)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The client's GOAWAY: no new streams from it; finish ours, then close.
            self._draining = True
            if not self._streams:
                self.close()
        elif isinstance(
            event,
            h2.events.PingReceived
            | h2.events.PriorityUpdated
            | h2.events.UnknownFrameReceived
            | h2.events.PingAckReceived,
        ):
            self._spend(1)
        elif isinstance(event, h2.events.TrailersReceived):
            pass  # request trailers are not forwarded; the StreamEnded that follows ends the body

    def _spend(self, frames: int) -> None:
        """Charge the control-frame budget; a client that overdraws it is disconnected."""
        now = self._loop.time()
        self._budget = min(float(CONTROL_BURST), self._budget + (now - self._budget_at) * CONTROL_RATE)
        self._budget_at = now
        self._budget -= frames
        if self._budget < 0:
            log.warning("HTTP/2 client %s exceeded the control frame budget: disconnecting", self.client_addr)
            self._h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            self._send()
            self.abort()

    def _request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self._draining or len(self._streams) >= MAX_CONCURRENT_STREAMS:
            self._h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        ex = Exchange(self, sid)
        self._streams[sid] = ex
        self.deadline = 0.0
        problem = self._fill(ex, event.headers or [])
        if event.stream_ended is None:
            ex.body = streams.ByteStream(ex, self._limits.body_buffer_high_water)
        if problem is not None:
            self._fail(ex, problem)
            return
        try:
            coro = self._handler(ex)
        except errors.ProxyError as exc:
            self._fail(ex, exc)
            return
        except Exception:
            log.exception("unhandled error serving %s %s", ex.method, ex.path)
            self._fail(ex, errors.ProxyError("internal error"))
            return
        if coro is not None and not ex.ended:
            ex.task = self._loop.create_task(self._run(ex, coro))
        elif coro is not None:
            coro.close()

    def _fill(self, ex: Exchange, fields: list[tuple[bytes, bytes]]) -> errors.ProxyError | None:
        """Copy the request's fields into `ex`; return the error to answer with, if any."""
        authority: bytes | None = None
        target = b""
        headers = ex.headers
        for name, value in fields:
            if name[:1] == b":":
                if name == b":method":
                    ex.method = value.decode("ascii", "replace")
                elif name == b":path":
                    target = value
                elif name == b":authority":
                    authority = value
            else:
                headers.append((name, value))
                if name == b"te":
                    ex.te = value
        if len(headers) > self._limits.max_header_count:
            return errors.HeadersTooLarge(f"more than {self._limits.max_header_count} request headers")
        if ex.method == "CONNECT":
            return errors.BadRequest("CONNECT is not supported")
        if not target.startswith(b"/"):
            return errors.BadRequest("the :path pseudo-header must start with '/'")
        hosts = [v for k, v in headers if k == b"host"]
        if authority is not None:
            if any(h != authority for h in hosts):
                return errors.BadRequest("Host does not match :authority")
            if not hosts:
                headers.append((b"host", authority))
        elif len(hosts) > 1:
            return errors.BadRequest("more than one Host header")
        elif hosts:
            authority = hosts[0]
        ex.authority = authority.decode("latin-1") if authority is not None else ""
        ex.raw_target = target
        path, sep, query = target.partition(b"?")
        ex.path = path.decode("latin-1")
        ex.query = query.decode("latin-1") if sep else ""
        return None

    async def _run(self, ex: Exchange, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except errors.ProxyError as exc:
            self._fail(ex, exc)
        except asyncio.CancelledError:
            if not self.closed and not ex.reset:
                raise
        except Exception:
            log.exception("unhandled error serving %s %s", ex.method, ex.path)
            self._fail(ex, errors.ProxyError("internal error"))
        if not ex.ended and not self.closed and not ex.reset:
            self._fail(ex, errors.ProxyError("handler returned without a response"))

    def _fail(self, ex: Exchange, exc: errors.ProxyError) -> None:
        if ex.ended or ex.closed:
            return
        if ex.head_sent:
            ex.abort()
            return
        status, headers, body = errors.response_for_request(exc, ex.header("content-type"))
        ex.respond(status, headers, body)

    def _gone(self, ex: Exchange) -> None:
        """The client left (stream reset or connection lost) before the response ended."""
        gone = errors.ClientGone("client closed the stream")
        if not ex.body.complete:
            ex.body.set_exception(gone)
        ex._wake(gone)
        if not ex.ended:
            task = ex.task
            if task is not None and not task.done():
                task.cancel()
            elif ex.on_gone is not None:
                ex.on_gone()

    # used by Exchange -------------------------------------------------------------------------
    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        try:
            self._h2.send_headers(stream_id, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            # The stream closed under us, or a field HTTP/2 cannot carry: the client must not
            # wait for an answer that will not come.
            log.debug("cannot send headers on stream %d: %s", stream_id, exc)
            ex = self._streams.get(stream_id)
            if ex is not None:
                self.reset_stream(ex, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        self._send()

    def pump(self, ex: Exchange) -> None:
        """Send what the windows allow of `ex`'s buffered body, then its end when all left."""
        if ex.closed:
            return
        sid = ex.stream_id
        h2c = self._h2
        try:
            while ex.pending_output:
                window = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if window <= 0:
                    break
                h2c.send_data(sid, ex.take_output(window))
            if ex.pending_output:
                self._blocked[sid] = ex
            else:
                self._blocked.pop(sid, None)
                if ex.end_pending:
                    trailers = ex.take_trailers()
                    if trailers is not None:
                        h2c.send_headers(sid, trailers, end_stream=True)
                    else:
                        h2c.end_stream(sid)
                    self.stream_done(ex)
        except h2.exceptions.ProtocolError as exc:
            log.debug("cannot send on stream %d: %s", sid, exc)
            self._blocked.pop(sid, None)
            ex.reset = True
            self._gone(ex)
            self.stream_done(ex)
        self._send()
        ex._wake()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if not self.closed:
            self._h2.acknowledge_received_data(size, stream_id)
            self._send()

    def reset_stream(self, ex: Exchange, code: int) -> None:
        if not ex.reset and not self.closed:
            ex.reset = True
            try:
                self._h2.reset_stream(ex.stream_id, code)
            except h2.exceptions.ProtocolError:
                pass  # already closed
            self._send()
        self._gone(ex)
        self.stream_done(ex)

    def stream_done(self, ex: Exchange) -> None:
        """The response ended (or the stream was reset): forget the stream. A client still
        sending its request body is asked to stop (RST_STREAM NO_ERROR, RFC 9113 8.1)."""
        if self._streams.pop(ex.stream_id, None) is None:
            return
        self._blocked.pop(ex.stream_id, None)
        ex.on_gone = None
        if not ex.reset and not ex.body.complete and not self.closed:
            ex.reset = True
            ex.body.set_exception(errors.ClientGone("the response ended before the request body"))
            try:
                self._h2.reset_stream(ex.stream_id, h2.errors.ErrorCodes.NO_ERROR)
            except h2.exceptions.ProtocolError:
                pass
            self._send()
        if not self._streams:
            if self._draining:
                self.close()
            else:
                self.deadline = self._loop.time() + self._limits.idle_timeout

    # transport ----------------------------------------------------------------------------------
    def _send(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._send()
            self.closed = True
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self.closed = True
            self._transport.abort()

    # drain and timeouts (exchange.ServerConnection) -------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._streams)

    def begin_drain(self) -> None:
        """GOAWAY: no new streams; the open ones finish, then the connection closes."""
        if self._draining and self._goaway_sent:
            return
        self._draining = True
        self._goaway()
        if not self._streams:
            self.close()

    def check_deadline(self, now: float) -> None:
        """Called by the listener's sweeper about once a second: close an idle connection."""
        if self.deadline and now > self.deadline and not self._streams:
            self._draining = True
            self._goaway()
            self.close()

    def _goaway(self) -> None:
        """Tell the client (once) that no new stream will be served; open ones may finish."""
        if not self._goaway_sent and not self.closed:
            self._goaway_sent = True
            self._h2.close_connection(h2.errors.ErrorCodes.NO_ERROR)
            self._send()
