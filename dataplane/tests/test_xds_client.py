"""The xDS client against a scripted fake ADS server (grpc.aio, in-process, 127.0.0.1).

The fake records every request and sends the DeltaDiscoveryResponses a test hands it, so each
test states the exact wire exchange. The controller's real server is not used here: the data
plane never imports the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.xds import ads_pb2, ads_pb2_grpc
from dataplane.xds import client as xds_client

WAIT = 5.0
FAST = xds_client.Backoff(initial=0.02, maximum=0.1)


class FakeAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Sends what `send` is given on the newest stream; queues every request it receives."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[ads_pb2.DeltaDiscoveryRequest] = asyncio.Queue()
        self.outbox: asyncio.Queue[ads_pb2.DeltaDiscoveryResponse] = asyncio.Queue()
        self.streams = 0
        self.nonces = 0

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        self.streams += 1
        self.outbox = outbox = asyncio.Queue()

        async def read() -> None:
            while (r := await context.read()) is not grpc.aio.EOF:
                await self.requests.put(r)

        reader = asyncio.create_task(read())
        try:
            while True:
                await context.write(await outbox.get())
        finally:
            reader.cancel()

    def send(self, resources: Sequence[pb.Resource] = (), removed: Sequence[str] = ()) -> str:
        self.nonces += 1
        nonce = f"n{self.nonces}"
        self.outbox.put_nowait(
            ads_pb2.DeltaDiscoveryResponse(
                type_url=xds_client.TYPE_URL,
                nonce=nonce,
                resources=[wire(r) for r in resources],
                removed_resources=removed,
            )
        )
        return nonce

    async def request(self) -> ads_pb2.DeltaDiscoveryRequest:
        return await asyncio.wait_for(self.requests.get(), WAIT)


def key_of(r: pb.Resource) -> str:
    return str(getattr(r, r.WhichOneof("kind")).key)


def version_of(r: pb.Resource) -> str:
    return hashlib.sha256(r.SerializeToString(deterministic=True)).hexdigest()


def wire(r: pb.Resource) -> ads_pb2.Resource:
    return ads_pb2.Resource(
        name=key_of(r),
        version=version_of(r),
        resource=any_pb2.Any(type_url=xds_client.TYPE_URL, value=r.SerializeToString()),
    )


def bind() -> pb.Resource:
    return pb.Resource(bind=pb.Bind(key="bind", port=8080))


def listener() -> pb.Resource:
    return pb.Resource(listener=pb.Listener(key="listener", bind_key="bind", name="l"))


def route(key: str, path: str = "/", listener_key: str = "listener", regex: bool = False) -> pb.Resource:
    match = pb.PathMatch(regex=path) if regex else pb.PathMatch(prefix=path)
    backend = pb.RouteBackend(ref=pb.BackendRef(host=pb.StaticBackend(host="127.0.0.1", port=9)), weight=1)
    return pb.Resource(
        route=pb.Route(
            key=key,
            listener_key=listener_key,
            name=key,
            matches=[pb.RouteMatch(path=match)],
            backends=[backend],
        )
    )


def base() -> list[pb.Resource]:
    return [bind(), listener(), route("r1", "/one"), route("r2", "/two")]


class Applied:
    """The `apply` callback: remembers every resource set it was given."""

    def __init__(self) -> None:
        self.sets: list[dict[str, pb.Resource]] = []

    async def __call__(self, resources: list[pb.Resource], compiled: object = None) -> None:
        self.sets.append({key_of(r): r for r in resources})

    @property
    def last(self) -> dict[str, pb.Resource]:
        return self.sets[-1]


class Harness:
    def __init__(self, fake: FakeAds, server: grpc.aio.Server, port: int) -> None:
        self.fake = fake
        self.servers = [server]
        self.port = port
        self.applied = Applied()
        self.client = xds_client.XdsClient(
            f"127.0.0.1:{port}", "team-a", "gw", self.applied, node_id="team-a~gw~pod-1", backoff=FAST
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.run())

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.01)

    async def connected(self) -> ads_pb2.DeltaDiscoveryRequest:
        """Start the client and return its first request."""
        self.start()
        return await self.fake.request()

    async def exchange(
        self, resources: Sequence[pb.Resource] = (), removed: Sequence[str] = ()
    ) -> ads_pb2.DeltaDiscoveryRequest:
        """Send one response and return the client's ACK/NACK for it."""
        nonce = self.fake.send(resources, removed)
        reply = await self.fake.request()
        assert reply.response_nonce == nonce
        return reply


