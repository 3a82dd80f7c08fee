"""AgentgatewayPolicy -> one Policy resource per resolved target, on the Gateway the target belongs
to, and the policy's `status.ancestors`.

In: the raw AgentgatewayPolicy objects, the `Index`, our Gateways' states, the resources translated
so far per Gateway (the Routes and Backends that targets resolve to), the backend `Resolver`, the
controller name and the clock. Out: a `Result` with the Policy resources (and the Backends their
ext auth and rate-limit services need) per Gateway, and each policy's status. The policy's
sections are translated once (`policyspec`); every target gets a copy:

    Gateway                            -> `gateway` "<ns>/<name>"
    Gateway, sectionName (a listener)  -> `listener_key` `bind/<port>/<listener>`
    HTTPRoute, GRPCRoute               -> `route_key` of each of its Routes (one per rule and
                                          listener it attached to)
    HTTPRoute, GRPCRoute, sectionName  -> `rule_key` of the Routes of the rule of that name
    Service                            -> `backend_key` `service/<ns>/<name>:<port>` of each port
                                          routes use (sectionName: that port)
    AgentgatewayBackend                -> `backend_key` `backend/<ns>/<name>`

A Policy's key is `policy/<ns>/<name>/<target kind>/<target>` (`.../route/bind/80/http/default/
r/0`), stable while the target exists. The translator does not merge: the proxy merges policies
field by field (Gateway < listener < route < rule < backend; `strategy.inheritance: Override` ->
`override`; at one level a route's own filters first, then older policies). ListenerSet and
InferencePool targets are not translated yet.

Status (agentgateway's, Gateway API `PolicyAncestorStatus`): one ancestor per Gateway the policy
reaches, `ancestorRef` that Gateway, with `Accepted` (`Valid` "Policy accepted"; `PartiallyValid`
when parts were dropped; `Invalid` when a reference did not resolve (the policy is still enforced,
failing closed, see `policyspec`) or nothing could be translated) and `Attached` (`Attached`
"Attached to all targets"; `Merged` when some of its fields lose to another policy on every route
they reach, `Overridden` when all do; `Pending` when the policy is invalid). Targets that do not
resolve, or reach no Gateway, are reported on an extra ancestor `{group: agentgateway.dev, name:
StatusSummary}` with `Attached=False/Pending` ("Policy is not attached: HTTPRoute default/x not
found"), as agentgateway does. At most 16 ancestors. Pure; called by `pipeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from api import errors
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.v1alpha1 import policy as agwpolicy
from api.v1alpha1 import validation
from controller.translate import backends, gateways, index, model, policyspec, routes, status

ACCEPTED = "Accepted"
ATTACHED = "Attached"

VALID = "Valid"
PARTIALLY_VALID = "PartiallyValid"
INVALID = "Invalid"
MERGED = "Merged"
OVERRIDDEN = "Overridden"
PENDING = "Pending"

ACCEPTED_MESSAGE = "Policy accepted"
ATTACHED_MESSAGE = "Attached to all targets"
NOT_ATTACHED_INVALID = "Policy is not attached due to invalid status"

STATUS_SUMMARY = {"group": policyspec.GROUP, "kind": "Gateway", "name": "StatusSummary"}
"""The ancestorRef of the entry about targets that reach no Gateway (agentgateway's)."""

MAX_ANCESTORS = 16

FIELD_NAMES = {
    "request_header_modifier": "headerModifiers.request",
    "response_header_modifier": "headerModifiers.response",
    "url_rewrite": "hostRewrite",
    "direct_response": "directResponse",
    "timeout": "timeouts",
    "retry": "retry",
    "cors": "cors",
    "jwt_auth": "jwtAuthentication",
    "api_key": "apiKeyAuthentication",
    "basic_auth": "basicAuthentication",
    "ext_authz": "extAuth",
    "authorization": "authorization",
    "local_rate_limit": "rateLimit.local",
    "remote_rate_limit": "rateLimit.global",
    "transformations": "transformation",
    "csrf": "csrf",
}
"""TrafficPolicy field -> the policy field it comes from (for status messages)."""

_LEVELS = {"gateway": 0, "listener_key": 1, "route_key": 2, "rule_key": 3, "backend_key": 4}

BACKEND_SECTION_TARGETS = frozenset({"gateway", "listener_key", "route_key", "rule_key", "backend_key"})
"""The PolicyTarget kinds the proxy takes a `backend` section on: on a backend, its policies;
above it, defaults for every backend of the routes under the target."""
_KEY_PREFIX = {
    "gateway": "gateway",
    "listener_key": "listener",
    "route_key": "route",
    "rule_key": "rule",
    "backend_key": "backend",
}


@dataclasses.dataclass(frozen=True)
class Result:
    resources: dict[model.GatewayKey, list[pb.Resource]]
    statuses: dict[model.ObjectRef, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class _Placement:
    """One Policy resource: a policy's copy for one target on one Gateway."""

    gateway: model.GatewayKey
    policy: pb.Policy
    source: str
    """"AgentgatewayPolicy <ns>/<name>", for messages."""

    @property
    def target(self) -> tuple[str, str]:
        kind = self.policy.target.WhichOneof("kind") or ""
        return kind, str(getattr(self.policy.target, kind)) if kind else ""

    @property
    def order(self) -> tuple[int, int, str]:
        """The proxy's order within one level: inline filters (0) first, then older policies."""
        return 1, self.policy.creation_unix_seconds, self.policy.key


@dataclasses.dataclass(frozen=True)
class _Translated:
    """One policy after translation and target resolution, before its status."""

    obj: model.Object
    invalid: str | None = None
    """The `Accepted=False/Invalid` message."""
    partial: str | None = None
    """The `Accepted=True/PartiallyValid` message."""
    placements: tuple[_Placement, ...] = ()
    backends: tuple[pb.Backend, ...] = ()
    """Backends the policy's services need, shipped with its Policy resources."""
    unattached: tuple[str, ...] = ()
    """Why some targets reach no Gateway."""


def translate_all(
    idx: index.Index,
    states: Mapping[model.GatewayKey, gateways.GatewayState],
    resources: Mapping[model.GatewayKey, Sequence[pb.Resource]],
    route_kinds: Mapping[str, str],
    resolver: backends.Resolver,
    controller_name: str,
    now: str,
) -> Result:
    """Every AgentgatewayPolicy: its Policy resources and its status. `route_kinds` maps each
    Route key to the kind of the route it comes from (`HTTPRoute`, `GRPCRoute`)."""
    found = _Found.of(resources, route_kinds)
    done = [_translate(obj, idx, states, found, resolver) for obj in idx.inputs.policies]
    out: dict[model.GatewayKey, list[pb.Resource]] = {}
    for t in done:
        for p in t.placements:
            out.setdefault(p.gateway, []).append(pb.Resource(policy=p.policy))
        for gateway in {p.gateway for p in t.placements}:
            out[gateway].extend(pb.Resource(backend=b) for b in t.backends)
    winners = _Winners(found, [p for t in done for p in t.placements])
    statuses = {
        model.ObjectRef(policyspec.GROUP, policyspec.KIND, index.namespace_of(t.obj), index.name_of(t.obj)): (
            _status(t, winners, controller_name, now)
        )
        for t in done
    }
    return Result(out, statuses)


# --------------------------------------------------------------------------------------------
# Translation


def _translate(
    obj: model.Object,
    idx: index.Index,
    states: Mapping[model.GatewayKey, gateways.GatewayState],
    found: _Found,
    resolver: backends.Resolver,
) -> _Translated:
    namespace, name = index.namespace_of(obj), index.name_of(obj)
    try:
        parsed = validation.parse({k: v for k, v in obj.items() if k != "status"})
    except errors.ConfigError as exc:
        return _Translated(obj, invalid="invalid policy: " + "; ".join(exc.problems))
    assert isinstance(parsed, agwpolicy.AgentgatewayPolicy)
    spec = policyspec.translate(parsed, idx, resolver)
    if spec.traffic is None and spec.backend is None:
        return _Translated(obj, invalid="; ".join((*spec.invalid, *spec.dropped)) or "nothing to apply")
    targets, unattached = _targets(parsed, namespace, idx, states, found)
    creation = routes.creation_seconds((obj.get("metadata") or {}).get("creationTimestamp"))
    source = f"{policyspec.KIND} {namespace}/{name}"
    placements = []
    dropped = list(spec.dropped)
    for gateway, target in targets:
        kind = target.WhichOneof("kind") or ""
        backend = spec.backend
        if backend is not None and kind not in BACKEND_SECTION_TARGETS:
            message = f"backend on {_KEY_PREFIX[kind]} targets is not supported by agentgw yet"
            dropped.extend([message] if message not in dropped else [])
            backend = None
        if spec.traffic is None and backend is None:
            continue
        policy = pb.Policy(
            key=f"policy/{namespace}/{name}/{_KEY_PREFIX[kind]}/{getattr(target, kind)}",
            name=f"{namespace}/{name}",
            target=target,
            traffic=spec.traffic,
            backend=backend,
            override=spec.override,
            namespace=namespace,
            creation_unix_seconds=creation,
        )
        placements.append(_Placement(gateway, policy, source))
    if not placements and targets:
        return _Translated(obj, invalid="; ".join((*spec.invalid, *dropped)), unattached=tuple(unattached))
    return _Translated(
        obj,
        invalid="; ".join((*spec.invalid, *dropped)) if spec.invalid else None,
        partial="; ".join(dropped) if dropped else None,
        placements=tuple(placements),
        backends=spec.backends,
        unattached=tuple(unattached),
    )


@dataclasses.dataclass(frozen=True)
class _Found:
    """What targets resolve to: the Routes and Backend keys of each Gateway."""

    routes: dict[model.GatewayKey, list[pb.Route]]
    backend_keys: dict[model.GatewayKey, set[str]]
    kinds: Mapping[str, str]
    """Route key -> the kind of its route."""

    @classmethod
    def of(
        cls, resources: Mapping[model.GatewayKey, Sequence[pb.Resource]], kinds: Mapping[str, str]
    ) -> _Found:
        found_routes: dict[model.GatewayKey, list[pb.Route]] = {}
        keys: dict[model.GatewayKey, set[str]] = {}
        for gateway, items in resources.items():
            found_routes[gateway] = [r.route for r in items if r.WhichOneof("kind") == "route"]
            keys[gateway] = {r.backend.key for r in items if r.WhichOneof("kind") == "backend"}
        return cls(found_routes, keys, kinds)


def _targets(
    parsed: agwpolicy.AgentgatewayPolicy,
    namespace: str,
    idx: index.Index,
    states: Mapping[model.GatewayKey, gateways.GatewayState],
    found: _Found,
) -> tuple[list[tuple[model.GatewayKey, pb.PolicyTarget]], list[str]]:
    """(Gateway, PolicyTarget) of every target, without repeats, and why some reach none."""
    wanted: list[tuple[str, str, str, str | None]] = []  # group, kind, name, sectionName
    unattached: list[str] = []
    for ref in parsed.spec.target_refs or ():
        wanted.append((ref.group, ref.kind, ref.name, ref.section_name))
    for selector in parsed.spec.target_selectors or ():
        objects = _objects_of(idx, selector.group, selector.kind)
        matched = [
            name
            for (ns, name), obj in sorted(objects.items())
            if ns == namespace
            and all(index.object_labels(obj).get(k) == v for k, v in selector.match_labels.items())
        ]
        if objects is _NO_OBJECTS:
            unattached.append(
                f"Policy is not attached: {selector.kind} targets are not supported by agentgw yet"
            )
        elif not matched:
            unattached.append(
                f"Policy is not attached: no {selector.kind} matching selector found in namespace {namespace}"
            )
        wanted.extend((selector.group, selector.kind, name, selector.section_name) for name in matched)
    out: list[tuple[model.GatewayKey, pb.PolicyTarget]] = []
    seen: set[tuple[model.GatewayKey, str, str]] = set()
    for group, kind, name, section in dict.fromkeys(wanted):
        resolved, problem = _resolve(group, kind, namespace, name, section, idx, states, found)
        if problem is not None:
            unattached.append(f"Policy is not attached: {problem}")
        for gateway, target in resolved:
            which = target.WhichOneof("kind") or ""
            key = (gateway, which, str(getattr(target, which)))
            if key not in seen:
                seen.add(key)
                out.append((gateway, target))
    return out, unattached


_NO_OBJECTS: Mapping[index.NamespacedName, model.Object] = {}


def _objects_of(idx: index.Index, group: str, kind: str) -> Mapping[index.NamespacedName, model.Object]:
    by_kind = {
        (gw.GROUP, "Gateway"): idx.gateways,
        (gw.GROUP, "HTTPRoute"): idx.http_routes,
        (gw.GROUP, "GRPCRoute"): idx.grpc_routes,
        ("", "Service"): idx.services,
        (policyspec.GROUP, "AgentgatewayBackend"): idx.backends,
    }
    return by_kind.get((group, kind), _NO_OBJECTS)


def _resolve(
    group: str,
    kind: str,
    namespace: str,
    name: str,
    section: str | None,
    idx: index.Index,
    states: Mapping[model.GatewayKey, gateways.GatewayState],
    found: _Found,
) -> tuple[list[tuple[model.GatewayKey, pb.PolicyTarget]], str | None]:
    """The PolicyTargets one target resolves to, or why none."""
    objects = _objects_of(idx, group, kind)
    if objects is _NO_OBJECTS:
        return [], f"{kind} targets are not supported by agentgw yet"
    what = f"{kind} {namespace}/{name}"
    obj = objects.get((namespace, name))
    if obj is None:
        return [], f"{what} not found"
    if kind == "Gateway":
        return _gateway_target(model.GatewayKey(namespace, name), section, states, what)
    if kind in ("HTTPRoute", "GRPCRoute"):
        return _route_targets(obj, kind, namespace, name, section, found, what)
    if kind == "Service":
        if section is None:
            prefix = backends.service_key(namespace, name, 0).removesuffix("0")
            keys = {g: sorted(k for k in ks if k.startswith(prefix)) for g, ks in found.backend_keys.items()}
        else:
            key = backends.service_key(namespace, name, int(section))
            keys = {g: [key] for g, ks in found.backend_keys.items() if key in ks}
    else:
        if section is not None:
            return [], f"{what}: sectionName on an AgentgatewayBackend is not supported by agentgw yet"
        key = f"backend/{namespace}/{name}"
        keys = {g: [key] for g, ks in found.backend_keys.items() if key in ks}
    out = [(g, pb.PolicyTarget(backend_key=k)) for g, ks in sorted(keys.items()) for k in ks]
    return out, None if out else f"{what} is not attached to any Gateway"


def _gateway_target(
    key: model.GatewayKey,
    section: str | None,
    states: Mapping[model.GatewayKey, gateways.GatewayState],
    what: str,
) -> tuple[list[tuple[model.GatewayKey, pb.PolicyTarget]], str | None]:
    state = states.get(key)
    if state is None:
        return [], f"{what} is not attached to any Gateway of this controller"
    if section is None:
        return [(key, pb.PolicyTarget(gateway=f"{key.namespace}/{key.name}"))], None
    listener = state.listener(section)
    if listener is None:
        return [], f"{what} has no listener {section}"
    if not listener.usable:
        return [], f"{what} listener {section} is not programmed"
    return [(key, pb.PolicyTarget(listener_key=listener.key))], None


def _route_targets(
    obj: model.Object,
    kind: str,
    namespace: str,
    name: str,
    section: str | None,
    found: _Found,
    what: str,
) -> tuple[list[tuple[model.GatewayKey, pb.PolicyTarget]], str | None]:
    rule_index: int | None = None
    if section is not None:
        rules = (obj.get("spec") or {}).get("rules") or ()
        rule_index = next((i for i, r in enumerate(rules) if (r or {}).get("name") == section), None)
        if rule_index is None:
            return [], f"{what} has no rule named {section}"
    out = [
        (gateway, pb.PolicyTarget(route_key=r.key) if rule_index is None else pb.PolicyTarget(rule_key=r.key))
        for gateway, found_routes in sorted(found.routes.items())
        for r in found_routes
        if r.namespace == namespace
        and r.name == name
        and found.kinds.get(r.key) == kind
        and (rule_index is None or r.rule_index == rule_index)
    ]
    return out, None if out else f"{what} is not attached to any Gateway"


# --------------------------------------------------------------------------------------------
# Which policy wins each field (the proxy's merge, to report Merged / Overridden)


@dataclasses.dataclass(frozen=True)
class _Source:
    placement: _Placement | None
    """None: the route's own filters."""
    fields: frozenset[str]
    override: bool
    order: tuple[int, int, str]
    label: str


class _Winners:
    """For every Route of every Gateway, the source whose value the proxy uses, per field."""

    def __init__(self, found: _Found, placements: Iterable[_Placement]) -> None:
        by_target: dict[tuple[model.GatewayKey, str, str], list[_Source]] = {}
        for p in placements:
            source = _Source(p, _fields(p.policy.traffic), p.policy.override, p.order, p.source)
            by_target.setdefault((p.gateway, *p.target), []).append(source)
        self.routes_under: dict[tuple[model.GatewayKey, str, str], list[str]] = {}
        self.won: dict[tuple[model.GatewayKey, str], dict[str, _Source]] = {}
        for gateway, found_routes in found.routes.items():
            for route in found_routes:
                inline = _Source(
                    None,
                    _fields(route.policies),
                    False,
                    (0, 0, ""),
                    f"{found.kinds.get(route.key, 'HTTPRoute')} {route.namespace}/{route.name}",
                )
                levels = [
                    by_target.get((gateway, "gateway", f"{gateway.namespace}/{gateway.name}"), []),
                    by_target.get((gateway, "listener_key", route.listener_key), []),
                    by_target.get((gateway, "route_key", route.key), []),
                    [inline, *by_target.get((gateway, "rule_key", route.key), [])],
                ]
                self.won[(gateway, route.key)] = _merge(levels)
                for target in (
                    ("gateway", f"{gateway.namespace}/{gateway.name}"),
                    ("listener_key", route.listener_key),
                    ("route_key", route.key),
                    ("rule_key", route.key),
                ):
                    self.routes_under.setdefault((gateway, *target), []).append(route.key)

    def lost(self, p: _Placement) -> dict[str, str] | None:
        """The traffic fields of `p` that lose on every route under its target -> to whom; None
        when nothing can be said (no routes under it, or it sets no traffic field)."""
        kind, target = p.target
        fields = _fields(p.policy.traffic)
        under = self.routes_under.get((p.gateway, kind, target), [])
        if _LEVELS.get(kind, 4) > 3 or not under or not fields:
            return None
        out: dict[str, str] = {}
        for field in sorted(fields):
            winners = [self.won[(p.gateway, r)].get(field) for r in under]
            if all(w is not None and w.placement is not p for w in winners):
                first = winners[0]
                assert first is not None
                out[field] = first.label
        return out


def _fields(traffic: pb.TrafficPolicy) -> frozenset[str]:
    return frozenset(f.name for f, _ in traffic.ListFields())


def _merge(levels: Sequence[Sequence[_Source]]) -> dict[str, _Source]:
    """The proxy's precedence (dataplane.config.attach.merge): the least specific `override`
    source wins; otherwise the most specific level wins; within a level, in `order`."""
    ordered = [sorted(level, key=lambda s: s.order) for level in levels]
    names = {f for level in ordered for s in level for f in s.fields}
    out: dict[str, _Source] = {}
    for field in names:
        chosen = None
        for level in ordered:
            chosen = next((s for s in level if s.override and field in s.fields), None)
            if chosen is not None:
                break
        if chosen is None:
            for level in reversed(ordered):
                chosen = next((s for s in level if field in s.fields), None)
                if chosen is not None:
                    break
        if chosen is not None:
            out[field] = chosen
    return out


# --------------------------------------------------------------------------------------------
# Status


def _status(t: _Translated, winners: _Winners, controller_name: str, now: str) -> dict[str, Any]:
    stamp = status.Stamp(index.generation_of(t.obj), now)
    if t.invalid is not None:
        accepted = status.condition(ACCEPTED, False, INVALID, t.invalid, stamp)
    elif t.partial is not None:
        accepted = status.condition(ACCEPTED, True, PARTIALLY_VALID, t.partial, stamp)
    else:
        accepted = status.condition(ACCEPTED, True, VALID, ACCEPTED_MESSAGE, stamp)
    entries = []
    for gateway in sorted({p.gateway for p in t.placements}):
        attached = _attached([p for p in t.placements if p.gateway == gateway], winners, stamp)
        ref = {"group": gw.GROUP, "kind": "Gateway", "namespace": gateway.namespace, "name": gateway.name}
        entries.append(
            {"ancestorRef": ref, "controllerName": controller_name, "conditions": [accepted, attached]}
        )
    summary = None
    if not t.placements and t.invalid is not None:
        summary = status.condition(ATTACHED, False, PENDING, NOT_ATTACHED_INVALID, stamp)
    elif t.unattached:
        summary = status.condition(ATTACHED, False, PENDING, "\n".join(dict.fromkeys(t.unattached)), stamp)
    if summary is not None:
        entries = entries[: MAX_ANCESTORS - 1]
        entries.append(
            {
                "ancestorRef": dict(STATUS_SUMMARY),
                "controllerName": controller_name,
                "conditions": [accepted, summary],
            }
        )
    return {"ancestors": entries[:MAX_ANCESTORS]}


def _attached(placements: Sequence[_Placement], winners: _Winners, stamp: status.Stamp) -> dict[str, Any]:
    """Attached; Merged when some of its fields lose on every route they reach; Overridden when
    all of them do (and it has no backend fields, which are not compared)."""
    settings = 0
    lost: dict[str, str] = {}
    lost_settings = 0
    for p in placements:
        found = winners.lost(p)
        settings += 1 if found is None else len(_fields(p.policy.traffic))
        settings += bool(p.policy.backend.ListFields())
        for field, by in (found or {}).items():
            lost_settings += 1
            lost.setdefault(FIELD_NAMES.get(field, field), by)
    if not lost:
        return status.condition(ATTACHED, True, ATTACHED, ATTACHED_MESSAGE, stamp)
    described = ", ".join(f"{field} by {by}" for field, by in sorted(lost.items()))
    if lost_settings >= settings:
        return status.condition(ATTACHED, False, OVERRIDDEN, f"Overridden: {described}", stamp)
    return status.condition(ATTACHED, True, MERGED, f"{ATTACHED_MESSAGE}; overridden: {described}", stamp)
