"""Typed, read-only views of GRPCRoute (gateway.networking.k8s.io/v1, Gateway API v1.6).

In: one GRPCRoute as the Kubernetes API returns it. Out: a frozen `GRPCRoute` view with the
spec's defaults filled in, in the style of `api.gateway.v1` (whose base `View`, parent and
backend references, header matches and filters it reuses):

- `rules` defaults to none (unlike HTTPRoute's CRD, GRPCRoute's has no default rule), a rule's
  `matches` to none (match every request);
- `matches[].method.type` and `matches[].headers[].type` default to `Exact`;
- a filter has the shape of an HTTPRouteFilter restricted by the CRD to `RequestHeaderModifier`,
  `ResponseHeaderModifier`, `RequestMirror` and `ExtensionRef`, so it is read with the same view
  (`api.gateway.v1.HTTPRouteFilter`); the translator refuses the types GRPCRoute does not have;
- a backendRef is an HTTPRoute backendRef (`weight` 1 by default, `filters`).

Views, not validators (the apiserver validated the object). Called by
`controller.translate.grpcroutes` (through `api.gateway.v1.parse`).
"""

from __future__ import annotations

from typing import Any

from api.gateway import v1 as gw


class GRPCMethodMatch(gw.View):
    type: str = "Exact"
    """`Exact` (the default) or `RegularExpression`."""
    service: str | None = None
    """None (or empty): any service."""
    method: str | None = None
    """None (or empty): any method."""


class GRPCRouteMatch(gw.View):
    method: GRPCMethodMatch | None = None
    """None: every service and method."""
    headers: list[gw.HTTPHeaderMatch] = []


class GRPCRouteRule(gw.View):
    name: str | None = None
    matches: list[GRPCRouteMatch] = []
    """Empty: the rule matches every gRPC request."""
    filters: list[gw.HTTPRouteFilter] = []
    backend_refs: list[gw.HTTPBackendRef] = []
    session_persistence: dict[str, Any] | None = None


class GRPCRouteSpec(gw.RouteParents):
    rules: list[GRPCRouteRule] = []


class GRPCRoute(gw.View):
    metadata: gw.ObjectMeta = gw.ObjectMeta()
    spec: GRPCRouteSpec = GRPCRouteSpec()
