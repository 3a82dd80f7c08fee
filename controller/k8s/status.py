"""Our status, merged into an object's live status; and the writer that puts it there.

In: the live `status` of an object and the stanza the translator wants (`translate.Output.statuses`).
Out: `merge` (pure) gives the status to write:

- conditions (also per Gateway listener and per route parent / policy ancestor) keep their
  `lastTransitionTime` when their `status` did not change;
- route `parents` and policy `ancestors` keep the entries of other controllers; ours are replaced
  by the translator's (so `{"parents": []}` removes ours);
- other top-level fields are the translator's; fields it does not set are left as they are.

`equivalent` compares two statuses ignoring `lastTransitionTime` (and empty lists vs absent).
`Writer.write` does GET, merge, compare, and a PUT of the status subresource with the live
`resourceVersion`, retrying on conflict: called by controller.reconcile only for objects whose
stored status differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from controller.k8s import client, kinds

log = logging.getLogger(__name__)

Status = Mapping[str, Any]


def merge_conditions(
    live: Sequence[Mapping[str, Any]] | None, ours: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """`ours`, with the live `lastTransitionTime` of every condition whose status is unchanged."""
    before = {c.get("type"): c for c in live or ()}
    out = []
    for cond in ours:
        old = before.get(cond.get("type"))
        if old is not None and old.get("status") == cond.get("status") and "lastTransitionTime" in old:
            cond = {**cond, "lastTransitionTime": old["lastTransitionTime"]}
        out.append(dict(cond))
    return out


def _merge_entry(live: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(ours)
    if "conditions" in ours:
        out["conditions"] = merge_conditions((live or {}).get("conditions"), ours["conditions"])
    return out


def _merge_owned_list(
    live: Sequence[Mapping[str, Any]] | None,
    ours: Sequence[Mapping[str, Any]],
    ref_field: str,
    controller_name: str,
) -> list[Any]:
    """Route parents / policy ancestors: others' entries as they are, then ours."""
    others = [dict(e) for e in live or () if e.get("controllerName") != controller_name]
    mine = {_ref_key(e.get(ref_field)): e for e in live or () if e.get("controllerName") == controller_name}
    return others + [_merge_entry(mine.get(_ref_key(e.get(ref_field))), e) for e in ours]


def _ref_key(ref: Any) -> str:
    return repr(sorted((ref or {}).items()))


def merge(live: Status | None, ours: Status, controller_name: str) -> dict[str, Any]:
    """The status to write: see the module docstring."""
    live = live or {}
    out = dict(live)
    for field, value in ours.items():
        if field == "conditions":
            out[field] = merge_conditions(live.get("conditions"), value)
        elif field == "listeners":
            before = {entry.get("name"): entry for entry in live.get("listeners") or ()}
            out[field] = [_merge_entry(before.get(entry.get("name")), entry) for entry in value]
        elif field == "parents":
            out[field] = _merge_owned_list(live.get("parents"), value, "parentRef", controller_name)
        elif field == "ancestors":
            out[field] = _merge_owned_list(live.get("ancestors"), value, "ancestorRef", controller_name)
        else:
            out[field] = value
    return out


def _normalize(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _normalize(v)
            for k, v in value.items()
            if k != "lastTransitionTime" and v not in (None, [], {})
        }
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def equivalent(a: Status | None, b: Status | None) -> bool:
    """Equal ignoring `lastTransitionTime`, and empty lists/maps vs absent fields."""
    return bool(_normalize(a or {}) == _normalize(b or {}))


class Writer:
    """Writes merged statuses through the status subresource (GET, merge, compare, PUT)."""

    def __init__(self, api: client.Client, controller_name: str, attempts: int = 3) -> None:
        self.api = api
        self.controller_name = controller_name
        self.attempts = attempts
        self.writes = 0
        """Successful PUTs, for tests and logs."""

    async def write(self, group: str, kind_name: str, namespace: str, name: str, ours: Status) -> bool:
        """True if a PUT happened; False if the object is gone or already has this status."""
        kind = kinds.by_group_kind(group, kind_name)
        if kind is None or not kind.has_status:
            return False
        path = kind.path(namespace or None, name)
        for attempt in range(self.attempts):
            try:
                live = await self.api.get(path)
            except client.ApiError as exc:
                if exc.status == 404:
                    return False
                raise
            merged = merge(live.get("status"), ours, self.controller_name)
            if equivalent(merged, live.get("status")):
                return False
            live["status"] = merged
            try:
                await self.api.request("PUT", path + "/status", live)
            except client.ApiError as exc:
                if exc.status == 409 and attempt + 1 < self.attempts:
                    continue
                if exc.status == 404:
                    return False
                raise
            self.writes += 1
            log.info("status of %s %s/%s written", kind_name, namespace, name)
            return True
        return False
