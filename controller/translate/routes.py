"""A route (HTTPRoute, GRPCRoute) -> one Route per (rule, listener it attaches to), the Backends
they use, and the route's `status.parents`.

In: one raw route object, its `RouteKind` (`HTTP` here; `grpcroutes.GRPC`) and a `Context` (our
Gateways' states, the backend resolver, Namespace labels, the controller name, the clock). Out:
a `RouteResult`: per Gateway the Route and Backend resources, the listeners the route attached
to (for `attachedRoutes`), and the status stanza (None when the route has nothing to do with
us). What differs between kinds is only how a rule becomes matches, a TrafficPolicy and
RouteBackends (`RouteKind.parse`); parents, attachment, placement and status are shared.

A Route's key is `<listener key>/<namespace>/<name>/<rule index>` for an HTTPRoute and
`<listener key>/grpc/<namespace>/<name>/<rule index>` for a GRPCRoute (so the two kinds never
share a key); it carries the route's name, namespace, rule name (the rule's `name`, or its
index), creation time and rule index, which the proxy uses for the Gateway API tie-breakers
(oldest route, then "namespace/name", then rule order: the same for both kinds), the hostnames
the route serves on that listener, the matches, the TrafficPolicy of the rule's filters,
timeouts and retry, and one RouteBackend per *resolved* backendRef with its weight and
backendRef filters.

Invalid backendRefs (`ResolvedRefs=False`) are left out of the Route: the proxy answers 500 when
a rule has no backend with weight, as the spec requires when every backendRef is invalid. With a
mix, the valid ones take all the traffic instead of the spec's proportional 500s: the Route
proto has no way to name an invalid backend yet (see the package docstring). A rule with a value
agentgw cannot carry is dropped (`PartiallyInvalid`, message "Dropped Rule ..."), and a route
whose every rule is dropped is `Accepted=False/UnsupportedValue`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pydantic

from api.gateway import conditions
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.translate import attach, backends, filters, gateways, hostnames, index, model, status


@dataclasses.dataclass(frozen=True)
class RuleParts:
    """What one rule of any route kind becomes, before placement on listeners."""

    matches: Sequence[pb.RouteMatch]
    policy: pb.TrafficPolicy | None
    targets: Sequence[pb.RouteBackend]
    resolutions: Sequence[backends.Resolution]
    """Of its backendRefs and mirror refs: Backends to ship, problems for `ResolvedRefs`."""


RuleTranslator = Callable[[str, filters.RefResolver], RuleParts]
"""(where, e.g. `spec.rules[0]`; resolver) -> the rule's parts; raises `filters.Unsupported`."""


@dataclasses.dataclass(frozen=True)
class ParsedRule:
    name: str | None
    translate: RuleTranslator


@dataclasses.dataclass(frozen=True)
class ParsedRoute:
    """A route of any kind, as far as the shared steps need it."""

    metadata: gw.ObjectMeta
    hostnames: Sequence[str]
    rules: Sequence[ParsedRule]


@dataclasses.dataclass(frozen=True)
class RouteKind:
    name: str
    """The Kubernetes kind, e.g. `HTTPRoute` (for allowedRoutes kinds and ReferenceGrants)."""
    key_infix: str
    """Inserted after the listener key in Route keys: "" or e.g. `grpc/`."""
    parse: Callable[[model.Object], ParsedRoute]
    """Raises pydantic.ValidationError when the object does not fit the view."""


@dataclasses.dataclass(frozen=True)
class Context:
    gateways: Mapping[model.GatewayKey, gateways.GatewayState]
    resolver: backends.Resolver
    labels_of: Callable[[str], Mapping[str, str]]
    controller_name: str
    now: str
    claims: Mapping[tuple[model.GatewayKey, str], Sequence[Claim]] = dataclasses.field(default_factory=dict)
    """Per (Gateway, listener name): the routes of every kind that attach there (`claims`), for
    the rule that an HTTPRoute and a GRPCRoute never share a hostname on a listener."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A route attached to a listener, with the hostnames it serves there."""

    kind: str
    order: tuple[int, str]
    """(creation time, "namespace/name"): the smaller one is the older route and wins."""
    hostnames: tuple[str, ...]
    """() means every hostname the listener takes."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.order[1]}"


@dataclasses.dataclass(frozen=True)
class RouteResult:
    resources: dict[model.GatewayKey, list[pb.Resource]]
    attached: frozenset[tuple[model.GatewayKey, str]]
    """(gateway, listener name) pairs the route attached to."""
    status: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Rule:
    """One translated rule, not yet placed on a listener."""

    index: int
    name: str
    route: pb.Route | None
    """The Route without key, listener and hostnames; None when the rule was dropped."""
    backends: tuple[pb.Backend, ...] = ()
    problems: tuple[status.Problem, ...] = ()
    """Problems of its references (ResolvedRefs)."""
    dropped: str | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What dropped rules do to the route's status."""

    rejected: status.Problem | None = None
    """Every rule was dropped: `Accepted=False` on every parent."""
    partial: str | None = None
    """Some rules were dropped: the `PartiallyInvalid` message."""


