"""Deep merges: parameters field by field, and overlays as strategic-merge patches.

In: plain JSON-like values (dicts, lists, scalars). Out: new values; inputs are never mutated.
Called by `controller.deployer.render`.

`merge_fields(base, override)` merges typed AgentgatewayParameters settings: maps recurse, and
any other value of `override` replaces the one in `base`.

`strategic_merge(target, patch)` applies a `KubernetesResourceOverlay` the way
`kubectl patch --type strategic` does, for the fields of the objects we generate:

- maps merge recursively; a `null` value deletes the key;
- lists of maps merge item by item on the merge key of their field (`MERGE_KEYS`: containers,
  volumes, env and the like by `name`, container ports by `containerPort`, Service ports by
  `port`, volume mounts by `mountPath`, tolerations by `key`); items without a match are
  appended; any other list is replaced whole;
- `$patch: delete` in a map deletes that map (or that list item); `$patch: replace` in a map
  replaces the target map with the rest of the patch map; a list item `{$patch: replace}`
  replaces the whole list with the other items.

Limits, compared with Kubernetes' implementation (which reads the merge keys from the Go types):
merge keys come from the field name alone, so a field named like a mergeable one anywhere in the
object merges the same way; `$retainKeys`, `$deleteFromPrimitiveList`, `$setElementOrder` and the
`$patch: merge` list directive are not supported and are kept as ordinary keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

MERGE_KEYS: Mapping[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "resourceClaims": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "hostAliases": ("ip",),
    "tolerations": ("key",),
    "topologySpreadConstraints": ("topologyKey",),
}
"""List field -> candidate merge keys; the first key that the list's items carry is used."""

PATCH = "$patch"


def merge_fields(base: Any, override: Any) -> Any:
    """`override` over `base`: maps recurse, every other value of `override` replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge_fields(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def merge_env(base: list[dict[str, Any]], override: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Environment variables by name: a variable of `override` replaces the one of the same name
    in place; new names are appended in order."""
    out = [copy.deepcopy(e) for e in base]
    index = {e["name"]: i for i, e in enumerate(out)}
    for e in override:
        if e["name"] in index:
            out[index[e["name"]]] = copy.deepcopy(e)
        else:
            index[e["name"]] = len(out)
            out.append(copy.deepcopy(e))
    return out


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """`target` patched with `patch` (a strategic-merge patch); `field` is the key of `target`."""
    if isinstance(patch, dict):
        if not isinstance(target, dict) or patch.get(PATCH) == "replace":
            return _clean(patch)
        out = dict(target)
        for key, value in patch.items():
            if key == PATCH:
                continue
            if value is None or (isinstance(value, dict) and value.get(PATCH) == "delete"):
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = _clean(value)
        return out
    if isinstance(patch, list) and isinstance(target, list):
        return _merge_list(target, patch, field)
    return copy.deepcopy(patch)


def _merge_list(target: list[Any], patch: list[Any], field: str) -> list[Any]:
    items = [p for p in patch if not (isinstance(p, dict) and p.get(PATCH) == "replace" and len(p) == 1)]
    if len(items) != len(patch):
        return [_clean(p) for p in items]
    key = _merge_key(field, target + patch)
    if key is None:
        return [_clean(p) for p in patch]
    out = [copy.deepcopy(t) for t in target]
    for item in patch:
        at = next((i for i, t in enumerate(out) if isinstance(t, dict) and t.get(key) == item.get(key)), None)
        if item.get(PATCH) == "delete":
            if at is not None:
                del out[at]
        elif at is None:
            out.append(_clean(item))
        else:
            out[at] = strategic_merge(out[at], item, field)
    return out


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in MERGE_KEYS.get(field, ()):
        if all(key in i for i in items):
            return key
    return None


def _clean(value: Any) -> Any:
    """A patch value as data: directives and null map values removed."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != PATCH and v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return copy.deepcopy(value)
