"""GRPCRoute rules -> the same Route resources HTTPRoute rules become (`routes.RouteKind` GRPC).

In: one raw GRPCRoute (read through `api.gateway.v1.GRPCRoute`). Out: through
`routes.translate(obj, ctx, GRPC)`, Routes keyed `<listener key>/grpc/<namespace>/<name>/<rule>`,
their Backends and the route's `status.parents`; parents, hostnames, allowedRoutes,
ReferenceGrants (`from` kind GRPCRoute), statuses and placement are HTTPRoute's (`routes`,
`attach`, `backends`).

A gRPC call is an HTTP/2 POST to `/<service>/<method>`, so a method match is a path match:

    type Exact,  service + method -> exact   /<service>/<method>
    type Exact,  service only     -> regex   /<service>/[^/]+       precedence len(service) << 16
    type Exact,  method only      -> regex   /[^/]+/<method>        precedence len(method)
    type RegularExpression        -> regex   /(?:<service>)/(?:<method>)   (either one absent: [^/]+)
    no method match               -> prefix  /

No method (`POST`) match is added: the spec matches on service, method and headers only.
`headers` become header matches (Exact, RegularExpression; the first entry per name counts).
Rule filters `RequestHeaderModifier`, `ResponseHeaderModifier` and `RequestMirror` translate as
HTTPRoute's; `ExtensionRef` (or any other type) drops the rule (`Accepted=False/UnsupportedValue`
when every rule is dropped, `PartiallyInvalid` otherwise). Every backend of a GRPCRoute gets
`BackendPolicy.http_version: HTTP2` on its RouteBackend (a mirror has no BackendPolicy: it speaks
HTTP/2 only to a Service port whose appProtocol says so, see `backends`).

Precedence: Gateway API ranks GRPCRoute rules by the characters of the matching service, then
of the method, then header matches, then age and name. The proxy tries exact paths first (a
service + method match has the most of both), then regex paths by `RouteMatch.precedence` (the
service's length above the method's), then more header matches and the route order; so a
service-only match outranks a method-only one and a longer service a shorter one.
RegularExpression matches carry precedence 0 (their order among themselves is the pattern's
length, as the spec leaves it to implementations).
"""

from __future__ import annotations

import re

from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.translate import filters, model, routes

KIND = "GRPCRoute"

FILTERS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"})
"""The GRPCRoute rule filter types agentgw carries (`ExtensionRef` is not)."""

ANY_NAME = "[^/]+"
"""One path segment: any service or any method."""


def match(m: gw.GRPCRouteMatch, where: str) -> pb.RouteMatch:
    path, precedence = _path(m.method, f"{where}.method")
    return pb.RouteMatch(path=path, headers=filters.header_matches(m.headers, where), precedence=precedence)


def _path(m: gw.GRPCMethodMatch | None, where: str) -> tuple[pb.PathMatch, int]:
    """The path match of a method match, and its precedence among regex paths."""
    service, method = (m.service or "", m.method or "") if m is not None else ("", "")
    if m is None or not (service or method):
        return pb.PathMatch(prefix="/"), 0
    if m.type == "Exact":
        if service and method:
            return pb.PathMatch(exact=f"/{service}/{method}"), 0
        if service:
            return pb.PathMatch(regex=f"/{re.escape(service)}/{ANY_NAME}"), len(service) << 16
        return pb.PathMatch(regex=f"/{ANY_NAME}/{re.escape(method)}"), len(method)
    if m.type == "RegularExpression":
        filters.regex(service or ANY_NAME, f"{where}.service")
        filters.regex(method or ANY_NAME, f"{where}.method")
        return pb.PathMatch(regex=f"/(?:{service or ANY_NAME})/(?:{method or ANY_NAME})"), 0
    raise filters.Unsupported(f"{where}.type: unsupported value {m.type!r}")


def _rule(rule: gw.GRPCRouteRule) -> routes.RuleTranslator:
    def parts(where: str, resolve: filters.RefResolver) -> routes.RuleParts:
        policy, mirrors = filters.rule_filters(rule.filters, where, resolve, FILTERS)
        if rule.session_persistence is not None:
            raise filters.Unsupported(f"{where}.sessionPersistence: not supported by agentgw yet")
        matches = [match(m, f"{where}.matches[{j}]") for j, m in enumerate(rule.matches)]
        found, resolutions = routes.route_backends(rule.backend_refs, where, resolve, pb.HTTP_VERSION_HTTP2)
        return routes.RuleParts(
            matches or [pb.RouteMatch(path=pb.PathMatch(prefix="/"))],
            policy if policy.ListFields() else None,
            found,
            resolutions + mirrors,
        )

    return parts


def _parse(obj: model.Object) -> routes.ParsedRoute:
    route = gw.parse(gw.GRPCRoute, obj)
    rules = [routes.ParsedRule(r.name, _rule(r)) for r in route.spec.rules]
    return routes.ParsedRoute(route.metadata, route.spec.hostnames, rules)


GRPC = routes.RouteKind(KIND, "grpc/", _parse)
