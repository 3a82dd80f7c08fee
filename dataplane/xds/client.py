"""The delta xDS client: follows the controller's stream for one gateway and installs what compiles.

In: DeltaDiscoveryResponses carrying `agentgw.v1.Resource` from the controller at `address`.
Out: `apply(resources)` with the complete set of good resources whenever it changes, an ACK or
NACK per response, `synced` for readiness, and `Stats`. Called by `agentgw-proxy` when it runs
under a controller (XDS_ADDRESS, NAMESPACE, GATEWAY); `run` is its one long-lived task.

Per response (`evaluate`, pure):

1. candidate = held, plus the updated resources, minus the removed names;
2. compile it; every resource from this response with a problem keeps the version held before
   (or is dropped if it is new), and the compile repeats until the response's resources raise
   no new problem — one bad resource never takes the good ones down with it;
3. `apply` the candidate (minus anything that still does not compile) if it differs from what
   was applied last;
4. ACK, or NACK with INVALID_ARGUMENT and one "<name>: <reason>" line per rejected resource.
   A NACKed resource keeps its old version here, so `initial_resource_versions` after a
   reconnect makes the server resend it; the server itself resends it only once it changes.

The proxy identifies as node id "<ns>~<gateway>~<host>-<pid>" with metadata ROLE "<ns>~<gateway>".
With `token_file` (XDS_TOKEN_FILE: the pod's projected ServiceAccount token) the file is read
again at every (re)connect, so a rotated token is picked up, and sent as gRPC metadata
`authorization: Bearer <token>` for the controller's TokenReview check.
While the controller is away the last good config keeps serving; reconnects back off
exponentially with jitter (`Backoff`) and send the held versions, so only the difference comes.

Why standard protobuf + grpc.aio: envoy-data-plane (betterproto2) parses about 300x slower and
has no grpc.aio support, and xds-protos installs stray top-level packages into site-packages
(api/proto/xds/ads.proto is our wire-compatible copy of Envoy's envelope).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import socket
from collections.abc import Awaitable
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
from google.protobuf import message as pb_message
from google.protobuf import struct_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.xds import ads_pb2
from dataplane.config import compile as compiler
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)

TYPE_URL = "type.googleapis.com/" + pb.Resource.DESCRIPTOR.full_name
METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
INVALID_ARGUMENT = 3
"""google.rpc.Code of a NACK: the resources, not the transport, are at fault."""

CHANNEL_OPTIONS = [
    # Notice a vanished controller (no FIN) within ~40 s; the controller allows this rate.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # The first response carries a whole gateway; the 4 MiB default is a few thousand routes.
    ("grpc.max_receive_message_length", 128 * 1024 * 1024),
]


class Apply(Protocol):
    """Installs a complete, compiling resource set (e.g. `runtime.Worker.apply`); the result is
    ignored. `compiled` is that set already compiled, so the receiver need not compile it again."""

    def __call__(
        self, resources: list[pb.Resource], compiled: compiler.Compiled | None = None
    ) -> Awaitable[object]: ...


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts. Reset after any response is received."""

    initial: float = 0.1
    """A controller restart or leader change is usually over within a second: retry soon."""
    maximum: float = 15.0
    """A fleet of N proxies costs a controller that stays down about N/15 attempts a second."""
    factor: float = 2.0
    jitter: float = 0.5
    """Each delay is drawn from [d*(1-jitter), d] so proxies that lost the stream together spread out."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        return min(self.maximum, self._raw(attempt)) * (1 - self.jitter * random.random())

    def capped(self, attempt: int) -> bool:
        return self._raw(attempt) >= self.maximum

    def _raw(self, attempt: int) -> float:
        # the exponent is bounded: 2.0**1100 overflows, and a long outage reaches that many attempts
        return self.initial * self.factor ** min(attempt, 64)


class Stats:
    """The client's metrics, in the proxy's registry style; add `metrics` to what /metrics renders."""

    def __init__(self) -> None:
        self.acks = metrics.Counter("agentgw_xds_client_acks_total", "xDS responses accepted.", ())
        self.nacks = metrics.Counter(
            "agentgw_xds_client_nacks_total", "xDS responses rejected, in part or whole.", ()
        )
        self.resources_received = metrics.Counter(
            "agentgw_xds_client_resources_received_total", "Resources received, by result.", ("result",)
        )
        self.reconnects = metrics.Counter(
            "agentgw_xds_client_reconnects_total", "xDS streams opened after the first.", ()
        )
        self.connected = metrics.Gauge(
            "agentgw_xds_client_connected", "1 while a stream to the controller is open.", ()
        )
        self.metrics: list[metrics.Counter | metrics.Histogram] = [
            self.acks,
            self.nacks,
            self.resources_received,
            self.reconnects,
            self.connected,
        ]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one response does to the client's state."""

    held: dict[str, pb.Resource]
    """Name -> resource the client now has (a rejected update leaves the old one)."""
    versions: dict[str, str]
    """Name -> version of `held`; reported as initial_resource_versions on reconnect."""
    rejected: dict[str, str]
    """Name -> reason, for resources of this response that were not taken."""
    good: dict[str, pb.Resource]
    """`held` minus what does not compile (e.g. left without its parent): what to apply."""
    compiled: compiler.Compiled
    """`good`, compiled (without problems): handed to `apply` so it is not compiled twice."""


