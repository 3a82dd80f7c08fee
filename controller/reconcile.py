"""The reconcile loop: store changes -> translate -> xDS snapshots per Gateway -> statuses.

In: the object store (controller.k8s.store, fed by kopf), the snapshot cache (controller.xds.cache)
and a status writer (`WriteStatus`: controller.k8s.status.Writer.write in production, a fake in
tests). Out: one published snapshot per Gateway of our classes, `cache.clear` for Gateways that
disappeared, and status writes for objects whose stored status differs from the merged one.

`Reconciler.run` waits for a store change, waits `debounce` more (a burst of events gives one
translation), freezes the store into `translate.Inputs`, and calls `reconcile_once`. A rejected
snapshot is logged (the cache keeps serving the previous one); a failed status write is logged
and retried `retry_after` seconds later. `set_writers` hands over or takes away the status writer
and the deployer (leader election: only the leader writes) and starts a pass at once.
Called by controller.__main__ after the startup barrier.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from controller import translate
from controller.k8s import kinds, status, store
from controller.xds import cache, snapshot

log = logging.getLogger(__name__)

WriteStatus = Callable[[str, str, str, str, Mapping[str, Any]], Awaitable[bool]]
"""(group, kind, namespace, name, our status stanza) -> whether a write happened."""

Deploy = Callable[[store.Store, list[tuple[str, str]]], Awaitable[bool]]
"""(store, owned gateways as (namespace, name)) -> False if some apply failed."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Reconciler:
    def __init__(
        self,
        objects: store.Store,
        snapshots: cache.SnapshotCache,
        write_status: WriteStatus | None,
        controller_name: str = translate.CONTROLLER_NAME,
        debounce: float = 0.1,
        retry_after: float = 2.0,
        clock: Callable[[], datetime.datetime] = _now,
        deploy: Deploy | None = None,
        rejections: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.objects = objects
        self.rejections = rejections
        """Resource key -> why a proxy rejects it (the xDS server's NACKs); reported in the
        status of the policy that produced it. None: not reported."""
        self.deploy = deploy
        """Applies each Gateway's proxy objects (controller.k8s.deploy); None: not deployed."""
        self.snapshots = snapshots
        self.write_status = write_status
        """None: statuses are not written (e.g. not the leader)."""
        self.controller_name = controller_name
        self.debounce = debounce
        self.retry_after = retry_after
        self.clock = clock
        self.published: set[cache.GatewayKey] = set()
        self.runs = 0
        self._poked = asyncio.Event()

    def set_writers(self, write_status: WriteStatus | None, deploy: Deploy | None) -> None:
        """Write statuses and deploy with these from the next pass on (None: not), which starts now."""
        self.write_status = write_status
        self.deploy = deploy
        self._poked.set()

    def poke(self) -> None:
        """Run a pass soon even though no object changed (a proxy rejected resources)."""
        self._poked.set()

    def translate_store(self) -> translate.Output:
        objs = list(self.objects.objects(kinds.TRANSLATED))
        inputs = translate.Inputs.from_objects(objs, controller_name=self.controller_name)
        return translate.translate(inputs, self.clock())

    def publish(self, output: translate.Output) -> None:
        """Publish every Gateway's resources; clear the Gateways no longer in the output."""
        current: set[cache.GatewayKey] = set()
        for key, resources in output.resources.items():
            gateway = cache.GatewayKey(key.namespace, key.name)
            current.add(gateway)
            try:
                self.snapshots.publish(gateway, resources)
            except snapshot.InconsistentSnapshot:
                pass  # logged and counted by the cache; the previous snapshot stays
        for gone in self.published - current:
            log.info("gateway %s is gone: clearing its snapshot", gone)
            self.snapshots.clear(gone)
        self.published = current

    def changed_statuses(
        self, output: translate.Output
    ) -> list[tuple[translate.ObjectRef, Mapping[str, Any]]]:
        """The statuses that differ from the stored objects' (objects not in the store are skipped)."""
        out: list[tuple[translate.ObjectRef, Mapping[str, Any]]] = []
        for ref, ours in sorted(output.statuses.items()):
            live = self.objects.get(ref.group, ref.kind, ref.namespace, ref.name)
            if live is None:
                continue
            before = live.get("status")
            if not status.equivalent(status.merge(before, ours, self.controller_name), before):
                out.append((ref, ours))
        return out

    async def reconcile_once(self) -> bool:
        """One pass; False if some status write failed (the caller retries)."""
        self.runs += 1
        output = self.translate_store()
        self.publish(output)
        if self.write_status is None:
            return True
        ok = True
        if self.deploy is not None:
            ok = await self.deploy(self.objects, [(k.namespace, k.name) for k in output.resources])
        if self.rejections is not None:
            report_rejections(output, self.rejections())
        for ref, ours in self.changed_statuses(output):
            try:
                await self.write_status(ref.group, ref.kind, ref.namespace, ref.name, ours)
            except Exception as exc:
                ok = False
                log.warning("status of %s %s/%s not written: %s", ref.kind, ref.namespace, ref.name, exc)
        return ok

    async def run(self) -> None:
        """Reconcile now, then after every change (debounced) and after failed writes (backoff)."""
        seen = self.objects.version
        ok = await self._safe_once()
        while True:
            await self._wait(seen, None if ok else self.retry_after)
            await asyncio.sleep(self.debounce)
            seen = self.objects.version
            ok = await self._safe_once()

    async def _wait(self, seen: int, limit: float | None) -> None:
        """Until the store changes, `set_writers` is called, or `limit` seconds pass."""
        if self._poked.is_set():
            self._poked.clear()
            return
        changed = asyncio.ensure_future(self.objects.wait_changed(seen))
        poked = asyncio.ensure_future(self._poked.wait())
        try:
            await asyncio.wait({changed, poked}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            poked.cancel()
        self._poked.clear()

    async def _safe_once(self) -> bool:
        try:
            return await self.reconcile_once()
        except Exception:
            log.exception("reconcile failed")
            return False


POLICY_KIND = ("agentgateway.dev", "AgentgatewayPolicy")
MESSAGE_LIMIT = 1024


def report_rejections(output: translate.Output, rejections: Mapping[str, str]) -> None:
    """Mark the AgentgatewayPolicies whose Policy resources a proxy rejects: every ancestor's
    Accepted becomes False/Invalid with the proxy's reason (the translator cannot see errors only
    the proxy finds, such as a CEL expression that parses but does not type-check). An Accepted
    the translator already set to False keeps its message, which names the policy's own field."""
    by_policy: dict[translate.ObjectRef, str] = {}
    for key, why in sorted(rejections.items()):
        parts = key.split("/")
        if len(parts) > 3 and parts[0] == "policy":
            ref = translate.ObjectRef(*POLICY_KIND, parts[1], parts[2])
            by_policy.setdefault(ref, why)
    for ref, why in by_policy.items():
        stanza = output.statuses.get(ref)
        if not stanza:
            continue
        message = f"rejected by the proxy: {why}"[:MESSAGE_LIMIT]
        ancestors = []
        for ancestor in stanza.get("ancestors", ()):
            conditions = []
            for c in ancestor.get("conditions", ()):
                if c.get("type") == "Accepted" and c.get("status") != "False":  # keep our own finding
                    c = {**c, "status": "False", "reason": "Invalid", "message": message}
                conditions.append(c)
            ancestors.append({**ancestor, "conditions": conditions})
        output.statuses[ref] = {**stanza, "ancestors": ancestors}
