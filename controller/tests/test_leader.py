"""Leader election against an in-memory Lease API (optimistic concurrency like the API server's).

Two `Elector`s share one fake API and a fake clock: only one leads, the other takes over when the
leader's record stops changing for a lease duration or when it releases the Lease.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.k8s import client, leader

NS = "agentgw-system"


class FakeLeases:
    """GET/POST/PUT of Lease objects with resourceVersion checks (409 on a stale PUT)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "", params: Any = None
    ) -> client.Json:
        if self.down:
            raise OSError("apiserver unreachable")
        if method == "GET":
            if path not in self.objects:
                raise client.ApiError(404, "not found")
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            full = f"{path}/{body['metadata']['name']}"
            if full in self.objects:
                raise client.ApiError(409, "already exists")
            return self._store(full, body)
        assert method == "PUT"
        live = self.objects.get(path)
        assert live is not None
        if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise client.ApiError(409, "conflict")
        return self._store(path, body)

    def _store(self, path: str, body: Any) -> client.Json:
        self.version += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = obj
        return copy.deepcopy(obj)

    def holder(self) -> str:
        (lease,) = self.objects.values()
        return str(lease["spec"]["holderIdentity"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(
    api: FakeLeases, clock: Clock, identity: str, changes: list[bool] | None = None
) -> leader.Elector:
    return leader.Elector(
        api,
        NS,
        identity,
        clock=clock,
        on_change=None if changes is None else changes.append,
    )


async def step(e: leader.Elector) -> bool:
    """One round of `run`'s loop body without its sleep."""
    won = await e.try_acquire_or_renew()
    if won:
        e._renewed_at = e.clock()
        e._set(True)
    elif not e.is_leader or e.clock() - e._renewed_at >= e.renew_deadline:
        e._set(False)
    return e.is_leader


async def test_only_one_of_two_leads() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert await step(a)
    assert not await step(b)
    for _ in range(5):
        clock.now += 5
        assert await step(a)
        assert not await step(b)
    assert api.holder() == "a"
    lease = next(iter(api.objects.values()))
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["metadata"]["name"] == "agentgw-controller"


async def test_a_standby_takes_over_an_expired_lease() -> None:
    api, clock = FakeLeases(), Clock()
    changes: list[bool] = []
    a, b = elector(api, clock, "a", changes), elector(api, clock, "b")
    assert await step(a)
    assert not await step(b)  # b observes a's record now
    clock.now += 14
    assert not await step(b)  # not yet a lease duration without change
    clock.now += 2
    assert await step(b)
    assert api.holder() == "b"
    assert next(iter(api.objects.values()))["spec"]["leaseTransitions"] == 1
    # a comes back: it lost the lease and steps down
    assert not await step(a)
    assert changes == [True, False]


async def test_a_leader_that_cannot_renew_steps_down_before_the_lease_expires() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    assert await step(a)
    api.down = True
    clock.now += 5
    with pytest.raises(OSError):
        await a.try_acquire_or_renew()
    # run() treats an error as a failed attempt: still leader until the renew deadline
    a._set(a.clock() - a._renewed_at < a.renew_deadline)
    assert a.is_leader
    clock.now += 6
    a._set(a.clock() - a._renewed_at < a.renew_deadline)
    assert not a.is_leader
    assert a.renew_deadline < a.lease


async def test_release_hands_over_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert await step(a)
    assert not await step(b)
    await a.release()
    assert not a.is_leader
    assert await step(b)  # no wait for expiry


async def test_simultaneous_candidates_conflict_and_one_wins() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert await step(a)
    clock.now += 20  # a stopped renewing long ago
    assert not await step(b)  # b first sees a's record
    clock.now += 16
    # both read the same stale lease; the second PUT carries a stale resourceVersion
    stale = await api.request("GET", a.path)
    assert await step(b)
    stale["spec"]["holderIdentity"] = "c"
    with pytest.raises(client.ApiError) as err:
        await api.request("PUT", a.path, stale)
    assert err.value.status == 409
    assert api.holder() == "b"
