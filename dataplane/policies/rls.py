"""The runtime client of an Envoy RateLimitService (envoy.service.ratelimit.v3) over gRPC.

One `Client` per service address and worker, created by the worker's services registry
(`dataplane.policies.services`) under the kind "rls" with the key (host, port, tls); the
remote rate limit step (`dataplane.policies.ratelimit`) calls `should_rate_limit`. The
grpc.aio channel is opened on first use (inside the worker's event loop) and reconnects by
itself; `close` releases it. Failures (unreachable service, deadline, gRPC error) raise
`ServiceError`, which the step turns into fail-open or fail-closed.

TLS uses the system trust roots (grpc's defaults); client certificates are not supported yet.
"""

from __future__ import annotations

from collections.abc import Hashable

import grpc  # type: ignore[import-untyped]

from api.proto.envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from api.proto.envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from dataplane.policies import ratelimit

KIND = "rls"
"""The services kind this module's `factory` is registered under."""

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Fail fast when the service is down instead of waiting the whole deadline for it.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


class ServiceError(Exception):
    """The rate limit service could not answer (unreachable, too slow, or a gRPC error)."""


class Client:
    """A RateLimitService client for one address; see `ratelimit.RlsClient`."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._channel: grpc.aio.Channel | None = None
        self._stub: rls_pb2_grpc.RateLimitServiceStub | None = None

    def _connect(self) -> rls_pb2_grpc.RateLimitServiceStub:
        if self.tls:
            credentials = grpc.ssl_channel_credentials()
            self._channel = grpc.aio.secure_channel(self.target, credentials, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self._stub = rls_pb2_grpc.RateLimitServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub

    async def should_rate_limit(
        self,
        domain: str,
        descriptors: ratelimit.Descriptors,
        hits_addend: int,
        timeout: float,  # noqa: ASYNC109 - the gRPC deadline, which the server also sees
    ) -> rls_pb2.RateLimitResponse:
        """Ask the service; raises ServiceError when it cannot answer within `timeout` seconds."""
        stub = self._stub or self._connect()
        request = rls_pb2.RateLimitRequest(
            domain=domain,
            descriptors=[
                ratelimit_pb2.RateLimitDescriptor(
                    entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
                )
                for entries in descriptors
            ],
            hits_addend=hits_addend,
        )
        try:
            response: rls_pb2.RateLimitResponse = await stub.ShouldRateLimit(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise ServiceError(f"{self.target}: {exc.code().name}: {exc.details()}") from exc
        return response

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()


def factory(key: Hashable) -> Client:
    """The "rls" services factory: key is (host, port, tls)."""
    if not isinstance(key, tuple) or len(key) != 3:
        raise ValueError(f"rls client key must be (host, port, tls), got {key!r}")
    host, port, tls = key
    return Client(str(host), int(port), bool(tls))
