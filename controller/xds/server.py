"""The delta ADS server: streams each proxy the resources of its gateway, one change at a time.

In: `cache.SnapshotSource` (current snapshot per gateway, change notification) and the proxies'
DeltaDiscoveryRequests. Out: DeltaDiscoveryResponses carrying `agentgw.v1.Resource` (type URL
`snapshot.TYPE_URL`), and metrics. Called by `agentgw-controller` through `serve`.

Per stream (`StreamState` holds it; only that stream's handler touches it):

1. The first request names the proxy: node metadata ROLE "<namespace>~<gateway>", or else the
   first two "~"-separated parts of the node id. A proxy receives only its gateway's resources;
   while its gateway has no snapshot it waits and nothing is sent.
2. Subscription: an empty first `resource_names_subscribe`, or "*", is a wildcard subscription
   (every resource of the gateway); explicit names are honoured too. `initial_resource_versions`
   of a reconnecting proxy seed what the server believes it has, so the first response carries
   only what differs, and names it has that the snapshot lacks come back as removed.
3. Each push carries only resources whose content-hash version differs from what the proxy has,
   and removals as `removed_resources`. The first push after connecting is sent even when empty:
   it tells the proxy it is in sync (readiness).
4. ACK (`response_nonce`, no `error_detail`): counted, push-to-ACK latency observed. NACK: logged,
   counted and recorded per stream; the resources it names ("<name>: <reason>" lines) revert to
   the version the proxy still has, and the rejected version is not resent until it changes.

Authorization (optional `Authorizer`, e.g. controller.k8s.tokenreview): after the first request
names the gateway, the stream's gRPC metadata `authorization: Bearer <token>` is checked for that
gateway before anything is sent; a refusal (`Denied`) ends the stream with its status code
(UNAUTHENTICATED, PERMISSION_DENIED, or UNAVAILABLE while the check itself cannot run) and is
counted in `agentgw_xds_auth_denied_total`.

Why standard protobuf + grpc.aio (api/proto/xds/ads.proto is our wire-compatible copy of Envoy's
envelope): envoy-data-plane (betterproto2) parses about 300x slower and has no grpc.aio server,
and xds-protos installs stray top-level packages (envoy, xds, udpa, validate, ...) into
site-packages (../shared/research/python-stack.md).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
from google.protobuf import any_pb2

from api.proto.xds import ads_pb2, ads_pb2_grpc
from controller.xds import cache, metrics, snapshot

log = logging.getLogger(__name__)

WILDCARD = "*"
NACKS_KEPT = 16
"""NACKs remembered per stream for inspection; older ones are only in the log and metrics."""
PENDING_KEPT = 64
"""Unanswered pushes remembered per stream. A proxy answers every push, so this only bounds a broken one."""

SERVER_OPTIONS = [
    # Ping idle proxies so a vanished one (node gone, no FIN) is noticed within ~40 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Proxies ping every 30 s on a quiet stream; grpc's default (one ping per 5 min without
    # data) would answer them with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # initial_resource_versions of a large gateway exceeds the 4 MiB default.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class Denied(Exception):
    """An `Authorizer` refuses a stream: it ends with `code` (a grpc.StatusCode) and `message`."""

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Authorizer(Protocol):
    """Decides whether the bearer of a token may receive a gateway's resources."""

    async def authorize(self, token: str | None, gateway: cache.GatewayKey) -> None:
        """Return if allowed; raise `Denied` otherwise. `token` is None when the stream sent none."""
        ...


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, else None."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class ProtocolError(Exception):
    """The first request cannot start a stream; the stream ends with INVALID_ARGUMENT."""


def gateway_of(node: ads_pb2.Node) -> cache.GatewayKey | None:
    """The gateway a proxy serves: metadata ROLE, else the node id's "<ns>~<gateway>~..." prefix."""
    role = node.metadata.fields.get("ROLE")
    if role is not None and role.WhichOneof("kind") == "string_value" and role.string_value:
        return cache.parse_role(role.string_value)
    parts = node.id.split("~")
    return cache.parse_role("~".join(parts[:2])) if len(parts) >= 2 else None


@dataclasses.dataclass(frozen=True, slots=True)
class Nack:
    """One rejected push, as recorded on its stream."""

    nonce: str
    names: tuple[str, ...]
    """The resources the proxy rejected (all of the push when its message named none)."""
    message: str
    at: float
    """Unix time."""


