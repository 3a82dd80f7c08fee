"""The reconcile loop and status merging, with a fake status writer and no API server.

Covers controller.k8s.status (merge keeps transition times and other controllers' route parents;
`{"parents": []}` removes ours; comparison ignores times) and controller.reconcile (publishes per
Gateway, clears Gateways that disappeared, writes only statuses that changed, debounces, retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from controller import reconcile, translate
from controller.k8s import status, store
from controller.xds import cache

OURS = translate.CONTROLLER_NAME


def _cond(type_: str, ok: str, time: str, reason: str = "R") -> dict[str, Any]:
    return {"type": type_, "status": ok, "reason": reason, "message": "", "lastTransitionTime": time}


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    live = {"conditions": [_cond("Accepted", "True", "T0")]}
    merged = status.merge(live, {"conditions": [_cond("Accepted", "True", "T1")]}, OURS)
    assert merged["conditions"][0]["lastTransitionTime"] == "T0"


def test_a_condition_whose_status_flips_gets_the_new_time() -> None:
    live = {"conditions": [_cond("Accepted", "True", "T0")]}
    merged = status.merge(live, {"conditions": [_cond("Accepted", "False", "T1")]}, OURS)
    assert merged["conditions"][0]["lastTransitionTime"] == "T1"


def test_gateway_listener_conditions_keep_their_times_by_listener_name() -> None:
    live = {"listeners": [{"name": "http", "conditions": [_cond("Programmed", "True", "T0")]}]}
    ours = {
        "listeners": [
            {"name": "http", "attachedRoutes": 1, "conditions": [_cond("Programmed", "True", "T1")]}
        ]
    }
    merged = status.merge(live, ours, OURS)
    assert merged["listeners"][0]["conditions"][0]["lastTransitionTime"] == "T0"
    assert merged["listeners"][0]["attachedRoutes"] == 1


def _parent(controller: str, gateway: str, time: str) -> dict[str, Any]:
    return {
        "parentRef": {"name": gateway, "namespace": "ns"},
        "controllerName": controller,
        "conditions": [_cond("Accepted", "True", time)],
    }


def test_route_parents_of_other_controllers_are_kept_and_ours_replaced() -> None:
    other = _parent("example.com/other", "gw-other", "T0")
    live = {"parents": [other, _parent(OURS, "gw-old", "T0"), _parent(OURS, "gw", "T0")]}
    merged = status.merge(live, {"parents": [_parent(OURS, "gw", "T1")]}, OURS)
    assert merged["parents"] == [other, _parent(OURS, "gw", "T0")]


def test_empty_parents_remove_only_our_entries() -> None:
    other = _parent("example.com/other", "gw-other", "T0")
    merged = status.merge({"parents": [other, _parent(OURS, "gw", "T0")]}, {"parents": []}, OURS)
    assert merged["parents"] == [other]


def test_fields_we_do_not_set_are_left_alone() -> None:
    merged = status.merge({"addresses": [{"value": "10.0.0.1"}]}, {"conditions": []}, OURS)
    assert merged["addresses"] == [{"value": "10.0.0.1"}]


def test_statuses_that_differ_only_in_transition_times_or_empty_lists_are_equivalent() -> None:
    assert status.equivalent(
        {"conditions": [_cond("A", "True", "T0")]}, {"conditions": [_cond("A", "True", "T9")]}
    )
    assert status.equivalent({"parents": []}, None)
    assert not status.equivalent(
        {"conditions": [_cond("A", "True", "T0")]}, {"conditions": [_cond("A", "False", "T0")]}
    )


# ------------------------------------------------------------------------------- the reconciler

GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "agentgateway", "generation": 1},
    "spec": {"controllerName": OURS},
}


def _gateway(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {
            "gatewayClassName": "agentgateway",
            "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}],
        },
    }


class FakeWriter:
    """Records writes and, like the API server + watch, puts the merged status into the store."""

    def __init__(self, objects: store.Store, fail: int = 0) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    async def __call__(
        self, group: str, kind: str, namespace: str, name: str, ours: Mapping[str, Any]
    ) -> bool:
        self.calls.append((kind, name))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("apiserver unavailable")
        live = self.objects.get(group, kind, namespace, name)
        assert live is not None
        self.objects.upsert({**live, "status": status.merge(live.get("status"), ours, OURS)})
        return True


def _reconciler(
    objects: store.Store, writer: FakeWriter, snapshots: cache.SnapshotCache
) -> reconcile.Reconciler:
    return reconcile.Reconciler(objects, snapshots, writer, debounce=0.01, retry_after=0.05)


async def test_each_gateway_gets_a_snapshot_and_statuses_are_written_once() -> None:
    objects, snapshots = store.Store(), cache.SnapshotCache()
    writer = FakeWriter(objects)
    for obj in (GATEWAY_CLASS, _gateway("a"), _gateway("b")):
        objects.upsert(obj)
    rec = _reconciler(objects, writer, snapshots)
    assert await rec.reconcile_once()
    assert snapshots.gateways() == [cache.GatewayKey("ns", "a"), cache.GatewayKey("ns", "b")]
    assert sorted(writer.calls) == [("Gateway", "a"), ("Gateway", "b"), ("GatewayClass", "agentgateway")]
    writer.calls.clear()
    assert await rec.reconcile_once()
    assert writer.calls == []


async def test_a_deleted_gateway_has_its_snapshot_cleared() -> None:
    objects, snapshots = store.Store(), cache.SnapshotCache()
    writer = FakeWriter(objects)
    for obj in (GATEWAY_CLASS, _gateway("a"), _gateway("b")):
        objects.upsert(obj)
    rec = _reconciler(objects, writer, snapshots)
    await rec.reconcile_once()
    objects.delete("gateway.networking.k8s.io", "Gateway", "ns", "b")
    await rec.reconcile_once()
    assert snapshots.gateways() == [cache.GatewayKey("ns", "a")]


async def test_the_loop_debounces_changes_and_retries_failed_writes() -> None:
    objects, snapshots = store.Store(), cache.SnapshotCache()
    writer = FakeWriter(objects, fail=1)
    rec = _reconciler(objects, writer, snapshots)
    task = asyncio.create_task(rec.run())
    try:
        await asyncio.sleep(0.02)
        runs = rec.runs
        for obj in (GATEWAY_CLASS, _gateway("a")):
            objects.upsert(obj)
        async with asyncio.timeout(5):
            while not snapshots.gateways() or len({c for c in writer.calls}) < 2 or writer.fail:
                await asyncio.sleep(0.01)
            while objects.get("gateway.networking.k8s.io", "Gateway", "ns", "a").get("status") is None:  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
        assert rec.runs - runs <= 4, "two upserts in a burst are one translation (plus retry and echo)"
        gw = objects.get("gateway.networking.k8s.io", "Gateway", "ns", "a")
        assert gw is not None and gw["status"]["conditions"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_policy_a_proxy_rejects_shows_accepted_false_with_the_proxys_reason() -> None:
    ref = translate.ObjectRef("agentgateway.dev", "AgentgatewayPolicy", "ns", "auth")
    other = translate.ObjectRef("agentgateway.dev", "AgentgatewayPolicy", "ns", "fine")
    accepted = {"type": "Accepted", "status": "True", "reason": "Valid", "message": "Policy accepted"}
    attached = {
        "type": "Attached",
        "status": "True",
        "reason": "Attached",
        "message": "Attached to all targets",
    }
    stanza = {"ancestors": [{"ancestorRef": {"name": "gw"}, "conditions": [accepted, attached]}]}
    output = translate.Output(resources={}, statuses={ref: stanza, other: stanza})
    reconcile.report_rejections(
        output, {"policy/ns/auth/route/bind/80/http/ns/r/0": "invalid CEL expression (proxy p1)", "r1": "x"}
    )
    conditions = {c["type"]: c for c in output.statuses[ref]["ancestors"][0]["conditions"]}
    assert conditions["Accepted"]["status"] == "False"
    assert conditions["Accepted"]["reason"] == "Invalid"
    assert conditions["Accepted"]["message"] == "rejected by the proxy: invalid CEL expression (proxy p1)"
    assert conditions["Attached"] == attached
    assert output.statuses[other] == stanza
