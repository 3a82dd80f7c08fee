"""Leader election on a coordination.k8s.io/v1 Lease: one replica writes, every replica serves xDS.

In: an API client (`client.Client`, or a fake with the same `request`), the Lease's namespace and
name, and this replica's identity. Out: `is_leader`, and `on_change(True/False)` calls whenever
that flips; controller.__main__ hands the reconciler its status writer and deployer only while
leading.

The rules follow client-go's leaderelection: the Lease names a holder and `leaseDurationSeconds`;
a candidate takes it when it has no holder or when its record has not changed for a lease
duration as measured by the candidate's own clock (so clock skew between nodes does not matter);
every write is a PUT with the read `resourceVersion`, so two candidates cannot both win (the loser
gets 409). The leader renews every `renew` seconds and steps down on its own when it could not
renew for `renew_deadline` seconds, before another replica may take over; a candidate retries
every `retry` seconds. `release` (on shutdown) empties the holder so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from controller.k8s import client

log = logging.getLogger(__name__)

NAME = "agentgw-controller"


class Api(Protocol):
    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = ..., params: Any = None
    ) -> client.Json: ...


def _micro_time() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """Campaigns for and renews one Lease. Start `run()` as a task; `release()` when stopping."""

    def __init__(
        self,
        api: Api,
        namespace: str,
        identity: str,
        name: str = NAME,
        lease: float = 15.0,
        renew: float = 5.0,
        retry: float = 2.0,
        renew_deadline: float = 10.0,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease = lease
        self.renew = renew
        self.retry = retry
        self.renew_deadline = renew_deadline
        self.on_change = on_change
        self.clock = clock
        self.is_leader = False
        self.transitions = 0
        """How often this replica became leader."""
        self._observed: tuple[Any, float] | None = None
        """(holder, renewTime, leaseDurationSeconds) last seen, and when (our clock) it changed."""
        self._renewed_at = 0.0

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    async def run(self) -> None:
        """Campaign forever: renew while leading, retry while not."""
        while True:
            try:
                won = await self.try_acquire_or_renew()
            except Exception as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
                won = False
            if won:
                self._renewed_at = self.clock()
                self._set(True)
            elif not self.is_leader or self.clock() - self._renewed_at >= self.renew_deadline:
                self._set(False)
            await asyncio.sleep(self.renew if self.is_leader else self.retry)

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if this replica holds the Lease afterwards."""
        now = self.clock()
        try:
            lease = await self.api.request("GET", self.path)
        except client.ApiError as exc:
            if exc.status != 404:
                raise
            return await self._create()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        duration = float(spec.get("leaseDurationSeconds") or self.lease)
        if holder and holder != self.identity and now - self._observed[1] < duration:
            return False  # held by another replica that renews it
        new_spec = dict(spec)
        stamp = _micro_time()
        if holder != self.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        new_spec |= {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease),
            "renewTime": stamp,
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": lease.get("metadata") or {},
            "spec": new_spec,
        }
        try:
            await self.api.request("PUT", self.path, body)
        except client.ApiError as exc:
            if exc.status == 409:
                return False  # another replica wrote it first
            raise
        return True

    async def _create(self) -> bool:
        stamp = _micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.lease),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        collection = self.path.rsplit("/", 1)[0]
        try:
            await self.api.request("POST", collection, body)
        except client.ApiError as exc:
            if exc.status == 409:
                return False  # created by another replica meanwhile
            raise
        return True

    async def release(self) -> None:
        """Give the Lease up if held, so a standby need not wait for it to expire."""
        if not self.is_leader:
            return
        self._set(False)
        try:
            lease = await self.api.request("GET", self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": lease.get("metadata") or {},
                "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_time()},
            }
            await self.api.request("PUT", self.path, body)
        except Exception as exc:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, exc)

    def _set(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        if leader:
            self.transitions += 1
        log.info(
            "%s %s the leader (lease %s/%s)",
            self.identity,
            "is now" if leader else "is no longer",
            self.namespace,
            self.name,
        )
        if self.on_change is not None:
            self.on_change(leader)
