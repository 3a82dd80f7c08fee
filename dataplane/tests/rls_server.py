"""A real Envoy RateLimitService for tests: a grpc.aio server on 127.0.0.1.

It counts hits in fixed windows per domain and descriptor, like envoyproxy/ratelimit, with the
limits a test configures, and records every request it receives so tests can assert what the
proxy sent. Knobs let a test make it slow (`delay`), failing (`fail`), or add headers and a
body to its answers.

    async with RlsServer({("api", (("user", None),)): Limit(2, "minute")}) as rls:
        ...  # rls.port; rls.requests

A limit's key is (domain, entries); an entry whose value is None matches any value and counts
each value separately (envoyproxy/ratelimit's key-only rule).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]

from api.proto.envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

Response = rls_pb2.RateLimitResponse
Entries = tuple[tuple[str, str | None], ...]

UNITS = {
    "second": (Response.RateLimit.SECOND, 1.0),
    "minute": (Response.RateLimit.MINUTE, 60.0),
    "hour": (Response.RateLimit.HOUR, 3600.0),
    "day": (Response.RateLimit.DAY, 86400.0),
}


@dataclasses.dataclass(frozen=True)
class Limit:
    requests_per_unit: int
    unit: str = "minute"
    name: str = ""


class RlsServer(rls_pb2_grpc.RateLimitServiceServicer):
    """The service and its server. `requests` holds every RateLimitRequest received."""

    def __init__(
        self,
        limits: dict[tuple[str, Entries], Limit] | None = None,
        *,
        delay: float = 0.0,
        fail: grpc.StatusCode | None = None,
        over_limit_headers: tuple[tuple[str, str], ...] = (),
        ok_request_headers: tuple[tuple[str, str], ...] = (),
        ok_response_headers: tuple[tuple[str, str], ...] = (),
        raw_body: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits or {})
        self.delay = delay
        self.fail = fail
        self.over_limit_headers = over_limit_headers
        self.ok_request_headers = ok_request_headers
        self.ok_response_headers = ok_response_headers
        self.raw_body = raw_body
        self.clock = clock
        self.requests: list[rls_pb2.RateLimitRequest] = []
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...], int], int] = {}
        self.port = 0
        self._server: Any = None

    # -- the service --------------------------------------------------------------------------

    async def ShouldRateLimit(self, request: rls_pb2.RateLimitRequest, context: Any) -> Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            await context.abort(self.fail, "configured to fail")
        hits = request.hits_addend or 1
        statuses = [self._count(request.domain, d, hits) for d in request.descriptors]
        over = any(s.code == Response.OVER_LIMIT for s in statuses)
        response = Response(overall_code=Response.OVER_LIMIT if over else Response.OK, statuses=statuses)
        if over:
            response.response_headers_to_add.extend(_values(self.over_limit_headers))
            response.raw_body = self.raw_body
        else:
            response.request_headers_to_add.extend(_values(self.ok_request_headers))
            response.response_headers_to_add.extend(_values(self.ok_response_headers))
        return response

    def _count(self, domain: str, descriptor: Any, hits: int) -> Response.DescriptorStatus:
        entries = tuple((e.key, e.value) for e in descriptor.entries)
        limit = self._match(domain, entries)
        if limit is None:
            return Response.DescriptorStatus(code=Response.OK)
        unit, seconds = UNITS[limit.unit]
        now = self.clock()
        window = int(now // seconds)
        key = (domain, entries, window)
        used = self.counters.get(key, 0) + hits
        self.counters[key] = used
        status = Response.DescriptorStatus(
            code=Response.OVER_LIMIT if used > limit.requests_per_unit else Response.OK,
            current_limit=Response.RateLimit(
                requests_per_unit=limit.requests_per_unit, unit=unit, name=limit.name
            ),
            limit_remaining=max(0, limit.requests_per_unit - used),
        )
        status.duration_until_reset.FromNanoseconds(int(((window + 1) * seconds - now) * 1e9))
        return status

    def _match(self, domain: str, entries: tuple[tuple[str, str], ...]) -> Limit | None:
        for (d, pattern), limit in self.limits.items():
            if d != domain or len(pattern) != len(entries):
                continue
            if all(
                pk == k and (pv is None or pv == v) for (pk, pv), (k, v) in zip(pattern, entries, strict=True)
            ):
                return limit
        return None

    # -- the server ---------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        """Serve on 127.0.0.1 (`port` 0 picks a free one); returns the port."""
        server = grpc.aio.server()
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self._server = server
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(None)

    async def __aenter__(self) -> RlsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _values(pairs: tuple[tuple[str, str], ...]) -> list[rls_pb2.HeaderValue]:
    return [rls_pb2.HeaderValue(key=k, value=v) for k, v in pairs]
