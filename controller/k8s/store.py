"""The in-memory store of watched objects: raw bodies, indexed by kind and namespace/name.

In: `upsert` and `delete` from the kopf event handlers (controller.k8s.operator), one call per
watch event, with the body exactly as the API server sent it. Out: `get` (one object, e.g. its
live status for the status writer), `objects` (everything, for `translate.Inputs.from_objects`),
`version` and `wait_changed` for the reconciler's debounce loop (controller.reconcile).

No logic beyond indexing: no filtering, no translation. Bodies are stored as given (kopf hands
out fresh dicts per event) and must not be mutated by readers. Event-loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

Body = Mapping[str, Any]
Key = tuple[str, str]
"""(group, kind)"""
Name = tuple[str, str]
"""(namespace, name); namespace "" for cluster-scoped objects."""


def group_of(body: Body) -> str:
    return str(body.get("apiVersion", "")).rpartition("/")[0]


def name_of(body: Body) -> Name:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Store:
    """Objects by (group, kind) and (namespace, name); a version that moves on every change."""

    def __init__(self) -> None:
        self._objects: dict[Key, dict[Name, Body]] = {}
        self.version = 0
        """Incremented on every change that alters the store."""
        self._changed = asyncio.Event()

    def upsert(self, body: Body) -> None:
        key = (group_of(body), str(body.get("kind", "")))
        name = name_of(body)
        bucket = self._objects.setdefault(key, {})
        old = bucket.get(name)
        if old is not None and _resource_version(old) == _resource_version(body) and old == body:
            return
        bucket[name] = body
        self._bump()

    def delete(self, group: str, kind: str, namespace: str, name: str) -> None:
        bucket = self._objects.get((group, kind))
        if bucket is not None and bucket.pop((namespace, name), None) is not None:
            self._bump()

    def get(self, group: str, kind: str, namespace: str, name: str) -> Body | None:
        return self._objects.get((group, kind), {}).get((namespace, name))

    def names(self, group: str, kind: str) -> set[Name]:
        return set(self._objects.get((group, kind), {}))

    def objects(self, kinds: frozenset[Key] | None = None) -> Iterator[Body]:
        """Every stored object (of `kinds`, if given), in a stable order."""
        for key in sorted(self._objects):
            if kinds is None or key in kinds:
                bucket = self._objects[key]
                for name in sorted(bucket):
                    yield bucket[name]

    async def wait_changed(self, seen: int) -> int:
        """Return the version once it is not `seen`."""
        while self.version == seen:
            await self._changed.wait()
        return self.version

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()


def _resource_version(body: Body) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion", ""))