@dataclasses.dataclass(slots=True)
class _Push:
    sent_at: float
    """Monotonic time."""
    versions: dict[str, tuple[str | None, str]]
    """Name -> (version the proxy had before, version sent)."""


@dataclasses.dataclass
class StreamState:
    """What the server knows about one proxy stream. Only that stream's handler mutates it."""

    stream_id: int
    node_id: str
    gateway: cache.GatewayKey
    wildcard: bool = False
    subscribed: set[str] = dataclasses.field(default_factory=set)
    """Names subscribed explicitly (besides the wildcard)."""
    known: dict[str, str] = dataclasses.field(default_factory=dict)
    """Name -> version the proxy has, as far as the server knows."""
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)
    """Name -> version the proxy NACKed; not resent while the snapshot still has that version."""
    pending: dict[str, _Push] = dataclasses.field(default_factory=dict)
    """Nonce -> push not yet ACKed or NACKed, oldest first."""
    nacks: collections.deque[Nack] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=NACKS_KEPT)
    )
    acks: int = 0
    pushes: int = 0

    def in_scope(self, name: str) -> bool:
        return self.wildcard or name in self.subscribed

    def update_subscription(self, request: ads_pb2.DeltaDiscoveryRequest, first: bool) -> bool:
        """Apply (un)subscribes; on the first request also initial versions. True if anything changed."""
        before = (self.wildcard, set(self.subscribed))
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        if first and not subscribe:
            self.wildcard = True
        if WILDCARD in subscribe:
            self.wildcard = True
        if WILDCARD in unsubscribe:
            self.wildcard = False
        self.subscribed |= subscribe - {WILDCARD}
        self.subscribed -= unsubscribe
        if first:
            self.known.update(request.initial_resource_versions)
        for name in [n for n in self.known if not self.in_scope(n)]:
            del self.known[name]
        self.rejected = {n: v for n, v in self.rejected.items() if self.in_scope(n)}
        return first or before != (self.wildcard, self.subscribed)

    def diff(self, snap: snapshot.Snapshot) -> tuple[list[snapshot.Entry], list[str]]:
        """Entries to send (the proxy lacks their version) and names to remove."""
        send = [
            e
            for name, e in snap.entries.items()
            if self.in_scope(name)
            and self.known.get(name) != e.version
            and self.rejected.get(name) != e.version
        ]
        removed = sorted(n for n in self.known if n not in snap.entries)
        return send, removed

    def record_push(self, nonce: str, send: Iterable[snapshot.Entry], removed: Iterable[str]) -> None:
        push = _Push(time.monotonic(), {})
        for e in send:
            push.versions[e.name] = (self.known.get(e.name), e.version)
            self.known[e.name] = e.version
            self.rejected.pop(e.name, None)
        for name in removed:
            self.known.pop(name, None)
            self.rejected.pop(name, None)
        self.pending[nonce] = push
        self.pushes += 1
        while len(self.pending) > PENDING_KEPT:
            del self.pending[next(iter(self.pending))]

    def ack(self, nonce: str) -> float | None:
        """Record an ACK; the push-to-ACK seconds, or None for a nonce not pending."""
        self.acks += 1
        push = self.pending.pop(nonce, None)
        return None if push is None else time.monotonic() - push.sent_at

    def nack(self, nonce: str, message: str) -> tuple[Nack, float | None]:
        """Record a NACK: named resources revert to the version the proxy still has."""
        push = self.pending.pop(nonce, None)
        names = _rejected_names(message, push.versions) if push else ()
        for name in names:
            assert push is not None
            self._revert(name, *push.versions[name])
        record = Nack(nonce=nonce, names=names, message=message, at=time.time())
        self.nacks.append(record)
        return record, None if push is None else time.monotonic() - push.sent_at

    def _revert(self, name: str, before: str | None, sent: str) -> None:
        if self.known.get(name) != sent:
            return  # a later push already replaced it
        # A new resource the proxy refused stays known with no version (""): the proxy may hold a
        # stand-in for it (a fail-closed Policy), so deleting it must still send a removal.
        self.known[name] = before if before is not None else ""
        self.rejected[name] = sent


def _rejected_names(message: str, pushed: dict[str, tuple[str | None, str]]) -> tuple[str, ...]:
    """Names from "<name>: <reason>" lines that were in the push; all of it if none is named."""
    named = [line.split(": ", 1)[0].strip() for line in message.splitlines()]
    found = tuple(dict.fromkeys(n for n in named if n in pushed))
    return found or tuple(pushed)


class DeltaAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """The DeltaAggregatedResources handler. `streams` lists the open streams for inspection."""

    def __init__(
        self,
        source: cache.SnapshotSource,
        stats: metrics.Registry | None = None,
        auth: Authorizer | None = None,
    ) -> None:
        self.source = source
        self.stats = stats or metrics.Registry()
        self.auth = auth
        """None: every stream is served (`--xds-auth none`)."""
        self.denied = _denied_counter(self.stats)
        self.streams: dict[int, StreamState] = {}
        """Stream id -> state; each handler adds its own on open and removes it on close."""
        self._inboxes: dict[int, asyncio.Queue[Any]] = {}
        """Stream id -> its handler's inbox; `close_streams` puts the end marker there."""
        self._no_streams = asyncio.Event()
        self._no_streams.set()
        self._stream_ids = itertools.count(1)
        self._nonces = itertools.count(1)
        self.on_nack: Callable[[], None] | None = None
        """Called after a proxy rejects resources (the reconciler reports them in statuses)."""

    def rejections(self) -> dict[str, str]:
        """Resource name -> why a connected proxy rejects its current version ("<reason> (proxy
        <node id>)"), for every resource some open stream has NACKed and not accepted since."""
        out: dict[str, str] = {}
        for state in self.streams.values():
            if not state.rejected:
                continue
            reasons: dict[str, str] = {}
            for nack in state.nacks:  # oldest first: later NACKs overwrite
                for line in nack.message.splitlines():
                    name, sep, why = line.partition(": ")
                    if sep and name in state.rejected:
                        reasons[name] = why
            for name in state.rejected:
                out.setdefault(name, f"{reasons.get(name, 'rejected')} (proxy {state.node_id})")
        return out

    async def close_streams(self) -> None:
        """End every open stream with status OK (proxies reconnect) and wait until they are gone.

        Call it before `server.stop(grace)` (bounded by `asyncio.timeout`): grpc.aio cancels the
        streams still open at stop, logs a CancelledError traceback for each, and the proxies see
        CANCELLED instead of OK.
        """
        for inbox in self._inboxes.values():
            inbox.put_nowait(None)
        await self._no_streams.wait()

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        try:
            state = self._open(first)
        except ProtocolError as exc:
            log.warning("rejecting xDS stream from %r: %s", first.node.id, exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        if self.auth is not None:
            try:
                await self.auth.authorize(bearer_token(context.invocation_metadata()), state.gateway)
            except Denied as exc:
                self.denied.inc((str(state.gateway), exc.code.name))
                log.warning(
                    "refusing xDS stream from %r for gateway %s: %s %s",
                    state.node_id,
                    state.gateway,
                    exc.code.name,
                    exc.message,
                )
                await context.abort(exc.code, exc.message)
                return
        labels = (str(state.gateway),)
        self.streams[state.stream_id] = state
        self._no_streams.clear()
        self.stats.connected_proxies.inc(labels)
        log.info(
            "proxy %s connected for gateway %s (stream %d)", state.node_id, state.gateway, state.stream_id
        )
        try:
            await self._serve(state, first, context)
        finally:
            del self.streams[state.stream_id]
            if not self.streams:
                self._no_streams.set()
            self.stats.connected_proxies.inc(labels, -1)
            log.info("proxy %s disconnected (stream %d)", state.node_id, state.stream_id)

    def _open(self, first: ads_pb2.DeltaDiscoveryRequest) -> StreamState:
        if first.type_url != snapshot.TYPE_URL:
            raise ProtocolError(f"type_url {first.type_url!r} is not served; ask for {snapshot.TYPE_URL!r}")
        gateway = gateway_of(first.node)
        if gateway is None:
            raise ProtocolError(
                f"node {first.node.id!r}: set metadata ROLE to '<namespace>~<gateway>' "
                "or use a node id '<namespace>~<gateway>~<pod>'"
            )
        return StreamState(stream_id=next(self._stream_ids), node_id=first.node.id, gateway=gateway)

    async def _serve(self, state: StreamState, first: ads_pb2.DeltaDiscoveryRequest, context: Any) -> None:
        """Handle requests and snapshot changes, in arrival order, until the proxy hangs up."""
        inbox: asyncio.Queue[ads_pb2.DeltaDiscoveryRequest | snapshot.Snapshot | None] = asyncio.Queue()
        self._inboxes[state.stream_id] = inbox
        tasks = [
            asyncio.create_task(_read_requests(context, inbox)),
            asyncio.create_task(_watch_snapshots(self.source, state.gateway, inbox)),
        ]
        try:
            state.update_subscription(first, first=True)
            current: snapshot.Snapshot | None = None
            while (item := await inbox.get()) is not None:
                if isinstance(item, snapshot.Snapshot):
                    current = self.source.current(state.gateway)
                elif not self._handle_request(state, item):
                    continue
                if current is not None:
                    await self._push(state, current, context)
        finally:
            del self._inboxes[state.stream_id]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _handle_request(self, state: StreamState, request: ads_pb2.DeltaDiscoveryRequest) -> bool:
        """ACK/NACK bookkeeping; True if the subscription changed and a push may be due."""
        if request.type_url and request.type_url != snapshot.TYPE_URL:
            log.debug("stream %d: ignoring a request for %s", state.stream_id, request.type_url)
            return False
        labels = (str(state.gateway),)
        if request.response_nonce:
            if request.HasField("error_detail"):
                nack, latency = state.nack(request.response_nonce, request.error_detail.message)
                self.stats.nacks.inc(labels)
                names = ", ".join(nack.names) or "unknown push"
                log.warning(
                    "proxy %s rejected push %s (%s): %s", state.node_id, nack.nonce, names, nack.message
                )
                if self.on_nack is not None and nack.names:
                    self.on_nack()
            else:
                latency = state.ack(request.response_nonce)
                self.stats.acks.inc(labels)
            if latency is not None:
                self.stats.ack_latency.observe(labels, latency)
        return state.update_subscription(request, first=False)

    async def _push(self, state: StreamState, snap: snapshot.Snapshot, context: Any) -> None:
        send, removed = state.diff(snap)
        if not send and not removed and state.pushes:
            return
        nonce = str(next(self._nonces))
        response = ads_pb2.DeltaDiscoveryResponse(
            system_version_info=snap.version,
            type_url=snapshot.TYPE_URL,
            nonce=nonce,
            resources=[
                ads_pb2.Resource(
                    name=e.name,
                    version=e.version,
                    resource=any_pb2.Any(type_url=snapshot.TYPE_URL, value=e.value),
                )
                for e in send
            ],
            removed_resources=removed,
        )
        state.record_push(nonce, send, removed)
        await context.write(response)
        labels = (str(state.gateway),)
        self.stats.pushes.inc(labels)
        self.stats.resources_sent.inc(labels, len(send))
        self.stats.resources_removed.inc(labels, len(removed))
        log.debug(
            "stream %d: push %s of snapshot %s: %d resources, %d removed",
            state.stream_id,
            nonce,
            snap.version,
            len(send),
            len(removed),
        )


def _denied_counter(stats: metrics.Registry) -> metrics.Counter:
    """The refused-streams counter, added to `stats` once (a registry may serve several servers)."""
    name = "agentgw_xds_auth_denied_total"
    for m in stats.metrics:
        if m.name == name and isinstance(m, metrics.Counter):
            return m
    counter = metrics.Counter(
        name, "xDS streams refused by authorization, by status code.", ("gateway", "code")
    )
    stats.metrics.append(counter)
    return counter


async def _read_requests(context: Any, inbox: asyncio.Queue[Any]) -> None:
    """Move requests into `inbox`; None marks the proxy's end of stream (or a broken one)."""
    try:
        while (request := await context.read()) is not grpc.aio.EOF:
            await inbox.put(request)
    finally:
        inbox.put_nowait(None)


async def _watch_snapshots(
    source: cache.SnapshotSource, gateway: cache.GatewayKey, inbox: asyncio.Queue[Any]
) -> None:
    """Put each new snapshot of `gateway` into `inbox`; the handler diffs against the newest."""
    seen: snapshot.Snapshot | None = None
    while True:
        seen = await source.next(gateway, seen)
        await inbox.put(seen)


async def start(servicer: DeltaAds, port: int, host: str = "0.0.0.0") -> tuple[grpc.aio.Server, int]:
    """Start a grpc.aio server with `servicer`; returns it and the bound port (`port` 0 picks one)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    await server.start()
    log.info("xDS (delta ADS) listening on %s", address if port else f"{host}:{bound}")
    return server, int(bound)


async def serve(
    source: cache.SnapshotSource,
    port: int,
    host: str = "0.0.0.0",
    stats: metrics.Registry | None = None,
    auth: Authorizer | None = None,
) -> grpc.aio.Server:
    """Serve delta ADS from `source` on host:port. Stop it with `await server.stop(grace)`."""
    server, _ = await start(DeltaAds(source, stats, auth), port, host)
    return server
