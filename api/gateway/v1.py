"""Typed, read-only views of the Gateway API objects the controller reads (gateway.networking.k8s.io, v1.6).

In: one object as the Kubernetes API returns it (a mapping; the CRD defaults may or may not have
been applied, e.g. in tests). Out: a frozen model whose fields carry the spec's defaults, so the
translator never re-implements defaulting (`parentRefs[].group` is `gateway.networking.k8s.io`,
`backendRefs[].kind` is `Service`, a rule without matches matches `PathPrefix /`, ...).

These are views, not validators: the apiserver has already validated the object against the
installed CRDs, so unknown fields are ignored (a newer Gateway API release may add some). Fields
that agentgw reads but does not implement are kept (`sessionPersistence`, `externalAuth`,
`extensionRef`, `tls`) so that the translator can report them instead of dropping them.

Called by `controller.translate` (through `parse`), never on the request path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import alias_generators

GROUP = "gateway.networking.k8s.io"
"""The Gateway API group."""


class View(pydantic.BaseModel):
    """A read-only view: camelCase keys, unknown keys ignored, immutable."""

    model_config = pydantic.ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, alias_generator=alias_generators.to_camel
    )


# --------------------------------------------------------------------------------------------
# Object envelope


class ObjectMeta(View):
    """The parts of `metadata` the translator reads."""

    name: str = ""
    namespace: str = ""
    generation: int | None = None
    creation_timestamp: str | None = None
    """RFC 3339, as the apiserver writes it (`2024-01-02T03:04:05Z`)."""
    labels: dict[str, str] = {}


class LabelSelectorRequirement(View):
    key: str
    operator: str
    """`In`, `NotIn`, `Exists` or `DoesNotExist`."""
    values: list[str] = []


class LabelSelector(View):
    """A Kubernetes label selector; the empty selector selects everything."""

    match_labels: dict[str, str] = {}
    match_expressions: list[LabelSelectorRequirement] = []


# --------------------------------------------------------------------------------------------
# GatewayClass


class ParametersReference(View):
    group: str
    kind: str
    name: str
    namespace: str | None = None


class GatewayClassSpec(View):
    controller_name: str
    parameters_ref: ParametersReference | None = None
    description: str | None = None


class GatewayClass(View):
    metadata: ObjectMeta = ObjectMeta()
    spec: GatewayClassSpec


# --------------------------------------------------------------------------------------------
# Gateway


class RouteGroupKind(View):
    group: str = GROUP
    kind: str


class RouteNamespaces(View):
    from_: str = pydantic.Field("Same", alias="from")
    """`Same` (the default), `All`, `Selector` or `None`."""
    selector: LabelSelector | None = None


class AllowedRoutes(View):
    namespaces: RouteNamespaces = RouteNamespaces()
    kinds: list[RouteGroupKind] | None = None
    """None: the kinds the listener's protocol supports."""


class Listener(View):
    name: str
    hostname: str | None = None
    port: int
    protocol: str
    tls: dict[str, Any] | None = None
    allowed_routes: AllowedRoutes = AllowedRoutes()


class GatewaySpec(View):
    gateway_class_name: str
    listeners: list[Listener] = []
    addresses: list[dict[str, Any]] = []


class Gateway(View):
    metadata: ObjectMeta = ObjectMeta()
    spec: GatewaySpec


# --------------------------------------------------------------------------------------------
# References


class ParentReference(View):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    """None: the route's namespace."""
    name: str
    section_name: str | None = None
    port: int | None = None


class BackendObjectReference(View):
    group: str = ""
    kind: str = "Service"
    name: str
    namespace: str | None = None
    """None: the route's namespace."""
    port: int | None = None


# --------------------------------------------------------------------------------------------
# HTTPRoute: matches


class HTTPPathMatch(View):
    type: str = "PathPrefix"
    """`Exact`, `PathPrefix` (the default) or `RegularExpression`."""
    value: str = "/"


class HTTPHeaderMatch(View):
    type: str = "Exact"
    """`Exact` (the default) or `RegularExpression`."""
    name: str
    value: str


class HTTPQueryParamMatch(View):
    type: str = "Exact"
    name: str
    value: str


class HTTPRouteMatch(View):
    path: HTTPPathMatch = HTTPPathMatch()
    headers: list[HTTPHeaderMatch] = []
    query_params: list[HTTPQueryParamMatch] = []
    method: str | None = None


# --------------------------------------------------------------------------------------------
# HTTPRoute: filters


class HTTPHeader(View):
    name: str
    value: str


class HTTPHeaderFilter(View):
    set: list[HTTPHeader] = []
    add: list[HTTPHeader] = []
    remove: list[str] = []


class HTTPPathModifier(View):
    type: str
    """`ReplaceFullPath` or `ReplacePrefixMatch`."""
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


class HTTPRequestRedirectFilter(View):
    scheme: str | None = None
    hostname: str | None = None
    path: HTTPPathModifier | None = None
    port: int | None = None
    status_code: int = 302


