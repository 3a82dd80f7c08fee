"""The request path: listener -> route -> policies -> backend, for one exchange.

`Proxy.handle` is the handler the HTTP/1.1 and HTTP/2 servers call per request (an
`exchange.Exchange`). It reads the current `tables.Tables` once (a reload mid-request does not
affect it), selects listener and route (`routing`), applies the route's policies in
agentgateway's order (CORS, redirect, direct response, header modifiers, URL rewrite, mirror),
forwards to a weighted backend with timeouts and retries (`backends.http`, or `backends.http2`
for backends whose policy says HTTP/2), streams the response back (with its trailers where the
client can take them), then records metrics and one access-log line. Errors raised anywhere are
`errors.ProxyError`s; they become responses through `errors.response_for_request` (a gRPC
status for gRPC clients). A gRPC client's `grpc-timeout` is a deadline like the route's
request timeout. The callback fast lane (`FastRelay`) serves HTTP/1.1 exchanges to HTTP/1.1
backends only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from dataplane import errors, routing, settings, tables
from dataplane.backends import http as upstream
from dataplane.backends import http2 as upstream2
from dataplane.backends import llm
from dataplane.config import store as config_store
from dataplane.policies import context, filters, usage
from dataplane.policies import transform as transform_policy
from dataplane.server import http1, http2, streams
from dataplane.telemetry import accesslog, metrics

log = logging.getLogger(__name__)

AnyExchange = http1.Exchange | http2.Exchange
"""`exchange.Exchange`, spelled as the two classes: compiled (dataplane/accel.py), the proxy then
reads an HTTP/1.1 exchange's attributes natively instead of by name."""

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"expect",
        b"content-length",
    }
)
"""Request headers never copied as-is to the upstream (we frame the body ourselves)."""

_VERSIONS = {b"1.1": "1.1", b"2": "2", b"1.0": "1.0"}
"""The access log's `version` field, without decoding per request."""

RESPONSE_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


class _Attempt:
    """Bookkeeping for one request as it moves through the pipeline (for logs and metrics)."""

    __slots__ = ("backend", "error", "grpc_status", "listener", "route", "upstream_addr")

    def __init__(self) -> None:
        self.listener = ""
        self.route = ""
        self.backend = ""
        self.upstream_addr = ""
        self.error = ""
        self.grpc_status = ""


class _Plan:
    """A routed request, ready for a backend (once `pending` policy work, if any, is done)."""

    __slots__ = (
        "authority",
        "ctx",
        "extra_response",
        "headers",
        "match",
        "path",
        "pending",
        "route",
        "up_path",
    )

    def __init__(
        self,
        route: tables.Route,
        match: routing.Match,
        authority: str,
        headers: list[tuple[bytes, bytes]],
        path: str,
        extra_response: list[tuple[bytes, bytes]],
        ctx: context.RequestContext | None,
    ) -> None:
        self.route = route
        self.match = match
        self.authority = authority
        self.headers = headers
        self.path = path
        self.up_path = path
        self.extra_response = extra_response
        self.ctx = ctx
        self.pending: Any = None
        """What the security steps still wait for (an ext_authz call, a JWKS fetch), or None."""


def response_headers(
    route: tables.Route,
    target: tables.Target,
    status: int,
    upstream_headers: list[tuple[bytes, bytes]],
    plan: _Plan,
) -> list[tuple[bytes, bytes]]:
    """The client's response headers: upstream's minus hop-by-hop, with header policies."""
    headers = [h for h in upstream_headers if h[0] not in RESPONSE_HOP_BY_HOP]
    extra = plan.extra_response
    if route.policy.response_transform is not None and plan.ctx is not None:
        headers = route.policy.response_transform.apply(plan.ctx, status, headers)
    if route.policy.response_headers is not None:
        headers = route.policy.response_headers.apply(headers)
    if target.response_headers is not None:
        headers = target.response_headers.apply(headers)
    if extra:
        headers.extend(extra)
    return headers


