"""Immutable, consistent xDS snapshots: one per gateway, one content-hash version per resource.

In: the resources translated for one gateway (`resource_pb2.Resource` envelopes). Out: a
`Snapshot` mapping each xDS resource name (the inner message's `key`) to an `Entry` that holds
the resource's deterministic serialization and its sha256. `build` checks the set first and
raises `InconsistentSnapshot` naming every problem, so a snapshot that exists is consistent:

- every resource has a kind and a non-empty key, and keys are unique across kinds;
- `Route.listener_key` names a Listener, `Listener.bind_key` names a Bind;
- every `backend_key` (route backends, request mirrors) names a Backend;
- a Policy's `listener_key` / `route_key` / `backend_key` target names such a resource.

Versions are content hashes, so the same resource always has the same version whichever
reconcile produced it, and the delta server sends exactly the resources whose bytes changed.
Entries hold bytes, not messages: protobuf messages are mutable, bytes are not.

Pure (no I/O, no asyncio). Called by the reconciler (through `cache.SnapshotCache.publish`) and by
tests; read by `server.DeltaAds`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence

from api.proto.agentgw.v1 import resource_pb2 as pb

TYPE_URL = "type.googleapis.com/" + pb.Resource.DESCRIPTOR.full_name
"""The type URL of every resource we serve: type.googleapis.com/agentgw.v1.Resource."""


class InconsistentSnapshot(Exception):
    """The resources do not form a consistent snapshot; `problems` says why, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("inconsistent snapshot: " + "; ".join(problems))
        self.problems = tuple(problems)


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One resource as served: its name, kind, version and serialized envelope."""

    name: str
    kind: str
    version: str
    """sha256 (hex) of `value`."""
    value: bytes
    """`resource_pb2.Resource` serialized with deterministic=True."""

    def resource(self) -> pb.Resource:
        return pb.Resource.FromString(self.value)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent resource set. Never mutated: a change is a new snapshot."""

    entries: Mapping[str, Entry]
    """Name -> entry; a read-only view."""
    version: str
    """Hash of every (name, version): for logs and `system_version_info`, not for diffing."""

    def __len__(self) -> int:
        return len(self.entries)

    def versions(self) -> dict[str, str]:
        return {name: e.version for name, e in self.entries.items()}


def build(resources: Iterable[pb.Resource]) -> Snapshot:
    """Check `resources` and freeze them into a snapshot, or raise `InconsistentSnapshot`."""
    resources = list(resources)
    problems = check(resources)
    if problems:
        raise InconsistentSnapshot(problems)
    entries = {e.name: e for e in map(_entry, resources)}
    return Snapshot(entries=types.MappingProxyType(entries), version=_snapshot_version(entries))


def check(resources: Sequence[pb.Resource]) -> list[str]:
    """Every consistency problem of `resources`, one human-readable line each; [] if none."""
    problems: list[str] = []
    kinds: dict[str, str] = {}
    for i, r in enumerate(resources):
        kind = r.WhichOneof("kind")
        key = getattr(r, kind).key if kind else ""
        if kind is None:
            problems.append(f"resources[{i}]: no resource kind set")
        elif not key:
            problems.append(f"resources[{i}]: {kind} without a key")
        elif key in kinds:
            problems.append(f"{kind} {key!r}: duplicate key (a {kinds[key]} has it too)")
        else:
            kinds[key] = kind
    for r in resources:
        kind = r.WhichOneof("kind")
        if kind is None:
            continue
        key = getattr(r, kind).key
        for field, ref, wanted in _references(r):
            if kinds.get(ref) != wanted:
                problems.append(f"{kind} {key!r}: {field} {ref!r} names no {wanted}")
    return problems


def _references(r: pb.Resource) -> Iterator[tuple[str, str, str]]:
    """(field path, referenced key, kind it must have) for every reference `r` makes."""
    kind = r.WhichOneof("kind")
    if kind == "route":
        yield "listener_key", r.route.listener_key, "listener"
        for i, b in enumerate(r.route.backends):
            if b.ref.WhichOneof("kind") == "backend_key":
                yield f"backends[{i}].backend_key", b.ref.backend_key, "backend"
        yield from _policy_references("policies", r.route.policies)
    elif kind == "listener":
        yield "bind_key", r.listener.bind_key, "bind"
        yield from _policy_references("policies", r.listener.policies)
    elif kind == "policy":
        target = r.policy.target.WhichOneof("kind")
        if target in ("listener_key", "route_key", "backend_key"):
            yield f"target.{target}", getattr(r.policy.target, target), target.removesuffix("_key")
        yield from _policy_references("traffic", r.policy.traffic)


def _policy_references(path: str, policy: pb.TrafficPolicy) -> Iterator[tuple[str, str, str]]:
    for i, mirror in enumerate(policy.request_mirrors):
        if mirror.backend.WhichOneof("kind") == "backend_key":
            yield f"{path}.request_mirrors[{i}].backend_key", mirror.backend.backend_key, "backend"


def _entry(r: pb.Resource) -> Entry:
    kind = r.WhichOneof("kind")
    assert kind is not None  # check() ran first
    value = r.SerializeToString(deterministic=True)
    return Entry(name=getattr(r, kind).key, kind=kind, version=hashlib.sha256(value).hexdigest(), value=value)


def _snapshot_version(entries: Mapping[str, Entry]) -> str:
    h = hashlib.sha256()
    for name in sorted(entries):
        h.update(f"{name}\0{entries[name].version}\n".encode())
    return h.hexdigest()[:16]