class HTTPURLRewriteFilter(View):
    hostname: str | None = None
    path: HTTPPathModifier | None = None


class Fraction(View):
    numerator: int
    denominator: int = 100


class HTTPRequestMirrorFilter(View):
    backend_ref: BackendObjectReference
    percent: int | None = None
    fraction: Fraction | None = None


class HTTPCORSFilter(View):
    allow_origins: list[str] = []
    allow_credentials: bool = False
    allow_methods: list[str] = []
    allow_headers: list[str] = []
    expose_headers: list[str] = []
    max_age: int = 5
    """Seconds; the spec's default is 5."""


class HTTPRouteFilter(View):
    type: str
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    external_auth: dict[str, Any] | None = None
    extension_ref: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# HTTPRoute: rules


class HTTPBackendRef(BackendObjectReference):
    weight: int = 1
    filters: list[HTTPRouteFilter] = []


class HTTPRouteTimeouts(View):
    request: str | None = None
    backend_request: str | None = None


class HTTPRouteRetry(View):
    """Experimental channel in v1.6 (`rules[].retry`)."""

    codes: list[int] = []
    attempts: int | None = None
    backoff: str | None = None


class HTTPRouteRule(View):
    name: str | None = None
    matches: list[HTTPRouteMatch] = [HTTPRouteMatch()]
    filters: list[HTTPRouteFilter] = []
    backend_refs: list[HTTPBackendRef] = []
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: dict[str, Any] | None = None


class RouteParents(View):
    """The part of a route every route kind shares: where it attaches."""

    parent_refs: list[ParentReference] = []
    hostnames: list[str] = []


class HTTPRouteSpec(RouteParents):
    rules: list[HTTPRouteRule] = [HTTPRouteRule()]


class HTTPRoute(View):
    metadata: ObjectMeta = ObjectMeta()
    spec: HTTPRouteSpec = HTTPRouteSpec()


class GRPCMethodMatch(View):
    type: str = "Exact"
    """`Exact` (the default) or `RegularExpression`."""
    service: str | None = None
    """None (or empty): any service."""
    method: str | None = None
    """None (or empty): any method."""


class GRPCRouteMatch(View):
    method: GRPCMethodMatch | None = None
    """None: every service and method."""
    headers: list[HTTPHeaderMatch] = []


class GRPCRouteRule(View):
    """A GRPCRoute rule. Its filters have HTTPRoute filters' shape (the CRD allows
    RequestHeaderModifier, ResponseHeaderModifier, RequestMirror and ExtensionRef; the translator
    refuses the types GRPCRoute does not have); its backendRefs are HTTPRoute backendRefs."""

    name: str | None = None
    matches: list[GRPCRouteMatch] = []
    """Empty: the rule matches every gRPC request (GRPCRoute's CRD has no default match)."""
    filters: list[HTTPRouteFilter] = []
    backend_refs: list[HTTPBackendRef] = []
    session_persistence: dict[str, Any] | None = None


class GRPCRouteSpec(RouteParents):
    rules: list[GRPCRouteRule] = []
    """No default rule (unlike HTTPRoute's CRD)."""


class GRPCRoute(View):
    metadata: ObjectMeta = ObjectMeta()
    spec: GRPCRouteSpec = GRPCRouteSpec()


class RouteHead(View):
    """An HTTPRoute read only as far as its parents: used when the full view does not parse."""

    metadata: ObjectMeta = ObjectMeta()
    spec: RouteParents = RouteParents()


# --------------------------------------------------------------------------------------------
# ReferenceGrant (v1beta1 and v1 have the same shape)


class ReferenceGrantFrom(View):
    group: str
    kind: str
    namespace: str


class ReferenceGrantTo(View):
    group: str
    kind: str
    name: str | None = None
    """None: every object of the kind."""


class ReferenceGrantSpec(View):
    from_: list[ReferenceGrantFrom] = pydantic.Field([], alias="from")
    to: list[ReferenceGrantTo] = []


class ReferenceGrant(View):
    metadata: ObjectMeta = ObjectMeta()
    spec: ReferenceGrantSpec = ReferenceGrantSpec()


# --------------------------------------------------------------------------------------------
# Parsing

V = TypeVar("V", bound=View)


def parse(cls: type[V], obj: Mapping[str, Any]) -> V:
    """The view of `obj`; raises pydantic.ValidationError when a field has the wrong shape."""
    return cls.model_validate(obj)


def describe(exc: pydantic.ValidationError) -> str:
    """A one-line account of a view error: `spec.rules[0].matches[0].path.value: Input should be ...`."""
    parts = []
    for error in exc.errors():
        path = ""
        for loc in error["loc"]:
            path += f"[{loc}]" if isinstance(loc, int) else ("." if path else "") + str(loc)
        parts.append(f"{path}: {error['msg']}" if path else str(error["msg"]))
    return "; ".join(parts)
