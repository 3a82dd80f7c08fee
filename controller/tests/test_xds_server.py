"""The delta ADS server, driven over real gRPC on 127.0.0.1 by a raw client stream (no proxy).

Each test opens streams the way a proxy would (`Proxy` below speaks the wire protocol by hand)
and checks what the server sends and what it records per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from google.protobuf import struct_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.xds import ads_pb2, ads_pb2_grpc
from controller.tests import xds_fixtures as fx
from controller.xds import cache, server, snapshot

GW_A = cache.GatewayKey("team-a", "gw")
GW_B = cache.GatewayKey("team-b", "gw")
WAIT = 5.0
QUIET = 0.2
"""How long 'nothing is sent' is watched; the server answers within milliseconds when it does send."""


class Proxy:
    """One raw delta ADS stream: requests written by hand, responses queued by a reader task."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        self.responses: asyncio.Queue[ads_pb2.DeltaDiscoveryResponse] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (r := await self.call.read()) is not grpc.aio.EOF:
            await self.responses.put(r)

    async def subscribe(
        self, role: str = GW_A.role, node_id: str = "", initial: dict[str, str] | None = None
    ) -> None:
        node = ads_pb2.Node(id=node_id or f"{role}~pod-1")
        if role:
            node.metadata.CopyFrom(struct_pb2.Struct(fields={"ROLE": struct_pb2.Value(string_value=role)}))
        await self.call.write(
            ads_pb2.DeltaDiscoveryRequest(
                node=node, type_url=snapshot.TYPE_URL, initial_resource_versions=initial or {}
            )
        )

    async def recv(self) -> ads_pb2.DeltaDiscoveryResponse:
        return await asyncio.wait_for(self.responses.get(), WAIT)

    async def nothing_arrives(self) -> None:
        await asyncio.sleep(QUIET)
        assert self.responses.empty(), f"unexpected push: {self.responses.get_nowait()}"

    async def ack(self, response: ads_pb2.DeltaDiscoveryResponse) -> None:
        await self.call.write(
            ads_pb2.DeltaDiscoveryRequest(type_url=snapshot.TYPE_URL, response_nonce=response.nonce)
        )

    async def nack(self, response: ads_pb2.DeltaDiscoveryResponse, message: str) -> None:
        await self.call.write(
            ads_pb2.DeltaDiscoveryRequest(
                type_url=snapshot.TYPE_URL,
                response_nonce=response.nonce,
                error_detail=ads_pb2.Status(code=3, message=message),
            )
        )

    async def close(self) -> None:
        await self.call.done_writing()
        await asyncio.wait_for(self.reader, WAIT)


class Harness:
    def __init__(self, port: int, c: cache.SnapshotCache, ads: server.DeltaAds) -> None:
        self.cache = c
        self.ads = ads
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.proxies: list[Proxy] = []

    def proxy(self) -> Proxy:
        p = Proxy(self.channel)
        self.proxies.append(p)
        return p

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.01)

    def snapshot(self, gateway: cache.GatewayKey) -> snapshot.Snapshot:
        snap = self.cache.current(gateway)
        assert snap is not None
        return snap

    def only_stream(self) -> server.StreamState:
        (state,) = self.ads.streams.values()
        return state


@pytest.fixture
async def xds() -> AsyncIterator[Harness]:
    c = cache.SnapshotCache()
    ads = server.DeltaAds(c, c.stats)
    srv, port = await server.start(ads, 0, "127.0.0.1")
    h = Harness(port, c, ads)
    try:
        yield h
    finally:
        await asyncio.wait_for(ads.close_streams(), WAIT)
        for p in h.proxies:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await asyncio.wait_for(p.reader, WAIT)
        await h.channel.close()
        await srv.stop(0)


def names(response: ads_pb2.DeltaDiscoveryResponse) -> set[str]:
    return {r.name for r in response.resources}


def versions(response: ads_pb2.DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in response.resources}


def with_route(resources: list[pb.Resource], key: str, path: str) -> list[pb.Resource]:
    """`resources` with route `key` replaced by one matching `path`."""
    out = [r for r in resources if not (r.HasField("route") and r.route.key == key)]
    old = next(r for r in resources if r.HasField("route") and r.route.key == key)
    new = pb.Resource()
    new.CopyFrom(old)
    new.route.matches[0].path.prefix = path
    return [*out, new]


async def test_a_wildcard_subscription_gets_every_resource_of_its_gateway_and_none_of_another(
    xds: Harness,
) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    xds.cache.publish(GW_B, fx.gateway("b-"))
    a, b = xds.proxy(), xds.proxy()
    await a.subscribe(GW_A.role)
    await b.subscribe(GW_B.role)
    got_a, got_b = await a.recv(), await b.recv()
    assert names(got_a) == {"a-bind", "a-listener", "a-backend", "a-route0", "a-route1"}
    assert names(got_b) == {"b-bind", "b-listener", "b-backend", "b-route0", "b-route1"}
    assert got_a.type_url == snapshot.TYPE_URL
    assert versions(got_a) == xds.snapshot(GW_A).versions()
    first = got_a.resources[0]
    assert first.resource.type_url == snapshot.TYPE_URL
    assert pb.Resource.FromString(first.resource.value) == xds.snapshot(GW_A).entries[first.name].resource()
    xds.cache.publish(GW_B, fx.gateway("b-", paths=("/b-only",)))
    assert names(await b.recv()) == {"b-route0"}
    await a.nothing_arrives()


