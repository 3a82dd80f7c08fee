"""A real grpcio server for gRPC tests: service `test.Echo` with generic handlers on raw bytes.

Methods (requests and responses are bytes, no generated stubs):

- `Unary`: answers `echo:` + the request; sends initial metadata `x-init: 1` and trailing
  metadata `x-trail: <the request's x-req>`; a request `fail:<text>` ends with NOT_FOUND and
  the message `<text>`; `sleep:<seconds>` waits first (and records a cancelled call).
- `ServerStream`: the request is a count N; answers N messages b"0", b"1", ...
- `ClientStream`: answers the number of messages and bytes it received, b"<n>/<bytes>".
- `Bidi`: answers each message upper-cased as it arrives.

`EchoServer.start(tls=leaf)` serves TLS (ALPN h2) instead of plaintext h2c; `options` are
grpcio server options (e.g. a maximum connection age, so the server sends GOAWAY).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from dataplane.tests import certs

SERVICE = "test.Echo"
MAX_MESSAGE = 32 * 1024 * 1024
OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]


class EchoServer:
    def __init__(self) -> None:
        self.port = 0
        self.cancelled = asyncio.Event()
        """Set when a call was cancelled under the handler (the proxy reset its stream)."""
        self.calls = 0
        self._server: grpc.aio.Server | None = None

    @classmethod
    async def start(
        cls, tls: certs.Leaf | None = None, options: list[tuple[str, int]] | None = None
    ) -> EchoServer:
        self = cls()
        server = grpc.aio.server(options=[*OPTIONS, *(options or [])])
        server.add_generic_rpc_handlers((self._handlers(),))
        if tls is None:
            self.port = server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
            self.port = server.add_secure_port("127.0.0.1:0", creds)
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _handlers(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self._unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self._server_stream),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self._client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self._bidi),
            },
        )

    async def _unary(self, request: bytes, context: Any) -> bytes:
        self.calls += 1
        metadata = dict(context.invocation_metadata())
        await context.send_initial_metadata((("x-init", "1"),))
        context.set_trailing_metadata((("x-trail", metadata.get("x-req", "")),))
        if request.startswith(b"fail:"):
            await context.abort(grpc.StatusCode.NOT_FOUND, request[5:].decode())
        if request.startswith(b"sleep:"):
            try:
                await asyncio.sleep(float(request[6:]))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return b"echo:" + request

    async def _server_stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield b"%d" % i

    async def _client_stream(self, requests: AsyncIterator[bytes], context: Any) -> bytes:
        count = size = 0
        async for message in requests:
            count += 1
            size += len(message)
        return b"%d/%d" % (count, size)

    async def _bidi(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message.upper()
