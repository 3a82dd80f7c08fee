"""kopf, configured to only watch: event handlers feed the store; nothing is written to objects.

In: a `store.Store` and the credentials from `client.credentials()`. Out: `registry` and
`settings` for `kopf.operator(...)` (run as a task by controller.__main__), `wait_synced` (the
startup barrier: every object a LIST saw at start is in the store), and `ensure_gateway_classes`.

Only `@kopf.on.event` handlers, so kopf keeps no per-object progress; on top of that progress and
diff-base storages that never write, no Kubernetes Events posted, and standalone mode (no peering
objects). So kopf adds no finalizers, annotations or status fields to objects it does not own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from controller.k8s import client, kinds, store

log = logging.getLogger(__name__)


class _NoProgressStorage(kopf.ProgressStorage):
    """Handler progress is never stored (event handlers have none)."""

    def fetch(self, **_: Any) -> None:
        return None

    def store(self, **_: Any) -> None:
        pass

    def purge(self, **_: Any) -> None:
        pass

    def touch(self, **_: Any) -> None:
        pass

    def clear(self, *, essence: Any) -> Any:
        return super().clear(essence=essence)


class _NoDiffBaseStorage(kopf.DiffBaseStorage):
    """The last-handled state is never stored (no change-detecting handlers)."""

    def fetch(self, **_: Any) -> None:
        return None

    def store(self, **_: Any) -> None:
        pass


def settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.persistence.progress_storage = _NoProgressStorage()
    s.persistence.diffbase_storage = _NoDiffBaseStorage()
    s.posting.enabled = False
    s.peering.standalone = True
    s.watching.server_timeout = 300
    s.networking.request_timeout = 60
    return s


def registry(objects: store.Store, info: kopf.ConnectionInfo) -> kopf.OperatorRegistry:
    """Login with `info`, and one event handler per watched kind that updates `objects`."""
    reg = kopf.OperatorRegistry()

    def login(**_: Any) -> kopf.ConnectionInfo:
        return info

    kopf.on.login(registry=reg)(login)
    for kind in kinds.KINDS:
        kopf.on.event(kind.api_version, kind.plural, registry=reg, id=f"store-{kind.plural}")(
            _handler(objects, kind)
        )
    return reg


def _handler(objects: store.Store, kind: kinds.Kind) -> Any:
    def on_event(event: dict[str, Any], **_: Any) -> None:
        body = event.get("object") or {}
        if event.get("type") == "DELETED":
            namespace, name = store.name_of(body)
            objects.delete(kind.group, kind.kind, namespace, name)
        else:
            # kopf hands out a raw dict; keep apiVersion/kind (the watch may omit them in lists).
            objects.upsert({**body, "apiVersion": kind.api_version, "kind": kind.kind})

    return on_event


async def wait_synced(api: client.Client, objects: store.Store, limit: float = 15.0) -> None:
    """Return once the store holds every object a LIST of each kind returned, or after `limit` seconds.

    kopf does not say when its initial listing is done; translating before that would publish
    partial configuration and write wrong statuses (a route whose Service is not listed yet).
    """
    deadline = time.monotonic() + limit
    expected: dict[kinds.Kind, set[store.Name]] = {}
    for kind in kinds.KINDS:
        while True:
            try:
                listed = await api.get(kind.path())
                break
            except client.ApiError as exc:
                # 429 "storage is (re)initializing" right after a CRD is installed: retry.
                if exc.status in (429, 500, 503) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    continue
                log.warning("cannot list %s (%s): not waiting for it", kind.plural, exc)
                listed = None
                break
        if listed is None:
            continue
        expected[kind] = {
            (str(i["metadata"].get("namespace") or ""), str(i["metadata"]["name"]))
            for i in listed.get("items", [])
        }
    while True:
        missing = {k.plural: len(names - objects.names(k.group, k.kind)) for k, names in expected.items()}
        missing = {k: n for k, n in missing.items() if n}
        if not missing:
            return
        if time.monotonic() > deadline:
            log.warning("store not complete after %.0fs, going on (missing: %s)", limit, missing)
            return
        await asyncio.sleep(0.05)


async def ensure_gateway_classes(api: client.Client, names: list[str], controller_name: str) -> bool:
    """Create the GatewayClasses that do not exist; True once all exist (False: try again later)."""
    ok = True
    kind = kinds.GATEWAY_CLASS
    for name in names:
        try:
            await api.get(kind.path(name=name))
            continue
        except client.ApiError as exc:
            if exc.status != 404:
                log.warning("GatewayClass %s: %s", name, exc)
                ok = False
                continue
        body = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": name},
            "spec": {"controllerName": controller_name},
        }
        try:
            await api.create(kind.path(), body)
            log.info("created GatewayClass %s (controllerName %s)", name, controller_name)
        except client.ApiError as exc:
            if exc.status != 409:
                log.warning("cannot create GatewayClass %s: %s", name, exc)
                ok = False
    return ok
