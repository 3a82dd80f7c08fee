"""Snapshots: content-hash versions, and the consistency check that guards publishing."""

from __future__ import annotations

import hashlib

import pytest

from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.tests import xds_fixtures as fx
from controller.xds import cache, snapshot


def test_each_version_is_the_sha256_of_the_resources_deterministic_serialization() -> None:
    resources = fx.gateway("a-")
    snap = snapshot.build(resources)
    for r in resources:
        key = getattr(r, r.WhichOneof("kind")).key
        expected = hashlib.sha256(r.SerializeToString(deterministic=True)).hexdigest()
        assert snap.entries[key].version == expected
        assert snap.entries[key].resource() == r


def test_the_same_resources_in_another_order_give_the_same_versions() -> None:
    resources = fx.gateway("a-")
    one, two = snapshot.build(resources), snapshot.build(reversed(resources))
    assert one.versions() == two.versions()
    assert one.version == two.version


def test_changing_one_resource_changes_only_its_own_version() -> None:
    before = snapshot.build(fx.gateway("a-", paths=("/a", "/b")))
    after = snapshot.build(fx.gateway("a-", paths=("/a", "/changed")))
    changed = {n for n in before.entries if before.entries[n].version != after.entries[n].version}
    assert changed == {"a-route1"}
    assert before.version != after.version


def _mirror_route() -> pb.Resource:
    r = fx.route("r", "l", "be")
    r.route.policies.request_mirrors.add().backend.backend_key = "ghost-mirror"
    return r


def _policy(target: pb.PolicyTarget) -> pb.Resource:
    return pb.Resource(policy=pb.Policy(key="p", name="p", target=target))


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (fx.route("r", "ghost-listener", "be"), "route 'r': listener_key 'ghost-listener' names no listener"),
        (fx.listener("l2", "ghost-bind"), "listener 'l2': bind_key 'ghost-bind' names no bind"),
        (
            fx.route("r", "l", "ghost-backend"),
            "route 'r': backends[0].backend_key 'ghost-backend' names no backend",
        ),
        (
            _mirror_route(),
            "route 'r': policies.request_mirrors[0].backend_key 'ghost-mirror' names no backend",
        ),
        (
            _policy(pb.PolicyTarget(route_key="ghost-route")),
            "policy 'p': target.route_key 'ghost-route' names no route",
        ),
        (fx.backend("l"), "backend 'l': duplicate key (a listener has it too)"),
        (fx.route("b", "l", "be"), "route 'b': duplicate key (a bind has it too)"),
        (pb.Resource(), "resources[3]: no resource kind set"),
        (pb.Resource(bind=pb.Bind(port=1)), "resources[3]: bind without a key"),
    ],
)
def test_an_inconsistent_snapshot_is_rejected_naming_the_dangling_reference(
    extra: pb.Resource, problem: str
) -> None:
    resources = [fx.bind("b"), fx.listener("l", "b"), fx.backend("be"), extra]
    with pytest.raises(snapshot.InconsistentSnapshot) as caught:
        snapshot.build(resources)
    assert caught.value.problems == (problem,)
    assert problem in str(caught.value)


def test_a_route_to_a_backend_by_host_needs_no_backend_resource() -> None:
    r = fx.route("r", "l", "unused")
    r.route.backends[0].ref.host.host = "example.com"
    r.route.backends[0].ref.host.port = 80
    snap = snapshot.build([fx.bind("b"), fx.listener("l", "b"), r])
    assert set(snap.entries) == {"b", "l", "r"}


def test_a_snapshot_cannot_be_changed_after_it_is_built() -> None:
    snap = snapshot.build(fx.gateway("a-"))
    with pytest.raises(TypeError):
        snap.entries["a-bind"] = snap.entries["a-listener"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        snap.version = "x"  # type: ignore[misc]


def test_the_cache_keeps_serving_the_previous_snapshot_when_a_new_one_is_rejected() -> None:
    c = cache.SnapshotCache()
    gw = cache.GatewayKey("ns", "gw")
    good = c.publish(gw, fx.gateway("a-"))
    with pytest.raises(snapshot.InconsistentSnapshot, match="ghost"):
        c.publish(gw, [*fx.gateway("a-"), fx.route("bad", "ghost", "a-backend")])
    assert c.current(gw) is good
    assert c.stats.snapshots.get(("ns/gw", "rejected")) == 1
    assert c.stats.snapshots.get(("ns/gw", "published")) == 1


def test_the_cache_ignores_a_snapshot_with_the_same_content() -> None:
    c = cache.SnapshotCache()
    gw = cache.GatewayKey("ns", "gw")
    first = c.publish(gw, fx.gateway("a-"))
    c.publish(gw, list(reversed(fx.gateway("a-"))))
    assert c.current(gw) is first


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("ns~gw", cache.GatewayKey("ns", "gw")),
        ("ns~", None),
        ("~gw", None),
        ("nsgw", None),
        ("ns~gw~pod", None),
    ],
)
def test_a_role_names_namespace_and_gateway(role: str, expected: cache.GatewayKey | None) -> None:
    assert cache.parse_role(role) == expected
