"""Real ext_authz servers for tests: Envoy's gRPC Authorization service and an HTTP one.

Both listen on 127.0.0.1 (port chosen by the kernel), record what they receive and answer
what the test programs:

    grpc_server = await GrpcAuthzServer.start()
    grpc_server.decide = lambda request: allow(headers=[("x-user", "alice")])
    ... grpc_server.requests[-1].attributes.request.http.headers ...
    await grpc_server.stop()

    http_server = await HttpAuthzServer.start()
    http_server.answer = HttpAnswer(status=401, headers=[("www-authenticate", "Bearer")], body=b"no")
    ... http_server.requests[-1].headers ...
    await http_server.stop()

`delay` (seconds) makes either server slow, for timeout tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import grpc
from aiohttp import web

from api.proto.envoy.service.auth.v3 import common_pb2, external_auth_pb2, external_auth_pb2_grpc

Decision = Callable[[external_auth_pb2.CheckRequest], external_auth_pb2.CheckResponse]


def option(
    name: str, value: str, append: bool | None = None, action: int = 0, keep_empty: bool = False
) -> common_pb2.HeaderValueOption:
    opt = common_pb2.HeaderValueOption(
        header=common_pb2.HeaderValue(key=name, value=value),
        append_action=action,
        keep_empty_value=keep_empty,
    )
    if append is not None:
        opt.append.value = append
    return opt


def allow(
    headers: list[common_pb2.HeaderValueOption] | None = None,
    remove: list[str] | None = None,
    response_headers: list[common_pb2.HeaderValueOption] | None = None,
    metadata: dict[str, Any] | None = None,
    query_set: dict[str, str] | None = None,
    query_remove: list[str] | None = None,
) -> external_auth_pb2.CheckResponse:
    """An OK CheckResponse with the given mutations."""
    response = external_auth_pb2.CheckResponse(status=common_pb2.Status(code=0))
    ok = response.ok_response
    ok.SetInParent()
    ok.headers.extend(headers or [])
    ok.headers_to_remove.extend(remove or [])
    ok.response_headers_to_add.extend(response_headers or [])
    for key, value in (query_set or {}).items():
        ok.query_parameters_to_set.add(key=key, value=value)
    ok.query_parameters_to_remove.extend(query_remove or [])
    if metadata is not None:
        response.dynamic_metadata.update(metadata)
    return response


def deny(
    status: int = 0,
    headers: list[common_pb2.HeaderValueOption] | None = None,
    body: str = "",
    code: int = 7,
    metadata: dict[str, Any] | None = None,
) -> external_auth_pb2.CheckResponse:
    """A denying CheckResponse (gRPC code 7 PERMISSION_DENIED) with a DeniedHttpResponse."""
    response = external_auth_pb2.CheckResponse(status=common_pb2.Status(code=code, message="denied"))
    denied = response.denied_response
    denied.SetInParent()
    if status:
        denied.status.code = status
    denied.headers.extend(headers or [])
    denied.body = body
    if metadata is not None:
        response.dynamic_metadata.update(metadata)
    return response


class _Servicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, owner: GrpcAuthzServer) -> None:
        self.owner = owner

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: Any
    ) -> external_auth_pb2.CheckResponse:
        owner = self.owner
        owner.requests.append(request)
        if owner.delay:
            await asyncio.sleep(owner.delay)
        if owner.abort_code is not None:
            await context.abort(owner.abort_code, "scripted failure")
        return owner.decide(request)


class GrpcAuthzServer:
    """Envoy's Authorization service on 127.0.0.1 with a programmable decision."""

    def __init__(self) -> None:
        self.requests: list[external_auth_pb2.CheckRequest] = []
        self.decide: Decision = lambda _request: allow()
        self.delay = 0.0
        self.abort_code: grpc.StatusCode | None = None
        """When set, Check fails with this gRPC status instead of answering."""
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @classmethod
    async def start(cls, port: int = 0) -> GrpcAuthzServer:
        self = cls()
        server = grpc.aio.server()
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)


@dataclasses.dataclass
class HttpAnswer:
    status: int = 200
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytes = b""


@dataclasses.dataclass
class HttpCheck:
    """One check request as the HTTP server received it (header names lower-case)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name]
        return ",".join(found) if found else None


class HttpAuthzServer:
    """An HTTP authorization service on 127.0.0.1 (aiohttp) with a programmable answer."""

    def __init__(self) -> None:
        self.requests: list[HttpCheck] = []
        self.answer = HttpAnswer()
        self.delay = 0.0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @classmethod
    async def start(cls, port: int = 0) -> HttpAuthzServer:
        self = cls()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.raw_headers]
        self.requests.append(HttpCheck(request.method, request.raw_path, headers, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answer
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