class FastRelay(upstream.Response):
    """The fast lane's response: upstream parser callbacks write straight to the client.

    Backpressure: when the client's socket is full, the upstream connection stops reading until
    it drains. A stale pooled connection that fails before any response byte hands the request
    to the full pipeline (which reconnects); any other failure is answered like the pipeline's.
    """

    __slots__ = ("_ex", "_info", "_plan", "_proxy", "_started", "_target")

    def __init__(
        self,
        proxy: Proxy,
        ex: AnyExchange,
        info: _Attempt,
        plan: _Plan,
        target: tables.Target,
        conn: upstream.UpstreamConnection,
    ) -> None:
        super().__init__(conn, head_only=ex.method == "HEAD")
        self._proxy = proxy
        self._ex = ex
        self._info = info
        self._plan = plan
        self._target = target
        self._started = time.monotonic()
        conn.begin(self)

    def on_head(self) -> None:
        headers = response_headers(self._plan.route, self._target, self.status, self.headers, self._plan)
        self._ex.start(self.status, headers, self.content_length())

    def on_body(self, chunk: bytes) -> None:
        ex = self._ex
        try:
            ex.write(chunk)
        except errors.ClientGone:
            self.client_gone()
            return
        down = ex.conn
        if down.write_paused:
            self.conn.pause_reading()
            down.on_resume(self.conn.resume_reading)

    def finish(self, keep_alive: bool) -> None:
        if self.complete:
            return
        self.complete = True
        ex = self._ex
        ex.on_gone = None  # break the exchange <-> relay cycle: no garbage for the collector
        if not ex.ended:
            ex.end()
        self.conn.released(keep_alive and not self.head_only)
        now = time.monotonic()
        self._proxy._stats.upstream_call_duration.observe((self._target.name, "primary"), now - self._started)
        self._proxy._record(ex, self._info, now)

    def fail(self, exc: errors.ProxyError) -> None:
        if self.complete:
            return
        self.complete = True
        self.conn.released(False)
        ex = self._ex
        ex.on_gone = None
        if not self.head_received and self.conn.reused and not ex.ended:
            # The idle connection was closed under us: the full pipeline connects afresh.
            task = asyncio.get_running_loop().create_task(
                self._proxy._forward_task(ex, self._info, self._plan)
            )

            def cancel() -> None:
                task.cancel()

            ex.on_gone = cancel
            return
        self._proxy._answer_error(ex, self._info, exc)
        self._proxy._record(ex, self._info)

    def client_gone(self) -> None:
        """The client left mid-response: stop reading the upstream and log the exchange."""
        if self.complete:
            return
        self.complete = True
        self._ex.on_gone = None
        self.conn.abort()
        self._info.error = "client_disconnected: client closed the connection"
        self._proxy._record(self._ex, self._info)


