"""Route attachment: which listeners of a Gateway take a route, through one parentRef.

In: one `parentRef` of a route (already known to name a Gateway of ours), the route's namespace,
kind and hostnames, the Gateway's `GatewayState` and Namespace labels. Out: a `Parent`: the
listeners the route attaches to, each with the hostnames it serves there, or the reason for the
parent's `Accepted=False`. The checks run in the spec's order and the first empty step names
the reason:

1. `sectionName` and `port` select listeners -> none: `NoMatchingParent`;
2. the listener is usable, admits the route's kind and its `allowedRoutes.namespaces` (`Same`,
   the default; `All`; `Selector` on the route namespace's labels; `None`) admit the route's
   namespace -> none: `NotAllowedByListeners`;
3. listener and route hostnames intersect (`controller.translate.hostnames`) -> none:
   `NoMatchingListenerHostname`.

Pure; called by `controller.translate.routes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from api.gateway import conditions
from api.gateway import v1 as gw
from controller.translate import gateways, hostnames, model, refs, status


@dataclasses.dataclass(frozen=True)
class Attachment:
    listener: gateways.ListenerState
    hostnames: tuple[str, ...]
    """The route's hostnames on this listener; () means the listener's (any host it takes)."""


@dataclasses.dataclass(frozen=True)
class Parent:
    """The outcome of one parentRef: attachments, or the reason there are none."""

    ref: dict[str, Any]
    """The parentRef as written in `status.parents[].parentRef` (defaults filled in)."""
    gateway: model.GatewayKey
    attachments: tuple[Attachment, ...]
    problem: status.Problem | None


def parent_ref(ref: gw.ParentReference, route_namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "group": ref.group,
        "kind": ref.kind,
        "namespace": ref.namespace or route_namespace,
        "name": ref.name,
    }
    if ref.section_name is not None:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out


def attach(
    ref: gw.ParentReference,
    route_namespace: str,
    route_kind: str,
    route_hostnames: Sequence[str],
    gateway: gateways.GatewayState,
    labels_of: Callable[[str], Mapping[str, str]],
) -> Parent:
    def outcome(found: Sequence[Attachment], problem: status.Problem | None) -> Parent:
        return Parent(parent_ref(ref, route_namespace), gateway.key, tuple(found), problem)

    if gateway.problem is not None:
        name = f"{gateway.key.namespace}/{gateway.key.name}"
        return outcome((), status.Problem(conditions.NO_MATCHING_PARENT, f"Gateway {name} is not accepted"))
    selected = [lis for lis in gateway.listeners if _selected(ref, lis)]
    if not selected:
        return outcome((), status.Problem(conditions.NO_MATCHING_PARENT, _no_listener(ref)))
    kind = gw.RouteGroupKind(group=gw.GROUP, kind=route_kind)
    route_labels = labels_of(route_namespace)
    allowed = [
        lis
        for lis in selected
        if lis.usable
        and kind in lis.kinds
        and _namespace_allowed(lis, gateway.key, route_namespace, route_labels)
    ]
    if not allowed:
        message = f"no listener allows a {route_kind} from namespace {route_namespace}"
        return outcome((), status.Problem(conditions.NOT_ALLOWED_BY_LISTENERS, message))
    found = []
    for lis in allowed:
        names = hostnames.intersect(lis.spec.hostname, route_hostnames)
        if names is not None:
            found.append(Attachment(lis, names))
    if not found:
        message = "no listener hostname matches the route's hostnames"
        return outcome((), status.Problem(conditions.NO_MATCHING_LISTENER_HOSTNAME, message))
    return outcome(found, None)


def _selected(ref: gw.ParentReference, lis: gateways.ListenerState) -> bool:
    return (ref.section_name is None or ref.section_name == lis.spec.name) and (
        ref.port is None or ref.port == lis.spec.port
    )


def _no_listener(ref: gw.ParentReference) -> str:
    wanted = []
    if ref.section_name is not None:
        wanted.append(f"named {ref.section_name}")
    if ref.port is not None:
        wanted.append(f"on port {ref.port}")
    return f"no listener {' and '.join(wanted)}"


def _namespace_allowed(
    lis: gateways.ListenerState, gateway: model.GatewayKey, namespace: str, labels: Mapping[str, str]
) -> bool:
    policy = lis.spec.allowed_routes.namespaces
    if policy.from_ == "All":
        return True
    if policy.from_ == "Same":
        return namespace == gateway.namespace
    if policy.from_ == "Selector":
        return policy.selector is not None and refs.selects(policy.selector, labels)
    return False  # "None", or a value newer than this code: admit nothing
