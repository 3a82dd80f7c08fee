"""The snapshot cache: the current `snapshot.Snapshot` of every gateway, and change notification.

In: snapshots (or resource lists to check and freeze) from the reconciler. Out: `current` and
`next` for the delta server, which reads the cache only through `SnapshotSource` — the one seam
between the cache and the gRPC server, as in go-control-plane.

Who may mutate: only the reconciler, through `publish`, `set_snapshot` and `clear`, on the event
loop thread. The server only reads. A rejected snapshot (`snapshot.InconsistentSnapshot`) never
reaches a slot, so the previous snapshot keeps being served.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import Protocol

from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.xds import metrics, snapshot

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class GatewayKey:
    """The gateway a proxy fleet serves. A proxy sends it as node metadata ROLE "<ns>~<name>"."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def role(self) -> str:
        return f"{self.namespace}~{self.name}"


def parse_role(text: str) -> GatewayKey | None:
    """ "<namespace>~<gateway>" -> GatewayKey; None unless both parts are there and non-empty."""
    namespace, sep, name = text.partition("~")
    if not sep or not namespace or not name or "~" in name:
        return None
    return GatewayKey(namespace, name)


class SnapshotSource(Protocol):
    """What the delta server needs from a cache."""

    def current(self, gateway: GatewayKey) -> snapshot.Snapshot | None:
        """The snapshot to serve now, or None if the gateway has none yet."""
        ...

    async def next(self, gateway: GatewayKey, seen: snapshot.Snapshot | None) -> snapshot.Snapshot:
        """The current snapshot once it is not `seen` (identity); waits while there is none."""
        ...


@dataclasses.dataclass(slots=True)
class _Slot:
    snapshot: snapshot.Snapshot | None = None
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set (then replaced by a fresh event) whenever `snapshot` changes."""


class SnapshotCache:
    """Per-gateway snapshots. Implements `SnapshotSource`."""

    def __init__(self, stats: metrics.Registry | None = None) -> None:
        self.stats = stats or metrics.Registry()
        self._slots: dict[GatewayKey, _Slot] = {}
        """Written by publish/set_snapshot/clear; `_slot` adds empty slots for waiting readers."""

    def publish(self, gateway: GatewayKey, resources: Iterable[pb.Resource]) -> snapshot.Snapshot:
        """Check and serve `resources` for `gateway`.

        Raises `snapshot.InconsistentSnapshot` (logged and counted) and keeps the previous snapshot
        if the check fails.
        """
        try:
            snap = snapshot.build(resources)
        except snapshot.InconsistentSnapshot as exc:
            self.stats.snapshots.inc((str(gateway), "rejected"))
            log.error("gateway %s: snapshot rejected, still serving the previous one: %s", gateway, exc)
            raise
        self.set_snapshot(gateway, snap)
        return snap

    def set_snapshot(self, gateway: GatewayKey, snap: snapshot.Snapshot) -> None:
        """Serve `snap` (already checked by `snapshot.build`). Same content: nothing happens."""
        slot = self._slot(gateway)
        if slot.snapshot is not None and slot.snapshot.version == snap.version:
            return
        self.stats.snapshots.inc((str(gateway), "published"))
        log.info("gateway %s: snapshot %s (%d resources)", gateway, snap.version, len(snap))
        self._replace(slot, snap)

    def clear(self, gateway: GatewayKey) -> None:
        """Forget the gateway's snapshot; connected proxies keep what they have and wait."""
        slot = self._slots.get(gateway)
        if slot is not None and slot.snapshot is not None:
            self._replace(slot, None)

    def current(self, gateway: GatewayKey) -> snapshot.Snapshot | None:
        slot = self._slots.get(gateway)
        return slot.snapshot if slot else None

    async def next(self, gateway: GatewayKey, seen: snapshot.Snapshot | None) -> snapshot.Snapshot:
        while True:
            slot = self._slot(gateway)
            if slot.snapshot is not None and slot.snapshot is not seen:
                return slot.snapshot
            await slot.changed.wait()

    def gateways(self) -> list[GatewayKey]:
        return sorted(k for k, s in self._slots.items() if s.snapshot is not None)

    def _slot(self, gateway: GatewayKey) -> _Slot:
        slot = self._slots.get(gateway)
        if slot is None:
            slot = self._slots[gateway] = _Slot()
        return slot

    @staticmethod
    def _replace(slot: _Slot, snap: snapshot.Snapshot | None) -> None:
        slot.snapshot = snap
        changed, slot.changed = slot.changed, asyncio.Event()
        changed.set()