async def start_server(fake: FakeAds, port: int = 0) -> tuple[grpc.aio.Server, int]:
    srv = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(fake, srv)
    bound = srv.add_insecure_port(f"127.0.0.1:{port}")
    await srv.start()
    return srv, bound


@pytest.fixture
async def xds() -> AsyncIterator[Harness]:
    fake = FakeAds()
    srv, port = await start_server(fake)
    h = Harness(fake, srv, port)
    try:
        yield h
    finally:
        if h.task is not None:
            h.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await h.task
        for s in h.servers:
            await s.stop(0)


async def test_the_first_request_names_the_gateway_and_subscribes_to_everything(xds: Harness) -> None:
    first = await xds.connected()
    assert first.node.id == "team-a~gw~pod-1"
    assert first.node.metadata.fields["ROLE"].string_value == "team-a~gw"
    assert first.type_url == "type.googleapis.com/agentgw.v1.Resource"
    assert list(first.resource_names_subscribe) == ["*"]
    assert dict(first.initial_resource_versions) == {}
    assert not first.response_nonce


def test_the_default_node_id_is_namespace_gateway_host_and_pid() -> None:
    c = xds_client.XdsClient("127.0.0.1:1", "ns", "gw", Applied())
    ns, gw, rest = c.node_id.split("~")
    assert (ns, gw) == ("ns", "gw")
    assert rest.rsplit("-", 1)[1].isdigit()


async def test_the_first_response_is_applied_whole_and_acked_and_marks_the_client_synced(
    xds: Harness,
) -> None:
    await xds.connected()
    assert not xds.client.synced
    reply = await xds.exchange(base())
    assert not reply.HasField("error_detail")
    assert xds.client.synced
    assert set(xds.applied.last) == {"bind", "listener", "r1", "r2"}
    assert xds.client.versions == {key_of(r): version_of(r) for r in base()}
    assert xds.client.stats.acks.get() == 1


async def test_an_empty_first_response_still_syncs(xds: Harness) -> None:
    await xds.connected()
    await xds.exchange([])
    assert xds.client.synced
    assert xds.applied.sets == [{}]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (route("r3", "(", regex=True), "invalid regular expression"),
        (route("r3", "/three", listener_key="nope"), "listener 'nope' does not exist"),
    ],
)
async def test_a_bad_new_resource_is_nacked_by_key_and_reason_while_the_good_ones_apply(
    xds: Harness, bad: pb.Resource, reason: str
) -> None:
    await xds.connected()
    reply = await xds.exchange([*base(), bad])
    assert reply.error_detail.code == 3
    (line,) = reply.error_detail.message.splitlines()
    assert line.startswith("r3: ") and reason in line
    assert set(xds.applied.last) == {"bind", "listener", "r1", "r2"}
    assert "r3" not in xds.client.versions
    assert xds.client.synced
    assert xds.client.stats.nacks.get() == 1
    assert reason in xds.client.rejected["r3"]


async def test_a_bad_update_keeps_the_previous_good_version(xds: Harness) -> None:
    await xds.connected()
    await xds.exchange(base())
    good_r1 = xds.applied.last["r1"]
    reply = await xds.exchange([route("r1", "(", regex=True), route("r2", "/two-b")])
    assert reply.error_detail.message.startswith("r1: ")
    assert xds.applied.last["r1"] == good_r1
    assert xds.applied.last["r2"].route.matches[0].path.prefix == "/two-b"
    assert xds.client.versions["r1"] == version_of(good_r1)
    assert xds.client.versions["r2"] == version_of(route("r2", "/two-b"))


async def test_a_resource_that_depends_on_a_rejected_one_in_the_same_response_is_rejected_too(
    xds: Harness,
) -> None:
    await xds.connected()
    bad_listener = pb.Resource(listener=pb.Listener(key="l2", bind_key="missing", name="l2"))
    reply = await xds.exchange([*base(), bad_listener, route("r3", "/three", listener_key="l2")])
    rejected = dict(line.split(": ", 1) for line in reply.error_detail.message.splitlines())
    assert set(rejected) == {"l2", "r3"}
    assert set(xds.applied.last) == {"bind", "listener", "r1", "r2"}


