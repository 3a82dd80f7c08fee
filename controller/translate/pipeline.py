"""The translation: `Inputs` -> xDS resources per Gateway, and statuses. Pure and deterministic.

In: a frozen `model.Inputs` and the clock for new conditions' `lastTransitionTime`. Out: a
`model.Output`. Steps, each in its own module:

1. GatewayClasses with our controllerName (`gateways`): Accepted + supportedFeatures;
2. AgentgatewayBackends (`agwbackends`): a Backend resource each, or TranslationError;
3. Gateways of our classes (`gateways`): listener states, Bind and Listener resources;
4. HTTPRoutes and GRPCRoutes (`routes`, `grpcroutes`, `attach`, `filters`, `backends`): where each
   attaches (`routes.claims`: on a listener, a route of one kind that shares a hostname with an
   older one of the other kind is refused), then Routes on the listeners they attach to, the
   Backends those use, `status.parents`;
5. AgentgatewayPolicies (`policies`, `policyspec`): a Policy per target on the Gateways the
   targets belong to (so after the routes), `status.ancestors`;
6. Gateway statuses, now that `attachedRoutes` is known.

Called (as `controller.translate.translate`) by the reconciler after each debounce, and by the
golden tests. The same Inputs always give the same Output (resources sorted by key, so snapshot
versions are stable).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from api.gateway import conditions
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.translate import (
    agwbackends,
    backends,
    gateways,
    grpcroutes,
    index,
    model,
    policies,
    routes,
    status,
)

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
"""The clock of golden files."""

GATEWAY_GROUP_KIND = (gw.GROUP, "Gateway")


def translate(inputs: model.Inputs, now: datetime.datetime = EPOCH) -> model.Output:
    """Translate everything; `now` stamps the conditions (the writer keeps unchanged ones' times)."""
    idx = index.build(inputs)
    clock = status.rfc3339(now)
    statuses: dict[model.ObjectRef, dict[str, Any]] = {}

    class_problems = _our_classes(idx, clock, statuses)
    translated = agwbackends.translate_all(idx)
    statuses.update(_backend_statuses(idx, translated, clock))
    states = _gateway_states(idx, class_problems, clock, statuses)

    ctx = routes.Context(
        gateways=states,
        resolver=backends.Resolver(idx, translated),
        labels_of=idx.labels_of,
        controller_name=inputs.controller_name,
        now=clock,
    )
    resources: dict[model.GatewayKey, list[pb.Resource]] = {
        k: gateways.resources(s) for k, s in states.items()
    }
    attached: dict[tuple[model.GatewayKey, str], int] = {}
    route_kinds: dict[str, str] = {}
    all_routes = [(routes.HTTP, obj) for obj in inputs.http_routes]
    all_routes += [(grpcroutes.GRPC, obj) for obj in inputs.grpc_routes]
    ctx = dataclasses.replace(ctx, claims=routes.claims(all_routes, ctx))
    for kind, obj in all_routes:
        result = routes.translate(obj, ctx, kind)
        for gateway, found in result.resources.items():
            resources[gateway].extend(found)
            route_kinds.update((r.route.key, kind.name) for r in found if r.WhichOneof("kind") == "route")
        for pair in result.attached:
            attached[pair] = attached.get(pair, 0) + 1
        if result.status is not None:
            statuses[_ref(obj, kind.name)] = result.status

    placed = policies.translate_all(
        idx, states, resources, route_kinds, ctx.resolver, inputs.controller_name, clock
    )
    for gateway, found in placed.resources.items():
        resources[gateway].extend(found)
    statuses.update(placed.statuses)

    for key, state in states.items():
        counts = {name: n for (gateway, name), n in attached.items() if gateway == key}
        statuses[model.ObjectRef(gw.GROUP, "Gateway", *key)] = gateways.gateway_status(state, counts, clock)
    return model.Output(
        resources={k: _sorted_unique(v) for k, v in sorted(resources.items())},
        statuses=dict(sorted(statuses.items())),
    )


def _ref(obj: model.Object, kind: str) -> model.ObjectRef:
    return model.ObjectRef(model.group_of(obj), kind, index.namespace_of(obj), index.name_of(obj))


def _our_classes(
    idx: index.Index, clock: str, statuses: dict[model.ObjectRef, dict[str, Any]]
) -> dict[str, status.Problem | None]:
    """Name -> why not accepted (None: accepted), for the GatewayClasses we own."""
    out: dict[str, status.Problem | None] = {}
    for name, cls in sorted(idx.gateway_classes.items()):
        if cls.spec.controller_name != idx.inputs.controller_name:
            continue
        out[name] = gateways.class_problem(cls)
        statuses[model.ObjectRef(gw.GROUP, "GatewayClass", "", name)] = gateways.class_status(
            cls, out[name], clock
        )
    return out


def _backend_statuses(
    idx: index.Index, translated: Mapping[index.NamespacedName, agwbackends.Result], clock: str
) -> dict[model.ObjectRef, dict[str, Any]]:
    out: dict[model.ObjectRef, dict[str, Any]] = {}
    for (namespace, name), result in translated.items():
        obj = idx.backends[(namespace, name)]
        stamp = status.Stamp(index.generation_of(obj), clock)
        accepted = status.from_problem(
            conditions.ACCEPTED, result.problem, conditions.ACCEPTED, agwbackends.ACCEPTED_MESSAGE, stamp
        )
        out[model.ObjectRef("agentgateway.dev", "AgentgatewayBackend", namespace, name)] = {
            "conditions": [accepted]
        }
    return out


def _gateway_states(
    idx: index.Index,
    class_problems: Mapping[str, status.Problem | None],
    clock: str,
    statuses: dict[model.ObjectRef, dict[str, Any]],
) -> dict[model.GatewayKey, gateways.GatewayState]:
    """The Gateways of our classes; one that does not parse gets `Accepted=False/Invalid` only."""
    out: dict[model.GatewayKey, gateways.GatewayState] = {}
    for obj in idx.inputs.gateways:
        class_name = (obj.get("spec") or {}).get("gatewayClassName")
        if class_name not in class_problems:
            continue
        key = model.GatewayKey(index.namespace_of(obj), index.name_of(obj))
        try:
            view = gw.parse(gw.Gateway, obj)
        except pydantic.ValidationError as exc:
            problem = status.Problem(conditions.INVALID, gw.describe(exc))
            out[key] = gateways.GatewayState(key, index.generation_of(obj), (), problem)
            continue
        out[key] = gateways.gateway_state(view, class_problems[str(class_name)], idx)
    return dict(sorted(out.items()))


def _sorted_unique(resources: Iterable[pb.Resource]) -> list[pb.Resource]:
    """By key; a Backend used by several routes appears once (identical copies)."""
    by_key: dict[str, pb.Resource] = {}
    for r in resources:
        by_key.setdefault(resource_key(r), r)
    return [by_key[k] for k in sorted(by_key)]


def resource_key(resource: pb.Resource) -> str:
    kind = resource.WhichOneof("kind")
    return str(getattr(resource, kind).key) if kind else ""