async def test_a_proxy_without_role_metadata_is_placed_by_its_node_id(xds: Harness) -> None:
    xds.cache.publish(GW_B, fx.gateway("b-"))
    p = xds.proxy()
    await p.subscribe(role="", node_id=f"{GW_B.role}~pod-7")
    assert "b-bind" in names(await p.recv())


async def test_a_node_that_names_no_gateway_is_refused(xds: Harness) -> None:
    p = xds.proxy()
    await p.subscribe(role="", node_id="just-a-pod")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(p.reader, WAIT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ROLE" in caught.value.details()


async def test_an_ack_is_counted_and_ends_the_push(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe()
    await p.ack(await p.recv())
    await xds.until(lambda: xds.only_stream().acks == 1, "the ACK is recorded")
    state = xds.only_stream()
    assert state.pending == {}
    assert state.known == xds.snapshot(GW_A).versions()
    assert xds.cache.stats.acks.get((str(GW_A),)) == 1
    assert xds.cache.stats.ack_latency.count((str(GW_A),)) == 1
    assert xds.cache.stats.connected_proxies.get((str(GW_A),)) == 1
    assert 'agentgw_xds_acks_total{gateway="team-a/gw"} 1' in xds.cache.stats.render()


async def test_updating_one_resource_sends_exactly_that_resource(xds: Harness) -> None:
    resources = fx.gateway("a-")
    xds.cache.publish(GW_A, resources)
    p = xds.proxy()
    await p.subscribe()
    await p.ack(await p.recv())
    xds.cache.publish(GW_A, with_route(resources, "a-route1", "/changed"))
    update = await p.recv()
    assert versions(update) == {"a-route1": xds.snapshot(GW_A).entries["a-route1"].version}
    assert list(update.removed_resources) == []
    assert (
        pb.Resource.FromString(update.resources[0].resource.value).route.matches[0].path.prefix == "/changed"
    )


async def test_removing_one_resource_sends_its_name_as_removed(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-", paths=("/a", "/b")))
    p = xds.proxy()
    await p.subscribe()
    await p.ack(await p.recv())
    xds.cache.publish(GW_A, fx.gateway("a-", paths=("/a",)))
    update = await p.recv()
    assert list(update.removed_resources) == ["a-route1"]
    assert list(update.resources) == []


async def test_a_nack_is_recorded_and_the_rejected_version_is_not_resent_until_it_changes(
    xds: Harness,
) -> None:
    resources = fx.gateway("a-")
    xds.cache.publish(GW_A, resources)
    p = xds.proxy()
    await p.subscribe()
    initial = await p.recv()
    await p.ack(initial)
    good_version = versions(initial)["a-route1"]

    xds.cache.publish(GW_A, with_route(resources, "a-route1", "/bad"))
    bad = await p.recv()
    await p.nack(bad, "a-route1: matches[0].path.regex: invalid regular expression")
    await xds.until(lambda: len(xds.only_stream().nacks) == 1, "the NACK is recorded")
    state = xds.only_stream()
    (nack,) = state.nacks
    assert nack.names == ("a-route1",)
    assert nack.nonce == bad.nonce
    assert "invalid regular expression" in nack.message
    assert state.known["a-route1"] == good_version
    assert xds.cache.stats.nacks.get((str(GW_A),)) == 1

    # another change: only that one is sent, the rejected route is not pushed again
    xds.cache.publish(GW_A, with_route(with_route(resources, "a-route1", "/bad"), "a-route0", "/zero"))
    assert names(await p.recv()) == {"a-route0"}
    # the rejected route changes: now it is sent
    xds.cache.publish(GW_A, with_route(with_route(resources, "a-route1", "/fixed"), "a-route0", "/zero"))
    assert names(await p.recv()) == {"a-route1"}


async def test_a_reconnecting_proxy_gets_only_what_differs_from_its_initial_versions(xds: Harness) -> None:
    resources = fx.gateway("a-", paths=("/a", "/b"))
    xds.cache.publish(GW_A, resources)
    first = xds.proxy()
    await first.subscribe()
    had = versions(await first.recv())
    await first.close()
    await xds.until(lambda: not xds.ads.streams, "the first stream is gone")

    changed = with_route(fx.gateway("a-", paths=("/a", "/b", "/c")), "a-route0", "/a2")
    changed = [r for r in changed if not (r.HasField("route") and r.route.key == "a-route1")]
    xds.cache.publish(GW_A, changed)
    second = xds.proxy()
    await second.subscribe(initial={**had, "ghost": "v0"})
    diff = await second.recv()
    assert names(diff) == {"a-route0", "a-route2"}
    assert sorted(diff.removed_resources) == ["a-route1", "ghost"]


async def test_a_reconnecting_proxy_that_is_up_to_date_gets_an_empty_first_push(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe(initial=xds.snapshot(GW_A).versions())
    empty = await p.recv()
    assert list(empty.resources) == [] and list(empty.removed_resources) == []
    await p.ack(empty)
    await p.nothing_arrives()


async def test_a_proxy_whose_gateway_has_no_snapshot_waits_until_one_is_published(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe(GW_B.role)
    await xds.until(lambda: len(xds.ads.streams) == 1, "the stream is open")
    await p.nothing_arrives()
    assert xds.only_stream().pushes == 0
    xds.cache.publish(GW_B, fx.gateway("b-"))
    assert names(await p.recv()) == {"b-bind", "b-listener", "b-backend", "b-route0", "b-route1"}


async def test_a_rejected_snapshot_sends_nothing_and_the_previous_one_stays(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe()
    await p.ack(await p.recv())
    with pytest.raises(snapshot.InconsistentSnapshot):
        xds.cache.publish(GW_A, [*fx.gateway("a-"), fx.route("a-route9", "no-such-listener", "a-backend")])
    await p.nothing_arrives()


async def test_close_streams_ends_every_stream_with_status_ok(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe()
    await p.recv()
    await xds.ads.close_streams()
    await asyncio.wait_for(p.reader, WAIT)
    assert await p.call.code() == grpc.StatusCode.OK
    assert xds.ads.streams == {}


async def test_closing_streams_updates_connected_proxies(xds: Harness) -> None:
    xds.cache.publish(GW_A, fx.gateway("a-"))
    p = xds.proxy()
    await p.subscribe()
    await p.recv()
    assert xds.cache.stats.connected_proxies.get((str(GW_A),)) == 1
    await p.close()
    await xds.until(lambda: xds.cache.stats.connected_proxies.get((str(GW_A),)) == 0, "the gauge drops")


def request(
    subscribe: tuple[str, ...] = (), unsubscribe: tuple[str, ...] = ()
) -> ads_pb2.DeltaDiscoveryRequest:
    return ads_pb2.DeltaDiscoveryRequest(
        type_url=snapshot.TYPE_URL, resource_names_subscribe=subscribe, resource_names_unsubscribe=unsubscribe
    )


def test_an_explicit_subscription_gets_only_the_names_it_asked_for() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    state = server.StreamState(stream_id=1, node_id="n", gateway=GW_A)
    state.update_subscription(request(subscribe=("a-bind", "a-route0")), first=True)
    send, removed = state.diff(snap)
    assert {e.name for e in send} == {"a-bind", "a-route0"} and removed == []
    state.record_push("1", send, removed)
    assert state.update_subscription(request(subscribe=("a-route1",), unsubscribe=("a-bind",)), first=False)
    send, removed = state.diff(snap)
    assert [e.name for e in send] == ["a-route1"] and removed == []
    assert "a-bind" not in state.known


def test_subscribing_to_the_wildcard_later_sends_the_rest() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    state = server.StreamState(stream_id=1, node_id="n", gateway=GW_A)
    state.update_subscription(request(subscribe=("a-bind",)), first=True)
    state.record_push("1", *state.diff(snap))
    state.update_subscription(request(subscribe=("*",)), first=False)
    send, _ = state.diff(snap)
    assert {e.name for e in send} == {"a-listener", "a-backend", "a-route0", "a-route1"}


def test_a_nack_naming_no_pushed_resource_rejects_the_whole_push() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    state = server.StreamState(stream_id=1, node_id="n", gateway=GW_A)
    state.update_subscription(request(), first=True)
    state.record_push("1", *state.diff(snap))
    nack, _ = state.nack("1", "apply failed: disk full")
    assert set(nack.names) == set(snap.entries)
    assert state.known == dict.fromkeys(snap.entries, "")  # refused: known, with no version
    assert state.diff(snap) == ([], [])


def test_deleting_a_resource_the_proxy_refused_still_sends_its_removal() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    state = server.StreamState(stream_id=1, node_id="n", gateway=GW_A)
    state.update_subscription(request(), first=True)
    state.record_push("1", *state.diff(snap))
    state.nack("1", "a-route1: invalid CEL expression")
    smaller = snapshot.Snapshot(
        entries={n: e for n, e in snap.entries.items() if n != "a-route1"}, version="2"
    )
    assert state.diff(smaller) == ([], ["a-route1"])  # the proxy may hold a fail-closed stand-in


def test_the_server_reports_which_resources_a_connected_proxy_rejects_and_why() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    ads = server.DeltaAds(source=None)  # type: ignore[arg-type]
    state = server.StreamState(stream_id=1, node_id="proxy-1", gateway=GW_A)
    ads.streams[1] = state
    state.update_subscription(request(), first=True)
    state.record_push("1", *state.diff(snap))
    state.nack("1", "a-route1: invalid CEL expression 'x': undeclared reference")
    assert ads.rejections() == {
        "a-route1": "invalid CEL expression 'x': undeclared reference (proxy proxy-1)"
    }