async def test_an_undecodable_or_misnamed_resource_is_nacked(xds: Harness) -> None:
    await xds.connected()
    junk = ads_pb2.Resource(
        name="junk", version="1", resource=any_pb2.Any(type_url="type.googleapis.com/x.Y")
    )
    misnamed = wire(route("r9"))
    misnamed.name = "other"
    xds.fake.outbox.put_nowait(
        ads_pb2.DeltaDiscoveryResponse(
            type_url=xds_client.TYPE_URL, nonce="n-junk", resources=[*map(wire, base()), junk, misnamed]
        )
    )
    reply = await xds.fake.request()
    rejected = dict(line.split(": ", 1) for line in reply.error_detail.message.splitlines())
    assert set(rejected) == {"junk", "other"}
    assert "differs from the resource name" in rejected["other"]
    assert set(xds.applied.last) == {"bind", "listener", "r1", "r2"}


async def test_a_removal_is_applied_and_forgotten(xds: Harness) -> None:
    await xds.connected()
    await xds.exchange(base())
    reply = await xds.exchange(removed=["r2"])
    assert not reply.HasField("error_detail")
    assert set(xds.applied.last) == {"bind", "listener", "r1"}
    assert "r2" not in xds.client.versions


async def test_a_response_that_changes_nothing_is_acked_without_applying(xds: Harness) -> None:
    await xds.connected()
    await xds.exchange(base())
    reply = await xds.exchange([route("r1", "(", regex=True)])
    assert reply.error_detail.code == 3
    assert len(xds.applied.sets) == 1


async def test_after_the_server_restarts_the_client_reconnects_with_the_versions_it_holds(
    xds: Harness,
) -> None:
    await xds.connected()
    await xds.exchange([*base(), route("r3", "(", regex=True)])
    held = dict(xds.client.versions)
    await xds.servers[0].stop(0)
    await xds.until(lambda: xds.client.stats.reconnects.get() >= 1, "the client retries")
    assert set(xds.applied.last) == {"bind", "listener", "r1", "r2"}  # still serving the last good config

    fake = FakeAds()
    srv, _ = await start_server(fake, xds.port)
    xds.servers.append(srv)
    again = await asyncio.wait_for(fake.requests.get(), WAIT)
    assert dict(again.initial_resource_versions) == held
    assert "r3" not in again.initial_resource_versions
    assert again.node.metadata.fields["ROLE"].string_value == "team-a~gw"
    xds.fake = fake
    await xds.exchange(removed=["r2"])
    assert set(xds.applied.last) == {"bind", "listener", "r1"}


async def test_a_response_of_another_type_is_nacked(xds: Harness) -> None:
    await xds.connected()
    xds.fake.outbox.put_nowait(
        ads_pb2.DeltaDiscoveryResponse(type_url="type.googleapis.com/x.Y", nonce="n-x")
    )
    reply = await xds.fake.request()
    assert reply.response_nonce == "n-x"
    assert reply.error_detail.code == 3
    assert not xds.client.synced


def test_backoff_doubles_from_a_tenth_of_a_second_to_fifteen_seconds_with_jitter() -> None:
    b = xds_client.Backoff()
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (10, 15.0), (5000, 15.0)]:
        d = b.delay(attempt)
        assert ceiling * 0.5 <= d <= ceiling


async def test_a_bad_new_policy_is_nacked_and_its_routes_fail_closed_not_open(xds: Harness) -> None:
    await xds.connected()
    bad = pb.Resource(
        policy=pb.Policy(
            key="p1",
            name="p1",
            target=pb.PolicyTarget(route_key="r1"),
            traffic=pb.TrafficPolicy(
                api_key=pb.ApiKeyAuth(mode=pb.AUTH_MODE_STRICT, keys=[pb.ApiKey(key="k")]),
                authorization=pb.Authorization(rules=[pb.AuthorizationRule(expression="apiKey.team ==")]),
            ),
        )
    )
    reply = await xds.exchange([*base(), bad])
    assert (
        reply.error_detail.message.startswith("p1: ")
        and "invalid CEL expression" in reply.error_detail.message
    )
    stand_in = xds.applied.last["p1"].policy
    assert stand_in.override and stand_in.target.route_key == "r1"
    assert [r.expression for r in stand_in.traffic.authorization.rules] == ["false"]
    assert xds.client.versions["p1"] == ""  # no accepted version: sent again after a reconnect