def translate(obj: model.Object, ctx: Context, kind: RouteKind | None = None) -> RouteResult:
    """Translate one route of `kind` (default: HTTPRoute)."""
    kind = kind or HTTP
    namespace = index.namespace_of(obj)
    refs = _our_parents(obj, namespace, ctx)
    if not refs:
        return RouteResult({}, frozenset(), _stale(obj, ctx))
    stamp = status.Stamp(index.generation_of(obj), ctx.now)
    try:
        route = kind.parse(obj)
    except pydantic.ValidationError as exc:
        problem = status.Problem(conditions.UNSUPPORTED_VALUE, gw.describe(exc))
        parents = [_unaccepted(ref, namespace, problem) for ref in refs]
        return RouteResult({}, frozenset(), _status(stamp, parents, (), Verdict(), ctx))
    rules = tuple(_rule(route, kind, i, r, ctx) for i, r in enumerate(route.rules))
    kept = [r for r in rules if r.route is not None]
    parents = [_cross_serving(_attach(ref, route, kind, ctx), _claim(route, kind, ()), ctx) for ref in refs]
    problems = tuple(p for r in kept for p in r.problems)
    verdict = _verdict(rules, kept)
    stanza = _status(stamp, parents, problems, verdict, ctx)
    if verdict.rejected is not None:
        return RouteResult({}, frozenset(), stanza)
    attached = frozenset((p.gateway, a.listener.spec.name) for p in parents for a in p.attachments)
    return RouteResult(_place(route, kind, parents, kept), attached, stanza)


# --------------------------------------------------------------------------------------------
# Parents


def _gateway_key(ref: gw.ParentReference, namespace: str) -> model.GatewayKey:
    return model.GatewayKey(ref.namespace or namespace, ref.name)


def _our_parents(obj: model.Object, namespace: str, ctx: Context) -> list[gw.ParentReference]:
    """The route's parentRefs that name a Gateway of ours, without repeats (read leniently: a
    route whose rules do not parse still gets a status on its parents)."""
    try:
        head = gw.parse(gw.RouteHead, obj)
    except pydantic.ValidationError:
        return []
    out: list[gw.ParentReference] = []
    for ref in head.spec.parent_refs:
        ours = (
            ref.group == gw.GROUP and ref.kind == "Gateway" and _gateway_key(ref, namespace) in ctx.gateways
        )
        if ours and ref not in out:
            out.append(ref)
    return out


def _attach(ref: gw.ParentReference, route: ParsedRoute, kind: RouteKind, ctx: Context) -> attach.Parent:
    namespace = route.metadata.namespace
    gateway = ctx.gateways[_gateway_key(ref, namespace)]
    return attach.attach(ref, namespace, kind.name, route.hostnames, gateway, ctx.labels_of)


def claims(
    objects: Iterable[tuple[RouteKind, model.Object]], ctx: Context
) -> dict[tuple[model.GatewayKey, str], list[Claim]]:
    """Where each route attaches, by (Gateway, listener name), before translating any of them."""
    out: dict[tuple[model.GatewayKey, str], list[Claim]] = {}
    for kind, obj in objects:
        namespace = index.namespace_of(obj)
        refs = _our_parents(obj, namespace, ctx)
        if not refs:
            continue
        try:
            route = kind.parse(obj)
        except pydantic.ValidationError:
            continue
        for ref in refs:
            parent = _attach(ref, route, kind, ctx)
            for a in parent.attachments:
                out.setdefault((parent.gateway, a.listener.spec.name), []).append(
                    _claim(route, kind, a.hostnames)
                )
    return out