class _Undecodable(Exception):
    pass


def evaluate(
    held: dict[str, pb.Resource], versions: dict[str, str], response: ads_pb2.DeltaDiscoveryResponse
) -> Outcome:
    """Merge `response` into the held set, keeping the previous version of every bad resource
    (a bad new Policy is replaced by a deny-all stand-in, `fail_closed`)."""
    removed = set(response.removed_resources)
    cand = {n: r for n, r in held.items() if n not in removed}
    cand_versions = {n: v for n, v in versions.items() if n in cand}
    rejected: dict[str, str] = {}
    updated: set[str] = set()
    for r in response.resources:
        try:
            cand[r.name] = _decode(r)
        except _Undecodable as exc:
            rejected[r.name] = str(exc)
            continue
        cand_versions[r.name] = r.version
        updated.add(r.name)
    while True:
        compiled = compiler.compile_resources(list(cand.values()))
        new = {n: why for n, why in compiled.problems.items() if n in updated and n not in rejected}
        if not new:
            break
        rejected.update(new)
        for name in new:
            _revert(name, cand, cand_versions, held, versions, removed)
    good, compiled = _compiling(cand, compiled)
    return Outcome(cand, cand_versions, rejected, good, compiled)


def _decode(r: ads_pb2.Resource) -> pb.Resource:
    if r.resource.type_url != TYPE_URL:
        raise _Undecodable(f"type_url {r.resource.type_url!r} is not {TYPE_URL!r}")
    try:
        resource = pb.Resource.FromString(r.resource.value)
    except pb_message.DecodeError as exc:
        raise _Undecodable(f"cannot decode: {exc}") from exc
    kind = resource.WhichOneof("kind")
    if kind is None:
        raise _Undecodable("no resource kind set")
    key = getattr(resource, kind).key
    if key != r.name:
        raise _Undecodable(f"{kind} key {key!r} differs from the resource name")
    return resource


def _revert(
    name: str,
    cand: dict[str, pb.Resource],
    cand_versions: dict[str, str],
    held: dict[str, pb.Resource],
    versions: dict[str, str],
    removed: set[str],
) -> None:
    if name in held and name not in removed:
        cand[name] = held[name]
        cand_versions[name] = versions[name]
        return
    bad = cand.pop(name, None)
    cand_versions.pop(name, None)
    placeholder = fail_closed(bad) if bad is not None else None
    if placeholder is not None:
        cand[name] = placeholder
        cand_versions[name] = ""  # no accepted version: the server sends the policy again


def fail_closed(bad: pb.Resource) -> pb.Resource | None:
    """What stands in for a new Policy the proxy cannot apply: one that denies every request
    it targets (403), winning over other policies. Dropping the policy instead would serve its
    routes with no authentication or authorization at all. Other kinds have no stand-in."""
    if bad.WhichOneof("kind") != "policy":
        return None
    p = bad.policy
    deny = pb.AuthorizationRule(kind=pb.AuthorizationRule.REQUIRE, expression="false")
    return pb.Resource(
        policy=pb.Policy(
            key=p.key,
            name=p.name,
            target=p.target,
            traffic=pb.TrafficPolicy(authorization=pb.Authorization(rules=[deny])),
            override=True,
            namespace=p.namespace,
            creation_unix_seconds=p.creation_unix_seconds,
        )
    )


def _compiling(
    cand: dict[str, pb.Resource], compiled: compiler.Compiled
) -> tuple[dict[str, pb.Resource], compiler.Compiled]:
    """`cand` without resources that have problems, recompiled until nothing else falls out."""
    good = dict(cand)
    while drop := [n for n in compiled.problems if n in good]:
        for name in drop:
            del good[name]
        compiled = compiler.compile_resources(list(good.values()))
    return good, compiled


def nack_message(rejected: dict[str, str]) -> str:
    return "\n".join(f"{name}: {why}" for name, why in sorted(rejected.items()))


