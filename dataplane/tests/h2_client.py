"""A raw HTTP/2 client for tests (h2 over an asyncio connection to 127.0.0.1).

`H2Client.open(port)` speaks prior-knowledge h2c (or TLS with ALPN h2 given an `ssl` context).
`request(fields, body)` starts a stream; `response(stream_id)` waits for its end and returns the
`Reply` (status, headers, body, trailers, or the reset code). `send_raw` writes arbitrary bytes
(malformed frames, floods) and `closed()` waits until the gateway hangs up; `goaway` holds the
error code of a GOAWAY received. Response data is acknowledged as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclasses.dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    trailers: dict[str, str] = dataclasses.field(default_factory=dict)
    reset: int | None = None
    """The RST_STREAM error code when the stream was reset instead of ending."""


class H2Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.replies: dict[int, Reply] = {}
        self.done: dict[int, asyncio.Event] = {}
        self.goaway: int | None = None
        self.goaway_last_stream: int | None = None
        self._closed = asyncio.Event()
        self._window = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, ssl_context: ssl.SSLContext | None = None, sni: str = "") -> H2Client:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ssl_context, server_hostname=sni or None
            )
        self = cls(reader, writer)
        self.conn.initiate_connection()
        self.flush()
        self._reader_task = asyncio.get_running_loop().create_task(self._read())
        return self

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        authority: str = "gw.test",
        end: bool = True,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *[(k.encode(), v.encode()) for k, v in headers or []],
        ]
        self.replies[sid] = Reply()
        self.done[sid] = asyncio.Event()
        self.conn.send_headers(sid, fields, end_stream=not body and end)
        if body:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send as much as the windows allow right now (tests keep bodies within them)."""
        view = memoryview(body)
        while view:
            size = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            assert size > 0, "request body bigger than the gateway's window"
            self.conn.send_data(sid, view[:size].tobytes())
            view = view[size:]
        if end:
            self.conn.end_stream(sid)
        self.flush()

    async def stream_body(self, sid: int, body: bytes, timeout: float = 20.0) -> None:
        """Send `body` and end the stream, waiting for window updates as flow control requires."""
        view = memoryview(body)
        async with asyncio.timeout(timeout):
            while view:
                size = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if size <= 0:
                    self._window.clear()
                    await self._window.wait()
                    continue
                self.conn.send_data(sid, view[:size].tobytes())
                view = view[size:]
                self.flush()
                await self.writer.drain()
        self.conn.end_stream(sid)
        self.flush()

    async def response(self, sid: int, timeout: float = 10.0) -> Reply:
        async with asyncio.timeout(timeout):
            await self.done[sid].wait()
        return self.replies[sid]

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the gateway closed the connection (within `timeout`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        return self._closed.is_set()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._event(event)
                self.flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self._closed.set()
            self._window.set()
            for event in self.done.values():
                event.set()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            reply = self.replies[event.stream_id]
            for name, value in event.headers:
                if name == b":status":
                    reply.status = int(value)
                else:
                    reply.headers[name.decode()] = value.decode()
        elif isinstance(event, h2.events.DataReceived):
            self.replies[event.stream_id].body += event.data
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.replies[event.stream_id].trailers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h2.events.StreamEnded):
            self.done[event.stream_id].set()
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.replies:
                self.replies[event.stream_id].reset = int(event.error_code)
                self.done[event.stream_id].set()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = int(event.error_code or 0)
            self.goaway_last_stream = event.last_stream_id
            # keep reading: a graceful GOAWAY lets the open streams finish
            self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