def _claim(route: ParsedRoute, kind: RouteKind, names: tuple[str, ...]) -> Claim:
    meta = route.metadata
    return Claim(
        kind.name, (creation_seconds(meta.creation_timestamp), f"{meta.namespace}/{meta.name}"), names
    )


def _cross_serving(parent: attach.Parent, route: Claim, ctx: Context) -> attach.Parent:
    """Leave out the listeners where an older route of another kind (HTTPRoute vs GRPCRoute)
    serves an intersecting hostname (GRPCRoute spec: exactly one of the two is accepted); with
    none left, the parent is `Accepted=False/NotAllowedByListeners`."""
    kept: list[attach.Attachment] = []
    rivals: list[str] = []
    for a in parent.attachments:
        older = [
            c
            for c in ctx.claims.get((parent.gateway, a.listener.spec.name), ())
            if c.kind != route.kind and c.order < route.order and _overlap(c.hostnames, a.hostnames)
        ]
        if older:
            rivals.append(f"{older[0].label} on listener {a.listener.spec.name}")
        else:
            kept.append(a)
    if not rivals or parent.problem is not None:
        return parent
    if kept:
        return dataclasses.replace(parent, attachments=tuple(kept))
    message = f"an older route of another kind serves the same hostnames: {', '.join(rivals)}"
    return dataclasses.replace(
        parent, attachments=(), problem=status.Problem(conditions.NOT_ALLOWED_BY_LISTENERS, message)
    )


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two routes' hostnames on one listener intersect (() is every hostname there)."""
    return not a or not b or any(hostnames.pair(x, y) is not None for x in a for y in b)


def _unaccepted(ref: gw.ParentReference, namespace: str, problem: status.Problem) -> attach.Parent:
    return attach.Parent(attach.parent_ref(ref, namespace), _gateway_key(ref, namespace), (), problem)


# --------------------------------------------------------------------------------------------
# Rules


def _rule(route: ParsedRoute, kind: RouteKind, i: int, rule: ParsedRule, ctx: Context) -> Rule:
    where = f"spec.rules[{i}]"
    name = rule.name or str(i)
    namespace = route.metadata.namespace

    def resolve(ref: gw.BackendObjectReference) -> backends.Resolution:
        return ctx.resolver.resolve(ref, namespace, kind.name)

    try:
        parts = rule.translate(where, resolve)
    except filters.Unsupported as exc:
        return Rule(index=i, name=name, route=None, dropped=str(exc))
    template = pb.Route(
        name=route.metadata.name,
        namespace=namespace,
        rule_name=name,
        matches=parts.matches,
        backends=parts.targets,
        policies=parts.policy,
        creation_unix_seconds=creation_seconds(route.metadata.creation_timestamp),
        rule_index=i,
    )
    return Rule(
        index=i,
        name=name,
        route=template,
        backends=tuple(r.backend for r in parts.resolutions if r.backend is not None),
        problems=tuple(r.problem for r in parts.resolutions if r.problem is not None),
    )


def route_backends(
    refs: Sequence[gw.HTTPBackendRef],
    where: str,
    resolve: filters.RefResolver,
    http_version: pb.HttpVersion = pb.HTTP_VERSION_UNSPECIFIED,
) -> tuple[list[pb.RouteBackend], list[backends.Resolution]]:
    """A rule's backendRefs -> RouteBackends of the resolved ones (weight, backendRef filters and,
    unless unspecified, the HTTP version to speak to them) and every resolution."""
    out: list[pb.RouteBackend] = []
    resolutions: list[backends.Resolution] = []
    for j, ref in enumerate(refs):
        policy = filters.backend_policy(ref, f"{where}.backendRefs[{j}]")
        if http_version != pb.HTTP_VERSION_UNSPECIFIED:
            policy = policy or pb.BackendPolicy()
            policy.http_version = http_version
        resolution = resolve(ref)
        resolutions.append(resolution)
        if resolution.backend is not None:
            ref_pb = pb.BackendRef(backend_key=resolution.backend.key)
            out.append(pb.RouteBackend(ref=ref_pb, weight=ref.weight, policies=policy))
    return out, resolutions


# --------------------------------------------------------------------------------------------
# HTTPRoute