class XdsClient:
    """Follows the controller for one gateway. Start `run()` as a task; cancel it to stop."""

    def __init__(
        self,
        address: str,
        namespace: str,
        gateway: str,
        apply: Apply,
        *,
        node_id: str | None = None,
        stats: Stats | None = None,
        backoff: Backoff | None = None,
        token_file: str | None = None,
    ) -> None:
        self.address = address
        self.token_file = token_file
        """Read at every connect; its content goes out as `authorization: Bearer <token>`."""
        self.role = f"{namespace}~{gateway}"
        self.node_id = node_id or f"{self.role}~{socket.gethostname()}-{os.getpid()}"
        self.stats = stats or Stats()
        self.backoff = backoff or Backoff()
        self._apply = apply
        self.held: dict[str, pb.Resource] = {}
        """Name -> resource held (taken from the controller); replaced only by `handle`."""
        self.versions: dict[str, str] = {}
        """Name -> version of `held`."""
        self.rejected: dict[str, str] = {}
        """Name -> reason, for resources whose latest version was NACKed (for /config_dump)."""
        self._applied: dict[str, str] | None = None
        self._synced = asyncio.Event()
        self._attempt = 0

    @property
    def synced(self) -> bool:
        """True once a first complete config from the controller was applied (readiness)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def initial_request(self) -> ads_pb2.DeltaDiscoveryRequest:
        """Identity, wildcard subscription, and the versions already held."""
        metadata = struct_pb2.Struct()
        metadata.update({"ROLE": self.role})
        return ads_pb2.DeltaDiscoveryRequest(
            node=ads_pb2.Node(id=self.node_id, metadata=metadata, user_agent_name="agentgw"),
            type_url=TYPE_URL,
            resource_names_subscribe=["*"],
            initial_resource_versions=self.versions,
        )

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The stream's metadata: the bearer token when `token_file` is set (OSError if unreadable)."""
        if not self.token_file:
            return ()
        with open(self.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise OSError(f"{self.token_file} is empty")
        return (("authorization", f"Bearer {token}"),)

    async def run(self) -> None:
        """Stay connected forever, keeping the last good config while the controller is away."""
        while True:
            try:
                await self._session()
                log.info("xDS stream to %s ended; reconnecting", self.address)
            except grpc.aio.AioRpcError as exc:
                # the first failure of an outage, then one line per attempt at the capped delay
                loud = self._attempt == 0 or self.backoff.capped(self._attempt)
                log.log(
                    logging.WARNING if loud else logging.DEBUG,
                    "xDS stream to %s failed (attempt %d): %s %s",
                    self.address,
                    self._attempt + 1,
                    exc.code().name,
                    exc.details(),
                )
            except OSError as exc:
                log.warning("xDS token: %s", exc)
            except Exception:
                log.exception("xDS stream to %s failed", self.address)
            finally:
                self.stats.connected.set((), 0)
            await asyncio.sleep(self.backoff.delay(self._attempt))
            self._attempt += 1
            self.stats.reconnects.inc()

    async def _session(self) -> None:
        metadata = self.call_metadata()
        async with grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            call: Any = channel.stream_stream(
                METHOD,
                request_serializer=ads_pb2.DeltaDiscoveryRequest.SerializeToString,
                response_deserializer=ads_pb2.DeltaDiscoveryResponse.FromString,
            )(metadata=metadata)
            await call.write(self.initial_request())
            while (response := await call.read()) is not grpc.aio.EOF:
                self._attempt = 0
                self.stats.connected.set((), 1)
                await call.write(await self.handle(response))

    async def handle(self, response: ads_pb2.DeltaDiscoveryResponse) -> ads_pb2.DeltaDiscoveryRequest:
        """Take what is good from `response`, apply it, and return the ACK or NACK to send."""
        reply = ads_pb2.DeltaDiscoveryRequest(type_url=TYPE_URL, response_nonce=response.nonce)
        if response.type_url != TYPE_URL:
            reply.error_detail.code = INVALID_ARGUMENT
            reply.error_detail.message = f"type_url {response.type_url!r} is not {TYPE_URL!r}"
            self.stats.nacks.inc()
            return reply
        outcome = evaluate(self.held, self.versions, response)
        try:
            await self._install(outcome)
        except Exception as exc:
            log.exception("applying xDS response %s failed", response.nonce)
            reply.error_detail.code = INVALID_ARGUMENT
            reply.error_detail.message = f"apply failed: {exc}"
            self.stats.nacks.inc()
            return reply
        self._record(response, outcome)
        if outcome.rejected:
            reply.error_detail.code = INVALID_ARGUMENT
            reply.error_detail.message = nack_message(outcome.rejected)
            log.warning("xDS response %s: rejected\n%s", response.nonce, reply.error_detail.message)
            self.stats.nacks.inc()
        else:
            self.stats.acks.inc()
        return reply

    async def _install(self, outcome: Outcome) -> None:
        good_versions = {n: outcome.versions[n] for n in outcome.good}
        if good_versions != self._applied or not self.synced:
            await self._apply(list(outcome.good.values()), compiled=outcome.compiled)
            self._applied = good_versions
        if len(outcome.good) < len(outcome.held):
            left_out = sorted(set(outcome.held) - set(outcome.good))
            log.warning("xDS: held resources left out until they compile again: %s", ", ".join(left_out))
        self._synced.set()

    def _record(self, response: ads_pb2.DeltaDiscoveryResponse, outcome: Outcome) -> None:
        self.held, self.versions = outcome.held, outcome.versions
        accepted = [r.name for r in response.resources if r.name not in outcome.rejected]
        for name in itertools.chain(accepted, response.removed_resources):
            self.rejected.pop(name, None)
        self.rejected.update(outcome.rejected)
        self.stats.resources_received.inc(("accepted",), len(accepted))
        self.stats.resources_received.inc(("rejected",), len(outcome.rejected))
