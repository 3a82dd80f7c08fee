"""The runtime side of ext_authz: long-lived clients of authorization services.

`dataplane.policies.extauthz` (pure) reaches these through `ctx.services.client(kind, key)`
with key (host, port, tls); the worker registers the factories:

    services.register(extauthz.GRPC_KIND, extauthz_clients.grpc_client)
    services.register(extauthz.HTTP_KIND, extauthz_clients.http_client)

`GrpcClient` calls /envoy.service.auth.v3.Authorization/Check on one grpc.aio channel (HTTP/2,
multiplexed). `HttpClient` sends the check request with a pooled aiohttp session (keep-alive,
no redirects followed, bodies not decompressed). Both create their channel or session on first
use (inside the running loop), turn every failure to get an answer (connect error, timeout, gRPC
status, broken response) into `extauthz.Unavailable`, and are closed by `Services.close`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Hashable
from typing import Any

import aiohttp
import grpc  # type: ignore[import-untyped]
import yarl

from api.proto.envoy.service.auth.v3 import external_auth_pb2
from dataplane.policies import extauthz

log = logging.getLogger(__name__)

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"

_CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
)


def _split(key: Hashable) -> extauthz.Target:
    if not isinstance(key, tuple) or len(key) != 3:
        raise TypeError(f"ext_authz client key must be (host, port, tls), got {key!r}")
    host, port, tls = key
    return str(host), int(port), bool(tls)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcClient:
    """An ext_authz gRPC client for one (host, port, tls)."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.address = _authority(host, port)
        self.tls = tls
        self._channel: Any = None
        self._call: Any = None

    def _open(self) -> Any:
        if self.tls:
            self._channel = grpc.aio.secure_channel(
                self.address, grpc.ssl_channel_credentials(), options=_CHANNEL_OPTIONS
            )
        else:
            self._channel = grpc.aio.insecure_channel(self.address, options=_CHANNEL_OPTIONS)
        self._call = self._channel.unary_unary(
            CHECK_METHOD,
            request_serializer=external_auth_pb2.CheckRequest.SerializeToString,
            response_deserializer=external_auth_pb2.CheckResponse.FromString,
        )
        return self._call

    async def check(
        self, request: external_auth_pb2.CheckRequest, timeout_s: float
    ) -> external_auth_pb2.CheckResponse:
        call = self._call or self._open()
        try:
            response: external_auth_pb2.CheckResponse = await call(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.debug("ext_authz gRPC %s: %s %s", self.address, exc.code(), exc.details())
            raise extauthz.Unavailable(f"gRPC {exc.code().name}") from exc
        return response

    async def close(self) -> None:
        channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            await channel.close()


class HttpClient:
    """An ext_authz HTTP client for one (host, port, tls), with pooled keep-alive connections."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.base = f"{'https' if tls else 'http'}://{_authority(host, port)}"
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context() if self.tls else False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        return self._session

    async def check(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        session = self._session or self._open()
        url = yarl.URL(self.base + path, encoded=True)
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        try:
            async with session.request(
                method,
                url,
                headers=sent,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                data = await resp.read()
                got = [(k.lower(), v) for k, v in resp.raw_headers]
                return resp.status, got, data
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.debug("ext_authz HTTP %s: %r", self.base, exc)
            raise extauthz.Unavailable(f"HTTP {type(exc).__name__}") from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def grpc_client(key: Hashable) -> GrpcClient:
    """`Services` factory for `extauthz.GRPC_KIND`; key (host, port, tls)."""
    return GrpcClient(*_split(key))


def http_client(key: Hashable) -> HttpClient:
    """`Services` factory for `extauthz.HTTP_KIND`; key (host, port, tls)."""
    return HttpClient(*_split(key))