def _http_rule(rule: gw.HTTPRouteRule) -> RuleTranslator:
    def parts(where: str, resolve: filters.RefResolver) -> RuleParts:
        policy, mirrors = filters.traffic_policy(rule, where, resolve)
        matches = [filters.match(m, f"{where}.matches[{j}]") for j, m in enumerate(rule.matches)]
        found, resolutions = route_backends(rule.backend_refs, where, resolve)
        return RuleParts(matches, policy, found, resolutions + mirrors)

    return parts


def _parse_http(obj: model.Object) -> ParsedRoute:
    route = gw.parse(gw.HTTPRoute, obj)
    rules = [ParsedRule(r.name, _http_rule(r)) for r in route.spec.rules]
    return ParsedRoute(route.metadata, route.spec.hostnames, rules)


HTTP = RouteKind("HTTPRoute", "", _parse_http)


def _verdict(rules: Sequence[Rule], kept: Sequence[Rule]) -> Verdict:
    if len(kept) == len(rules):
        return Verdict()
    dropped = "; ".join(
        f"{r.index}{'' if r.name == str(r.index) else f' ({r.name})'}: {r.dropped}"
        for r in rules
        if r.dropped
    )
    message = f"Dropped Rule(s) {dropped}"
    if kept:
        return Verdict(partial=message)
    return Verdict(rejected=status.Problem(conditions.UNSUPPORTED_VALUE, message))


def creation_seconds(timestamp: str | None) -> int:
    """Unix seconds of an RFC 3339 `creationTimestamp`; 0 when absent or unreadable."""
    if not timestamp:
        return 0
    try:
        return int(datetime.datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return 0


# --------------------------------------------------------------------------------------------
# Placement on listeners


def _place(
    route: ParsedRoute, kind: RouteKind, parents: Sequence[attach.Parent], rules: Sequence[Rule]
) -> dict[model.GatewayKey, list[pb.Resource]]:
    """The Route resources per attachment (one per listener), plus the Backends they use."""
    out: dict[model.GatewayKey, list[pb.Resource]] = {}
    placed: set[tuple[model.GatewayKey, str]] = set()
    for parent in parents:
        for attachment in parent.attachments:
            listener = attachment.listener
            if (parent.gateway, listener.key) in placed:
                continue
            placed.add((parent.gateway, listener.key))
            resources = out.setdefault(parent.gateway, [])
            for rule in rules:
                assert rule.route is not None
                placed_route = pb.Route()
                placed_route.CopyFrom(rule.route)
                placed_route.key = (
                    f"{listener.key}/{kind.key_infix}{route.metadata.namespace}/{route.metadata.name}/"
                    f"{rule.index}"
                )
                placed_route.listener_key = listener.key
                placed_route.hostnames.extend(attachment.hostnames)
                resources.append(pb.Resource(route=placed_route))
                resources.extend(pb.Resource(backend=b) for b in rule.backends)
    return out


# --------------------------------------------------------------------------------------------
# Status


def _status(
    stamp: status.Stamp,
    parents: Sequence[attach.Parent],
    problems: Sequence[status.Problem],
    verdict: Verdict,
    ctx: Context,
) -> dict[str, Any]:
    """Our `status.parents` entries: Accepted and ResolvedRefs (+ PartiallyInvalid) per parentRef."""
    resolved = None
    if problems:
        # The first problem's reason; every distinct message, so none is hidden.
        resolved = status.Problem(problems[0].reason, "; ".join(dict.fromkeys(p.message for p in problems)))
    entries = []
    for parent in parents:
        problem = parent.problem or verdict.rejected
        found = [
            status.from_problem(conditions.ACCEPTED, problem, conditions.ACCEPTED, "", stamp),
            status.from_problem(conditions.RESOLVED_REFS, resolved, conditions.RESOLVED_REFS, "", stamp),
        ]
        if verdict.partial is not None and problem is None:
            partial = status.condition(
                conditions.PARTIALLY_INVALID, True, conditions.UNSUPPORTED_VALUE, verdict.partial, stamp
            )
            found.append(partial)
        entries.append({"parentRef": parent.ref, "controllerName": ctx.controller_name, "conditions": found})
    return {"parents": entries}


def _stale(obj: model.Object, ctx: Context) -> dict[str, Any] | None:
    """`{"parents": []}` for a route that no longer names a Gateway of ours but still carries an
    entry of ours (the writer then removes it); None when the route was never ours."""
    current = obj.get("status") or {}
    ours = any(p.get("controllerName") == ctx.controller_name for p in current.get("parents") or ())
    return {"parents": []} if ours else None