class Proxy:
    def __init__(
        self,
        store: config_store.Store,
        pool: upstream.Pool,
        stats: metrics.Registry,
        access_log: accesslog.AccessLog,
        max_buffer_size: int,
        gateway: str,
        services: context.Services | None = None,
        h2_client: upstream2.Client | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._h2 = h2_client if h2_client is not None else upstream2.Client(settings.Upstream(), stats)
        self._stats = stats
        self._log = access_log
        self._max_buffer = max_buffer_size
        self._gateway = gateway
        self._services: context.Services = services if services is not None else _NoServices()
        self._mirrors: set[asyncio.Task[None]] = set()

    # entry point ----------------------------------------------------------------------------
    def handle(self, ex: AnyExchange) -> Coroutine[Any, Any, None] | None:
        """Serve one request. Answers at once, or starts the fast lane (callbacks), and returns
        None; or returns the coroutine of the full pipeline for the server to run as a task."""
        info = _Attempt()
        try:
            plan = self._plan(ex, info)
            if plan is None:  # answered by the gateway itself (redirect, direct, CORS preflight)
                self._record(ex, info)
                return None
            if plan.pending is not None:
                return self._forward_task(ex, info, plan)
            if not self._shape(ex, plan):
                self._record(ex, info)
                return None
            if self._fast_lane(ex, info, plan):
                return None
        except errors.ProxyError as exc:
            self._answer_error(ex, info, exc)
            self._record(ex, info)
            return None
        return self._forward_task(ex, info, plan)

    async def _forward_task(self, ex: AnyExchange, info: _Attempt, plan: _Plan) -> None:
        try:
            if plan.pending is not None:
                pending, plan.pending = plan.pending, None
                try:
                    await pending
                except errors.PolicyError as exc:
                    raise _with_cors(exc, plan.extra_response) from exc.__cause__
                if not self._shape(ex, plan):
                    return
            await self._forward(ex, info, plan)
        except errors.ProxyError as exc:
            self._answer_error(ex, info, exc)
        finally:
            self._record(ex, info)

    @staticmethod
    def _answer_error(ex: AnyExchange, info: _Attempt, exc: errors.ProxyError) -> None:
        info.error = f"{exc.reason}: {exc}"
        if ex.ended:
            return
        content_type = ex.header("content-type")
        if not ex.head_sent:
            status, headers, body = errors.response_for_request(exc, content_type)
            if status == 200 and errors.is_grpc(content_type):
                info.grpc_status = str(errors.grpc_status(exc))
            ex.respond(status, headers, body)
        elif isinstance(ex, http2.Exchange) and errors.is_grpc(content_type):
            # A gRPC response already under way: its trailers say what went wrong.
            info.grpc_status = str(errors.grpc_status(exc))
            ex.end_with_trailers(errors.grpc_trailers_for(exc))
        else:
            ex.abort()

    def _record(self, ex: AnyExchange, info: _Attempt, now: float = 0.0) -> None:
        """Metrics and the access-log line; `now` is time.monotonic() if the caller has it."""
        elapsed = (now or time.monotonic()) - ex.started
        status = ex.status or 499
        gateway = self._gateway
        self._stats.requests.inc((gateway, info.listener, info.route, info.backend, ex.method, str(status)))
        self._stats.request_duration.observe((gateway, info.listener, info.route, info.backend), elapsed)
        if self._log.enabled:
            self._log.record(
                {
                    "method": ex.method,
                    "host": ex.authority or None,
                    "path": ex.path,
                    "status": status,
                    "route": info.route or None,
                    "backend": info.backend or None,
                    "upstream": info.upstream_addr or None,
                    "duration_ms": round(elapsed * 1000, 3),
                    "bytes_in": ex.bytes_in,
                    "bytes_out": ex.bytes_out,
                    "error": info.error or None,
                    "version": _VERSIONS.get(ex.version) or ex.version.decode("latin-1"),
                    "grpc_status": info.grpc_status or None,
                }
            )

    # pipeline -------------------------------------------------------------------------------
    def _plan(self, ex: AnyExchange, info: _Attempt) -> _Plan | None:
        """Route the request and apply the policies that need no upstream. Pure of I/O except
        for answering redirects, direct responses and CORS preflights (then None)."""
        snapshot = self._store.tables
        bind = snapshot.binds.get(ex.port)
        authority = ex.authority
        host = routing.split_host(authority)
        listener = bind.listeners.first(host) if bind is not None else None
        if listener is None:
            raise errors.NoRoute(f"no listener for host {host!r}")
        info.listener = listener.name
        if listener.client_auth:
            assert bind is not None
            sni = ex.conn.sni
            if sni is None or bind.listeners.first(sni.lower()) is not listener:
                raise errors.Misdirected("the TLS server name does not select this host's listener")
        path = routing.normalize_path(ex.path)
        match = listener.routes.lookup(host, ex.method, path, ex.query, ex.header)
        if match is None:
            raise errors.NoRoute(f"no route for {ex.method} {path}")
        route = match.route
        info.route = route.name
        policy = route.policy

        extra_response: list[tuple[bytes, bytes]] = []
        if policy.cors is not None:
            origin = ex.header("origin")
            if origin is not None and policy.cors.allows(origin):
                if ex.method == "OPTIONS" and ex.header("access-control-request-method") is not None:
                    ex.respond(200, filters.cors_preflight_headers(policy.cors, origin))
                    return None
                extra_response = filters.cors_response_headers(policy.cors, origin)

        if not policy.steps and policy.response_transform is None:
            return _Plan(route, match, authority, ex.headers, path, extra_response, None)
        ctx = context.RequestContext(ex, self._services, ex.headers, path, listener.name, route.name)
        plan = _Plan(route, match, authority, ex.headers, path, extra_response, ctx)
        try:
            plan.pending = context.run(policy.steps, ctx)
        except errors.PolicyError as exc:
            raise _with_cors(exc, extra_response) from exc.__cause__
        return plan

    def _shape(self, ex: AnyExchange, plan: _Plan) -> bool:
        """Apply the policies that follow the security steps: answer a redirect or direct
        response (then False), or shape the upstream request (header changes, rewrite)."""
        route, match, path = plan.route, plan.match, plan.path
        policy = route.policy
        ctx = plan.ctx
        if ctx is not None:
            plan.headers = ctx.headers
            if ctx.response_headers:
                plan.extra_response = [*plan.extra_response, *ctx.response_headers]
        if policy.redirect is not None:
            self._redirect(ex, policy.redirect, plan.authority, path, match)
            return False
        if policy.direct_status is not None:
            ex.respond(
                policy.direct_status,
                [(b"content-type", b"text/plain"), *plan.extra_response],
                policy.direct_body,
            )
            return False
        if policy.request_headers is not None:
            plan.headers = policy.request_headers.apply(plan.headers)
        if policy.rewrite is not None:
            plan.up_path = filters.new_path(policy.rewrite.path, path, match.path_kind, match.path)
        return True

    def _backend_policies(
        self, ex: AnyExchange, plan: _Plan, target: tables.Target
    ) -> list[tuple[bytes, bytes]]:
        """Run a chosen backend's security steps; return the headers to send it."""
        headers = plan.headers
        if target.steps:
            ctx = plan.ctx
            if ctx is None:
                ctx = plan.ctx = context.RequestContext(
                    ex, self._services, headers, plan.path, "", plan.route.name
                )
            ctx.backend = {"name": target.name, "type": "ai" if target.ai else "static", "protocol": "http"}
            ctx.invalidate("backend")
            if context.run(target.steps, ctx) is not None:  # pragma: no cover - authorization is sync
                raise errors.ProxyError("backend policies must decide synchronously")
        if target.auth_passthrough and plan.ctx is not None and plan.ctx.jwt_token:
            headers = [*headers, (b"authorization", b"Bearer " + plan.ctx.jwt_token.encode())]
        return headers

    # fast lane ------------------------------------------------------------------------------
    def _fast_lane(self, ex: AnyExchange, info: _Attempt, plan: _Plan) -> bool:
        """Forward without a task when nothing needs waiting but the upstream's answer.

        Eligible: no request body, no upgrade, no retry, timeout or mirror, and an idle pooled
        connection to the chosen backend. Then the request is written now and the upstream
        connection's parser callbacks write the response to the client (`FastRelay`). This is
        most proxied traffic, and skips a task, two futures and a body stream per request.
        """
        ctx = plan.ctx
        if (
            ex.body is not streams.EMPTY
            or not plan.route.policy.plain
            or (ctx is not None and (ctx.body is not None or ctx.usage_hooks is not None))
            or ex.upgrade
        ):
            return False
        target = plan.route.pick()
        if target is None:
            raise errors.NoBackend("the route has no backend with a non-zero weight")
        if not target.plain:
            return False
        conn = self._pool.take_idle(target.host, target.port, target.tls)
        if conn is None:
            return False
        info.backend = target.name
        info.upstream_addr = target.address
        headers = self._backend_policies(ex, plan, target)
        head = self._upstream_head(ex, plan.route, target, plan.authority, headers, plan.up_path, b"")
        relay = FastRelay(self, ex, info, plan, target, conn)
        ex.on_gone = relay.client_gone
        conn.write(head)
        return True

    def _redirect(
        self, ex: AnyExchange, r: tables.Redirect, authority: str, path: str, match: routing.Match
    ) -> None:
        location = filters.redirect_location(
            r, ex.conn.scheme, authority, path, ex.query, match.path_kind, match.path
        )
        ex.respond(r.status, [(b"location", location.encode())])

    # forwarding -----------------------------------------------------------------------------
    def _upstream_head(
        self,
        ex: AnyExchange,
        route: tables.Route,
        target: tables.Target,
        authority: str,
        headers: list[tuple[bytes, bytes]],
        up_path: str,
        body: bytes | None,
    ) -> bytes:
        """The request head for one backend: its header policy and an `auto` authority apply."""
        if target.request_headers is not None:
            headers = target.request_headers.apply(headers)
        rewrite = route.policy.rewrite
        if rewrite is not None and rewrite.authority is not None:
            new_authority = filters.rewrite_authority(rewrite.authority, authority, target)
            if new_authority != authority:
                headers = [h for h in headers if h[0] != b"host"]
                headers.append((b"host", new_authority.encode()))
        target_uri = (up_path + ("?" + ex.query if ex.query else "")).encode("latin-1")
        return self._request_head(ex, headers, target_uri, body, target)

    async def _forward(self, ex: AnyExchange, info: _Attempt, plan: _Plan) -> None:
        """Pick a backend and send; a retry picks again, so a dead backend is stepped around."""
        route, match, authority = plan.route, plan.match, plan.authority
        up_path = plan.up_path
        policy = route.policy
        retry = policy.retry
        # body_bytes is the whole body when known (replayable); None means stream it.
        body_bytes: bytes | None = b"" if ex.body is streams.EMPTY else None
        prefix = b""
        ctx = plan.ctx
        if ctx is not None and ctx.body is not None:  # a policy read (or replaced) the body
            if ctx.body_complete:
                body_bytes = ctx.body
            else:
                prefix = ctx.body
                retry = None
        elif ex.body is not streams.EMPTY and (retry is not None or policy.mirrors):
            ex.send_continue()
            prefix, whole = await ex.body.read_upto(self._max_buffer)
            if whole:
                body_bytes, prefix = prefix, b""
            else:
                retry = None  # too big to replay: stream it, one attempt

        timeouts = policy.timeouts
        deadline = asyncio.get_running_loop().time() + timeouts.request if timeouts.request else None
        grpc_deadline = _grpc_deadline(ex)
        if grpc_deadline is not None and (deadline is None or grpc_deadline < deadline):
            deadline = grpc_deadline
        attempts = retry.attempts if retry is not None else 1
        failed: frozenset[str] = frozenset()
        for attempt in range(attempts):
            last = attempt == attempts - 1
            target = route.pick(failed)
            if target is None:
                raise errors.NoBackend("the route has no backend with a non-zero weight")
            info.backend = target.name
            if target.redirect is not None:
                self._redirect(ex, target.redirect, authority, ex.path, match)
                return
            headers = self._backend_policies(ex, plan, target)
            send = body_bytes
            head: bytes | list[tuple[bytes, bytes]]
            if target.ai is not None:
                if body_bytes is None:  # an LLM call is rewritten, so its body is read whole
                    rest, whole = await ex.body.read_upto(self._max_buffer - len(prefix))
                    if not whole:
                        raise errors.BodyTooLarge(
                            f"LLM request bodies are limited to {self._max_buffer} bytes"
                        )
                    body_bytes, prefix = prefix + rest, b""
                send = llm.provider_body(target.ai, body_bytes)
                head = self._request_head(
                    ex, llm.provider_headers(target, headers), target.ai.path.encode(), send, target
                )
            elif target.http2:
                head = self._h2_fields(ex, route, target, authority, headers, up_path, body_bytes)
            else:
                head = self._upstream_head(ex, route, target, authority, headers, up_path, body_bytes)
            if attempt == 0 and body_bytes is not None:
                for mirror in policy.mirrors:
                    if random.random() < mirror.percentage:
                        mirror_head = (
                            head
                            if isinstance(head, bytes)
                            else self._upstream_head(
                                ex, route, target, authority, headers, up_path, body_bytes
                            )
                        )
                        self._mirror(mirror.target, mirror_head, body_bytes)
            try:
                if deadline is None:
                    resp = await self._call(ex, target, head, send, prefix, timeouts.backend, info)
                    if last or retry is None or resp.status not in retry.codes:
                        await self._relay(ex, route, target, resp, plan, info)
                        return
                else:
                    async with asyncio.timeout_at(deadline):
                        resp = await self._call(ex, target, head, send, prefix, timeouts.backend, info)
                        if last or retry is None or resp.status not in retry.codes:
                            await self._relay(ex, route, target, resp, plan, info)
                            return
                resp.discard()
                assert retry is not None
                failed |= {target.name}
                await self._backoff(retry, attempt, route, target)
                continue
            except TimeoutError as exc:
                if grpc_deadline is not None and deadline == grpc_deadline:
                    raise errors.DeadlineExceeded(
                        "the deadline the client set (grpc-timeout) passed"
                    ) from exc
                raise errors.UpstreamTimeout(f"request timeout ({timeouts.request:g}s) exceeded") from exc
            except errors.UpstreamError as exc:
                if last or retry is None or ex.head_sent:
                    raise
                info.error = f"{exc.reason}: {exc}"
                failed |= {target.name}
                await self._backoff(retry, attempt, route, target)
        raise errors.UpstreamError("no attempt succeeded")  # pragma: no cover - loop always returns

    async def _backoff(
        self, retry: tables.Retry, attempt: int, route: tables.Route, target: tables.Target
    ) -> None:
        self._stats.retries.inc((route.name, target.name))
        if retry.backoff:
            await asyncio.sleep(retry.backoff * (2**attempt) * (0.5 + random.random() / 2))

    def _request_head(
        self,
        ex: AnyExchange,
        headers: list[tuple[bytes, bytes]],
        target_uri: bytes,
        body: bytes | None,
        target: tables.Target,
    ) -> bytes:
        lines = [ex.method.encode(), b" ", target_uri, b" HTTP/1.1\r\n"]
        skip = HOP_BY_HOP
        for name, value in headers:
            if name == b"connection":
                skip = HOP_BY_HOP | {t.strip().lower() for t in value.split(b",")}
        forwarded_for = ex.client_addr.encode()
        has_host = False
        for name, value in headers:
            if name in skip:
                continue
            if name == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
                continue
            if name == b"x-forwarded-proto":
                continue
            if name == b"host":
                has_host = True
            lines += (name, b": ", value, b"\r\n")
        if not has_host:  # HTTP/1.0 clients may omit Host; HTTP/1.1 upstreams require it
            lines += (b"host: ", target.address.encode(), b"\r\n")
        lines += (
            b"x-forwarded-for: ",
            forwarded_for,
            b"\r\nx-forwarded-proto: https\r\n"
            if ex.conn.scheme == "https"
            else b"\r\nx-forwarded-proto: http\r\n",
        )
        if ex.upgrade:
            upgrade = ex.header("upgrade") or ""
            lines += (b"connection: upgrade\r\nupgrade: ", upgrade.encode("latin-1"), b"\r\n")
        if body is not None:
            if body or ex.method in ("POST", "PUT", "PATCH"):
                lines += (b"content-length: ", b"%d" % len(body), b"\r\n")
        else:
            length = ex.header("content-length")
            if length is not None:
                lines += (b"content-length: ", length.encode(), b"\r\n")
            else:
                lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _attempt(
        self,
        ex: AnyExchange,
        target: tables.Target,
        head: bytes,
        body: bytes | None,
        prefix: bytes,
        backend_timeout: float | None,
        info: _Attempt,
    ) -> upstream.UpstreamResponse:
        """Send the request once (plus one silent retry on a stale pooled connection)."""
        timeout = backend_timeout or target.request_timeout
        info.upstream_addr = target.address
        for fresh in (False, True):
            conn = (
                await self._pool.acquire(target.host, target.port, target.connect_timeout, target.tls)
                if not fresh
                else await self._pool.connect(target.host, target.port, target.connect_timeout, target.tls)
            )
            resp = upstream.UpstreamResponse(conn, head_only=ex.method == "HEAD")
            started = time.monotonic()
            try:
                if timeout is None:
                    await self._send(ex, conn, resp, head, body, prefix)
                else:
                    async with asyncio.timeout(timeout):
                        await self._send(ex, conn, resp, head, body, prefix)
            except TimeoutError as exc:
                resp.discard()
                raise errors.UpstreamTimeout(f"backend request timeout ({timeout:g}s) exceeded") from exc
            except errors.UpstreamError:
                resp.discard()
                if conn.reused and not fresh and body is not None and not resp.head_received:
                    continue  # the idle connection was closed under us: replay on a new one
                raise
            except BaseException:
                resp.discard()
                raise
            self._stats.upstream_call_duration.observe((target.name, "primary"), time.monotonic() - started)
            return resp
        raise errors.UpstreamError("upstream closed the connection")  # pragma: no cover

    async def _send(
        self,
        ex: AnyExchange,
        conn: upstream.UpstreamConnection,
        resp: upstream.UpstreamResponse,
        head: bytes,
        body: bytes | None,
        prefix: bytes,
    ) -> None:
        if body is None:
            conn.write(head)
            await self._stream_body(ex, conn, prefix)
        else:
            conn.write(head + body if body else head)
        await resp.head_waiter

    async def _stream_body(self, ex: AnyExchange, conn: upstream.UpstreamConnection, prefix: bytes) -> None:
        """Copy a request body of unknown size or too big to buffer, with backpressure."""
        ex.send_continue()
        chunked = ex.header("content-length") is None
        body = ex.body
        chunk = prefix
        while True:
            if not chunk:
                chunk = await body.read()
                if not chunk:
                    break
            conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            chunk = b""
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")

    async def _relay(
        self,
        ex: AnyExchange,
        route: tables.Route,
        target: tables.Target,
        resp: upstream.UpstreamResponse | upstream2.Response,
        plan: _Plan,
        info: _Attempt,
    ) -> None:
        """Send the upstream response to the client: head with policies applied, then body."""
        headers = response_headers(route, target, resp.status, resp.headers, plan)
        if (
            resp.status == 101
            and ex.upgrade
            and isinstance(ex, http1.Exchange)
            and isinstance(resp, upstream.UpstreamResponse)
        ):
            await self._tunnel(ex, resp, headers)
            return
        transform = route.policy.response_transform
        if transform is not None and transform.body is not None and plan.ctx is not None:
            await self._relay_transformed(ex, resp, headers, transform, plan.ctx)
            return
        ex.start(resp.status, headers, resp.content_length())
        body = resp.body
        conn = ex.conn
        hooks = plan.ctx.usage_hooks if plan.ctx is not None else None
        sniffer = usage.Sniffer() if hooks else None
        try:
            while True:
                if not body.ready:
                    ex.flush()  # streaming: the client gets the head before the body trickles in
                chunk = await body.read()
                if not chunk:
                    break
                if sniffer is not None:
                    sniffer.feed(chunk)
                ex.write(chunk)
                if conn.write_paused:
                    await conn.drain()
        except BaseException:
            resp.discard()
            raise
        if isinstance(resp, upstream2.Response):
            self._end_h2(ex, resp, info)
        else:
            ex.end()
        if hooks and sniffer is not None:
            _charge(hooks, sniffer)

    async def _relay_transformed(
        self,
        ex: AnyExchange,
        resp: upstream.UpstreamResponse | upstream2.Response,
        headers: list[tuple[bytes, bytes]],
        transform: transform_policy.ResponseTransform,
        ctx: context.RequestContext,
    ) -> None:
        """A response whose body a transformation computes: read the upstream's whole body
        (up to the buffer limit, else 502), then send the new one with its length."""
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await resp.body.read():
                size += len(chunk)
                if size > self._max_buffer:
                    raise errors.UpstreamError(
                        f"the response body is over {self._max_buffer} bytes, too big to transform"
                    )
                parts.append(chunk)
        except BaseException:
            resp.discard()
            raise
        upstream_body = b"".join(parts)
        if ctx.usage_hooks:
            sniffer = usage.Sniffer()
            sniffer.feed(upstream_body)
            _charge(ctx.usage_hooks, sniffer)
        body = transform.new_body(ctx, upstream_body)
        ex.start(resp.status, headers, len(body))
        ex.write(body)
        ex.end()

    async def _tunnel(
        self, ex: http1.Exchange, resp: upstream.UpstreamResponse, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """WebSocket and other upgrades: after 101, copy bytes both ways until one side closes."""
        conn = resp.conn
        down = ex.conn
        from_upstream = conn.take_tunnel()
        ex.start(101, [*headers, (b"upgrade", (dict(resp.headers).get(b"upgrade") or b""))], None)
        done = asyncio.get_running_loop().create_future()

        def client_closed() -> None:
            conn.close()
            if not done.done():
                done.set_result(None)

        if ex.tunnel_prefix:
            conn.write(ex.tunnel_prefix)
        down.start_tunnel(conn.write, client_closed)
        conn.set_producer(down)  # a fast client waits while the upstream's socket is full
        try:
            while True:
                chunk = await from_upstream.read()
                if not chunk:
                    break
                down.write(chunk)
                if down.write_paused:
                    await down.drain()
        finally:
            down.close()
            conn.close()
        ex.end()

    # HTTP/2 backends and trailers -------------------------------------------------------------
    async def _call(
        self,
        ex: AnyExchange,
        target: tables.Target,
        head: bytes | list[tuple[bytes, bytes]],
        body: bytes | None,
        prefix: bytes,
        backend_timeout: float | None,
        info: _Attempt,
    ) -> upstream.UpstreamResponse | upstream2.Response:
        """One attempt: HTTP/1.1 (`head` is the request head) or HTTP/2 (`head` is the fields)."""
        if isinstance(head, bytes):
            return await self._attempt(ex, target, head, body, prefix, backend_timeout, info)
        return await self._attempt_h2(ex, target, head, body, prefix, backend_timeout, info)

    def _h2_fields(
        self,
        ex: AnyExchange,
        route: tables.Route,
        target: tables.Target,
        authority: str,
        headers: list[tuple[bytes, bytes]],
        up_path: str,
        body: bytes | None,
    ) -> list[tuple[bytes, bytes]]:
        """The request for an HTTP/2 backend: the same policies and X-Forwarded-* as
        `_upstream_head`, as pseudo-headers and fields. `te: trailers` goes along when the client
        sent it or the call is gRPC (gRPC servers require it)."""
        if target.request_headers is not None:
            headers = target.request_headers.apply(headers)
        rewrite = route.policy.rewrite
        if rewrite is not None and rewrite.authority is not None:
            new_authority = filters.rewrite_authority(rewrite.authority, authority, target)
            if new_authority != authority:
                headers = [h for h in headers if h[0] != b"host"]
                headers.append((b"host", new_authority.encode()))
        skip = HOP_BY_HOP
        for name, value in headers:
            if name == b"connection":
                skip = HOP_BY_HOP | {t.strip().lower() for t in value.split(b",")}
        host = target.address.encode()
        forwarded_for = ex.client_addr.encode()
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name in skip or name == b"x-forwarded-proto":
                continue
            if name == b"host":
                host = value
            elif name == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
            else:
                fields.append((name, value))
        te = ex.header("te")
        if (te is not None and "trailers" in te.lower()) or errors.is_grpc(ex.header("content-type")):
            fields.append((b"te", b"trailers"))
        if body is not None:
            if body or ex.method in ("POST", "PUT", "PATCH"):
                fields.append((b"content-length", b"%d" % len(body)))
        else:
            length = ex.header("content-length")
            if length is not None:
                fields.append((b"content-length", length.encode()))
        fields += (
            (b"x-forwarded-for", forwarded_for),
            (b"x-forwarded-proto", b"https" if ex.conn.scheme == "https" else b"http"),
        )
        target_uri = (up_path + ("?" + ex.query if ex.query else "")).encode("latin-1")
        return [
            (b":method", ex.method.encode()),
            (b":scheme", b"https" if target.tls is not None else b"http"),
            (b":authority", host),
            (b":path", target_uri),
            *fields,
        ]

    async def _attempt_h2(
        self,
        ex: AnyExchange,
        target: tables.Target,
        fields: list[tuple[bytes, bytes]],
        body: bytes | None,
        prefix: bytes,
        backend_timeout: float | None,
        info: _Attempt,
    ) -> upstream2.Response:
        """Send the request on a stream to an HTTP/2 backend; return once the response head is
        here. A streamed body keeps flowing while the response does (bidirectional gRPC). A
        stream the backend refused unprocessed (GOAWAY, REFUSED_STREAM) is sent again once when
        its body can be replayed."""
        timeout = backend_timeout or target.request_timeout
        info.upstream_addr = target.address
        for replay in (False, True):
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    resp = await self._h2.open(
                        target.host, target.port, target.connect_timeout, target.tls, fields, body == b""
                    )
                    try:
                        if body is None:
                            ex.send_continue()
                            resp.stream_from(ex.body, prefix)
                        elif body:
                            await resp.send(body, end=True)
                        await resp.head_waiter
                    except BaseException:
                        resp.discard()
                        raise
            except TimeoutError as exc:
                raise errors.UpstreamTimeout(f"backend request timeout ({timeout:g}s) exceeded") from exc
            except upstream2.Refused:
                if replay or body is None:
                    raise
                continue
            self._stats.upstream_call_duration.observe((target.name, "primary"), time.monotonic() - started)
            return resp
        raise errors.UpstreamError("upstream refused the stream")  # pragma: no cover - loop returns

    def _end_h2(self, ex: AnyExchange, resp: upstream2.Response, info: _Attempt) -> None:
        """End a response from an HTTP/2 backend, with its trailers when the client can take
        them: always over HTTP/2; over HTTP/1.1 when it sent `TE: trailers` and the response is
        chunked (else they are dropped). The grpc-status goes to the access log."""
        trailers = resp.trailers
        for name, value in trailers if trailers is not None else resp.headers:
            if name == b"grpc-status":
                info.grpc_status = value.decode("latin-1")
        if not trailers:
            ex.end()
        elif isinstance(ex, http2.Exchange):
            ex.end_with_trailers(trailers)
        elif isinstance(ex, http1.Exchange) and "trailers" in (ex.header("te") or "").lower():
            ex.end(http1.encode_headers(trailers))
        else:
            ex.end()

    # mirrors --------------------------------------------------------------------------------
    def _mirror(self, target: tables.Target, head: bytes, body: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._send_mirror(target, head, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _send_mirror(self, target: tables.Target, head: bytes, body: bytes) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(target.request_timeout or 30.0):
                conn = await self._pool.acquire(target.host, target.port, target.connect_timeout, target.tls)
                resp = upstream.UpstreamResponse(conn, head_only=head.startswith(b"HEAD "))
                conn.write(head)
                if body:
                    conn.write(body)
                await resp.head_waiter
                while await resp.body.read():
                    pass
        except (errors.ProxyError, TimeoutError, OSError) as exc:
            log.debug("mirror to %s failed: %s", target.address, exc)
            return
        self._stats.upstream_call_duration.observe((target.name, "mirror"), time.monotonic() - started)


_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _grpc_deadline(ex: AnyExchange) -> float | None:
    """The loop time by which a gRPC client wants its answer (`grpc-timeout: 1S`, `250m`, ...:
    at most 8 digits and a unit, gRPC's PROTOCOL-HTTP2.md); None without one or when malformed."""
    value = ex.header("grpc-timeout")
    if value is None or not 2 <= len(value) <= 9 or not value[:-1].isdigit():
        return None
    unit = _GRPC_TIMEOUT_UNITS.get(value[-1])
    if unit is None:
        return None
    return asyncio.get_running_loop().time() + int(value[:-1]) * unit


def _with_cors(exc: errors.PolicyError, cors: list[tuple[bytes, bytes]]) -> errors.PolicyError:
    """A policy refusal carries the route's CORS response headers, so a browser can read it."""
    if cors:
        exc.headers = (*exc.headers, *cors)
    return exc


def _charge(hooks: list[Any], sniffer: usage.Sniffer) -> None:
    """Charge token-based rate limits with the usage the response reported (none: nothing)."""
    tokens = sniffer.total()
    if tokens:
        for hook in hooks:
            hook(tokens)


class _NoServices:
    """Services for a proxy built without them (tests of plain routing): policies needing a
    runtime client fail closed with a clear error."""

    def client(self, kind: str, key: Any) -> Any:
        raise errors.PolicyUnavailable(f"no {kind} service in this proxy")
