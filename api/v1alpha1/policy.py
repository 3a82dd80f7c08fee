"""AgentgatewayPolicy: policies attached to Gateways, routes, Services and backends.

In: the manifest of one AgentgatewayPolicy. Out: the validated model, which the controller
translates to one Policy resource per target (controller.translate.policies); the proxy merges
policies at run time.

A policy selects same-namespace targets (exactly one of `targetRefs` or `targetSelectors`, all of
one kind) and carries at least one section:

- `traffic`: request processing. Targets: Gateway (a listener with `sectionName`), ListenerSet,
  HTTPRoute or GRPCRoute (a rule with `sectionName`), InferencePool. Precedence, field by field:
  Gateway < Listener < Route < Route rule; `strategy.inheritance: Override` makes a policy win
  over more specific ones.
- `frontend`: downstream connection handling. Targets: a whole Gateway (or a `port`).
- `backend`: connecting to destinations (api.v1alpha1.backendpolicy). Targets: any of the above,
  a Service (`sectionName` = port number) or an AgentgatewayBackend (`sectionName` = provider or
  MCP target). Precedence: Gateway < Listener < Route < Route rule < Backend or Service.

Subset of agentgateway. `traffic` has phase, cors, csrf, headerModifiers, hostRewrite, timeouts,
retry, directResponse, authorization, jwtAuthentication, apiKeyAuthentication,
basicAuthentication, extAuth, rateLimit and transformation; `frontend` has http (maxBufferSize,
http1MaxHeaders, http1IdleTimeout). Left out until the proxy implements them (each would be an
unknown field): extProc, buffer, delay; the `conditional` forms of transformation, extAuth,
rateLimit and directResponse; directResponse `bodyExpression` and `headers`; retry
`precondition`/`condition`; jwtAuthentication `mcp`; the `expression` credential location;
extAuth `cache`, `http.body` and `http.responseMetadata`; transformation `metadata`; token
descriptors for the global rate limit (`unit: Tokens`); descriptor
`cost` and `limitOverride`; frontend tcp, tls, networkAuthorization, proxyProtocol, connect,
accessLog, tracing and metrics. Rules whose messages list fields list the fields we have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import pydantic

from api.v1alpha1 import backendpolicy, base, common

# --------------------------------------------------------------------------------------------
# Targets

TARGET_KINDS: dict[str, tuple[str, ...]] = {
    "": ("Service",),
    "agentgateway.dev": ("AgentgatewayBackend",),
    "gateway.networking.k8s.io": ("Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet"),
    "inference.networking.k8s.io": ("InferencePool",),
}
"""API group -> the kinds a policy may target in it."""

TRAFFIC_TARGET_KINDS = ("Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet", "InferencePool")
PRE_ROUTING_TARGET_KINDS = ("Gateway", "ListenerSet")


class LocalPolicyTargetReferenceWithSectionName(base.Model):
    """One same-namespace target by group, kind and name; optionally a section or a port."""

    __rules__ = (base.at_most_one_of("sectionName", "port"),)

    group: common.Group
    """API group, e.g. `gateway.networking.k8s.io`; the empty string for Service. Required."""

    kind: common.Kind
    """Kind, e.g. `Gateway`, `HTTPRoute`, `Service`, `AgentgatewayBackend`. Required."""

    name: common.ObjectName
    """Name of the target. Required."""

    section_name: common.SectionName | None = None
    """Part of the target: a listener, a route rule, a Service port number, a backend's provider
    or MCP target."""

    port: common.Port | None = None
    """A Gateway port, for frontend-only policies."""


class LocalPolicyTargetSelectorWithSectionName(base.Model):
    """Same-namespace targets of one group and kind, selected by labels."""

    __rules__ = (base.at_most_one_of("sectionName", "port"),)

    group: common.Group
    """API group. Required."""

    kind: common.Kind
    """Kind. Required."""

    match_labels: dict[str, str]
    """Labels each target must have. Required."""

    section_name: common.SectionName | None = None
    """Part of each target, as for targetRefs."""

    port: common.Port | None = None
    """A Gateway port, for frontend-only policies."""


Target = LocalPolicyTargetReferenceWithSectionName | LocalPolicyTargetSelectorWithSectionName


def _allowed_kinds(targets: Sequence[Target]) -> bool:
    return all(t.kind in TARGET_KINDS.get(t.group, ()) for t in targets)


def _one_kind(targets: Sequence[Target]) -> bool:
    return len({t.kind for t in targets}) <= 1


_KINDS_RULE = base.Rule(
    "self.all(r, (r.kind == 'Service' && r.group == '') || "
    "(r.kind == 'AgentgatewayBackend' && r.group == 'agentgateway.dev') || "
    "(r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'] && r.group == 'gateway.networking.k8s.io') || "
    "(r.kind == 'ListenerSet' && r.group == 'gateway.networking.k8s.io') || "
    "(r.kind == 'InferencePool' && r.group == 'inference.networking.k8s.io'))",
    "targetRefs may only reference Gateway, HTTPRoute, GRPCRoute, ListenerSet, Service, "
    "AgentgatewayBackend, or InferencePool resources",
    _allowed_kinds,
)
"""On both target lists (agentgateway says `targetRefs` in the message for selectors too)."""

_ONE_KIND_RULE = base.Rule(
    "self.all(l1, !self.exists(l2, l1.kind != l2.kind))",
    "Only one Kind of targetRef can be set on one policy",
    _one_kind,
)


# --------------------------------------------------------------------------------------------
# Traffic


_ORIGIN_PATTERN = r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)"
_NO_STAR_WITH_OTHERS = "!('*' in self && self.size() > 1)"


def _star_alone(values: list[str]) -> bool:
    return "*" not in values or len(values) == 1


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"]


class CORS(base.Model):
    """Cross-Origin Resource Sharing (Gateway API `HTTPCORSFilter`): answers preflight requests and
    adds `Access-Control-*` headers to responses for allowed origins."""

    allow_origins: (
        Annotated[
            list[
                Annotated[
                    str, pydantic.StringConstraints(min_length=1, max_length=253, pattern=_ORIGIN_PATTERN)
                ]
            ],
            pydantic.Field(max_length=64),
            base.ListSet(),
            base.Rule(
                _NO_STAR_WITH_OTHERS, "AllowOrigins cannot contain '*' alongside other origins", _star_alone
            ),
        ]
        | None
    ) = None
    """Origins allowed, as `<scheme>://<host>(:<port>)`; the host may start with `*.`, and `*` alone
    allows every origin. At most 64. Sets `Access-Control-Allow-Origin`."""

    allow_credentials: bool | None = None
    """Whether the response may be shared when the request carries credentials
    (`Access-Control-Allow-Credentials: true`). Default: false."""

    allow_methods: (
        Annotated[
            list[HTTPMethod],
            pydantic.Field(max_length=9),
            base.ListSet(),
            base.Rule(
                _NO_STAR_WITH_OTHERS, "AllowMethods cannot contain '*' alongside other methods", _star_alone
            ),
        ]
        | None
    ) = None
    """Methods allowed in preflight answers (`Access-Control-Allow-Methods`); `*` alone allows all."""

    allow_headers: (
        Annotated[
            list[common.HTTPHeaderName],
            pydantic.Field(max_length=64),
            base.ListSet(),
            base.Rule(
                _NO_STAR_WITH_OTHERS, "AllowHeaders cannot contain '*' alongside other methods", _star_alone
            ),
        ]
        | None
    ) = None
    """Request headers allowed (`Access-Control-Allow-Headers`); `*` alone allows all. At most 64."""

    expose_headers: (
        Annotated[list[common.HTTPHeaderName], pydantic.Field(max_length=64), base.ListSet()] | None
    ) = None
    """Response headers scripts may read (`Access-Control-Expose-Headers`). At most 64."""

    max_age: Annotated[int, pydantic.Field(ge=1)] = 5
    """Seconds a preflight answer may be cached (`Access-Control-Max-Age`), at least 1. Default: 5."""


class HeaderModifiers(base.Model):
    """Header changes on the request to the backend and on the response to the client."""

    __rules__ = (base.at_least_one_field_set(("request", "response")),)

    request: common.HTTPHeaderFilter | None = None
    """Changes to the request before it is forwarded."""

    response: common.HTTPHeaderFilter | None = None
    """Changes to the response before it is returned."""


class HostnameRewrite(base.Model):
    """How the `Host` header is set on forwarded requests."""

    mode: Literal["Auto", "None"]
    """`Auto`: the destination's hostname. `None`: the client's Host header, unchanged.
    Without this policy: `Auto` for hostname backends, `None` for Services and IPs. Required.
    An HTTPRoute `urlRewrite` hostname takes precedence."""


class Timeouts(base.Model):
    """Request timeouts."""

    __rules__ = (base.at_least_one_field_set(("request",)),)

    request: Annotated[common.Duration, common.min_duration("1ms", "request must be at least 1ms")] | None = (
        None
    )
    """Deadline for the whole request, from when the gateway starts sending it to the backend until
    the full response is received, retries included; at least 1ms. Applies to HTTPRoutes."""


class Retry(base.Model):
    """Retries (Gateway API `HTTPRouteRetry`)."""

    attempts: Annotated[int, pydantic.Field(ge=1)] | None = None
    """Maximum number of retries after the first attempt, at least 1."""

    backoff: Annotated[str, pydantic.StringConstraints(pattern=common.DURATION_PATTERN)] | None = None
    """Minimum wait between attempts, e.g. `100ms`; bounded by the request timeout."""

    codes: Annotated[list[Annotated[int, pydantic.Field(ge=400, le=599)]], base.ListSet()] | None = None
    """Response status codes (400 to 599) that are retried. Connection failures are always retried."""


class DirectResponse(base.Model):
    """Answer the request from the gateway with a fixed status and body."""

    status: Annotated[int, pydantic.Field(ge=200, le=599)]
    """HTTP status code, 200 to 599. Required."""

    body: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=4096)] | None = None
    """Response body, 1 to 4096 characters. Default: empty."""


_PRE_ROUTING_FORBIDDEN = (
    "csrf",
    "directResponse",
    "headerModifiers",
    "hostRewrite",
    "rateLimit",
    "retry",
    "timeouts",
)


# --------------------------------------------------------------------------------------------
# Shared by the security sections

CELExpression = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=16384)]
"""A Common Expression Language expression, 1 to 16384 characters. The proxy compiles it and
rejects the policy (NACK) when it does not compile; the controller checks its syntax only."""

URL = Annotated[
    str, pydantic.StringConstraints(min_length=1, max_length=1024, pattern=r"^https?://[^/?#@]+(/[^?#]*)?$")
]
"""An `http://` or `https://` URL without query, fragment or user info."""

AuthMode = Literal["Strict", "Optional", "Permissive"]
"""`Strict`: a valid credential must be present. `Optional`: a credential, when present, must be
valid; requests without one pass. `Permissive`: never reject (credentials are decoded for later
policies)."""

FailureMode = Literal["FailClosed", "FailOpen"]
"""When an external service cannot be reached or errs: `FailClosed` (the default) rejects the
request, `FailOpen` lets it through."""

_QUANTITY_PATTERN = (
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE](\+?0*([0-9]|1[0-8])|-0*[0-9]))?$"
)


def _byte_size_fits(value: int | str) -> bool:
    if isinstance(value, int):
        return 1 <= value <= 4294967295
    return len(value) > 0


ByteSize = Annotated[
    int | str,
    base.IntOrString(_QUANTITY_PATTERN, min_length=1, max_length=32),
    base.Rule(
        "(self >= 1 && self <= 4294967295) || self.size() > 0",
        "value must be at least 1 byte and fit within uint32",
        _byte_size_fits,
    ),
]
"""A byte count: an integer, or a Kubernetes quantity string such as `2Mi` or `64k`."""


def _service_has_port(ref: BackendObjectReference) -> bool:
    return not (ref.group == "" and ref.kind == "Service") or ref.port is not None


class BackendObjectReference(base.Model):
    """A backend (Gateway API `BackendObjectReference`): a `Service` by default, with its port.
    Another namespace needs a ReferenceGrant there that allows AgentgatewayPolicy references."""

    __rules__ = (
        base.Rule(
            "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
            "Must have port for Service reference",
            _service_has_port,
        ),
    )

    group: common.Group = ""
    """API group; the empty string (the default) is the core group."""

    kind: common.Kind = "Service"
    """`Service` (the default) or `AgentgatewayBackend` (group `agentgateway.dev`)."""

    name: common.ObjectName
    """Name of the referent. Required."""

    namespace: common.Namespace | None = None
    """Namespace of the referent. Default: the policy's namespace."""

    port: common.Port | None = None
    """Destination port. Required for a `Service`."""


def _url_path_needs_http(ext: ExtAuth) -> bool:
    return ext.url is None or re.match(r"^https?://[^/?#]+/", ext.url) is None or ext.http is not None


def _url_path_or_http_path(ext: ExtAuth) -> bool:
    return (
        ext.url is None
        or re.match(r"^https?://[^/?#]+/", ext.url) is None
        or ext.http is None
        or ext.http.path is None
    )


# --------------------------------------------------------------------------------------------
# Authentication


class RemoteJWKS(base.Model):
    """A JSON Web Key Set fetched over HTTP(S) by the proxy, refreshed periodically and when a
    token names an unknown key id."""

    __rules__ = (
        base.Rule(
            "has(self.backendRef) ? has(self.jwksPath) : true",
            "jwksPath is required when backendRef is set",
            lambda s: s.backend_ref is None or s.jwks_path is not None,
        ),
        base.Rule(
            "has(self.url) ? !has(self.jwksPath) : true",
            "jwksPath may not be set when url is set",
            lambda s: s.url is None or s.jwks_path is None,
        ),
        base.exactly_one_of("backendRef", "url"),
    )

    jwks_path: common.LongString | None = None
    """Path of the key set on `backendRef`, e.g. `.well-known/jwks.json`. Required with
    `backendRef`, not allowed with `url`."""

    cache_duration: Annotated[
        common.Duration, common.min_duration("5m", "cacheDuration must be at least 5m.")
    ] = "5m"
    """How long a fetched key set is used before it is fetched again; at least 5m. Default: 5m."""

    backend_ref: BackendObjectReference | None = None
    """The key server as a Service or AgentgatewayBackend; plain HTTP to a Service, HTTPS to a
    static AgentgatewayBackend with TLS."""

    url: URL | None = None
    """The key set's full URL, e.g. `https://idp.example.com/.well-known/jwks.json`."""


class JWKS(base.Model):
    """Where the keys that sign tokens come from: exactly one of `remote` and `inline`."""

    __rules__ = (base.exactly_one_of("remote", "inline"),)

    remote: RemoteJWKS | None = None
    """Fetch the key set from the identity provider."""

    inline: Annotated[str, pydantic.StringConstraints(min_length=2, max_length=65536)] | None = None
    """The key set itself, as JSON (`{"keys": [...]}`), 2 to 65536 characters."""


class JWTProvider(base.Model):
    """One token issuer."""

    issuer: common.ShortString
    """Required `iss` claim of the tokens. Required."""

    audiences: Annotated[list[str], pydantic.Field(min_length=1, max_length=64)] | None = None
    """Accepted `aud` values, 1 to 64; a token must carry one of them. Default: any audience."""

    jwks: JWKS
    """Keys that verify the token signature. Required."""


class JWTAuthentication(base.Model):
    """Authenticate requests with JSON Web Tokens; the claims become the `jwt` CEL variable."""

    mode: AuthMode = "Strict"
    """`Strict` (the default): a valid token is required. `Optional`: a token, when present, must
    be valid. `Permissive`: never reject."""

    providers: Annotated[list[JWTProvider], pydantic.Field(min_length=1, max_length=64)]
    """Accepted issuers, 1 to 64; a token is valid when one of them verifies it. Required."""

    location: backendpolicy.AuthorizationLocation | None = None
    """Where the token is read. Default: the `Authorization` header with the `Bearer ` prefix."""


class SecretSelector(base.Model):
    """Same-namespace Secrets selected by labels."""

    match_labels: dict[str, str]
    """Labels each Secret must have. Required."""


class ConfigMapSelector(base.Model):
    """Same-namespace ConfigMaps selected by labels."""

    match_labels: dict[str, str]
    """Labels each ConfigMap must have. Required."""


class APIKeyAuthentication(base.Model):
    """Authenticate requests with API keys read from Secrets (or hashed keys from ConfigMaps).

    Each data entry of a source is one key, named by the entry: either the key itself, or a JSON
    object with `key` or `keyHash` (`sha256:<hex>`) and optional `metadata`, which later policies
    read as `apiKey.<field>` (e.g. `apiKey.group == 'sales'`). ConfigMap entries must use
    `keyHash`.
    """

    __rules__ = (base.exactly_one_of("secretRef", "secretSelector", "configMapSelector"),)

    mode: AuthMode = "Strict"
    """`Strict` (the default): a valid key is required. `Optional`: a key, when present, must be
    valid. `Permissive`: never reject."""

    secret_ref: common.LocalSecretObjectRef | None = None
    """One Secret of keys."""

    secret_selector: SecretSelector | None = None
    """Every Secret with these labels, in the policy's namespace."""

    config_map_selector: ConfigMapSelector | None = None
    """Every ConfigMap with these labels, in the policy's namespace (`keyHash` entries only)."""

    location: backendpolicy.AuthorizationLocation | None = None
    """Where the key is read. Default: the `Authorization` header with the `Bearer ` prefix."""


class BasicAuthentication(base.Model):
    """Authenticate requests with HTTP Basic credentials (RFC 7617) checked against htpasswd
    lines (bcrypt, SHA-1 `{SHA}` or apr1 MD5 hashes)."""

    __rules__ = (base.exactly_one_of("users", "secretRef"),)

    mode: Literal["Strict", "Optional"] = "Strict"
    """`Strict` (the default): valid credentials are required. `Optional`: credentials, when
    present, must be valid."""

    realm: str | None = None
    """Realm in the `WWW-Authenticate` header of a 401. Default: `Restricted`."""

    users: Annotated[list[str], pydantic.Field(min_length=1, max_length=256)] | None = None
    """htpasswd lines, `user:hash`, 1 to 256."""

    secret_ref: common.LocalSecretKeyRef | None = None
    """A Secret holding an htpasswd file. Default key: `.htaccess`."""

    location: backendpolicy.AuthorizationLocation | None = None
    """Where credentials are read. Default: the `Authorization` header with the `Basic ` prefix."""


# --------------------------------------------------------------------------------------------
# Authorization


class AuthorizationPolicy(base.Model):
    """The CEL expressions of one authorization rule."""

    match_expressions: Annotated[list[CELExpression], pydantic.Field(min_length=1, max_length=256)]
    """Boolean CEL expressions, 1 to 256, each a rule with the policy's action (as agentgateway
    translates them): any matching `Allow` allows, any matching `Deny` denies, and every
    `Require` must match. Required."""


class Authorization(base.Model):
    """CEL authorization: a request is denied when a `Deny` rule matches or a `Require` rule does
    not, and, when `Allow` rules exist, unless one of them matches. Like every traffic field, the
    most specific policy's `authorization` applies (agentgateway combines the rules of all).
    Prefer `Allow` and `Require`: an expression that fails to evaluate does not match, so a
    failing `Deny` does not deny."""

    policy: AuthorizationPolicy
    """The expressions. Required."""

    action: Literal["Allow", "Deny", "Require"] = "Allow"
    """What a matching expression does. Default: `Allow`."""


# --------------------------------------------------------------------------------------------
# External authorization


class ExtAuthGRPC(base.Model):
    """The Envoy `ext_authz` gRPC protocol (`envoy.service.auth.v3.Authorization/Check`)."""

    context_extensions: Annotated[dict[str, str], pydantic.Field(max_length=64)] | None = None
    """Sent as `CheckRequest.attributes.context_extensions`; at most 64."""

    request_metadata: Annotated[dict[str, CELExpression], pydantic.Field(max_length=64)] | None = None
    """CEL expressions sent as `metadata_context.filter_metadata`; at most 64."""


class ExtAuthHTTP(base.Model):
    """Plain HTTP: the service answers 200 to allow; any other answer denies the request."""

    path: CELExpression | None = None
    """CEL expression for the path of the authorization request. Default: the request's path."""

    redirect: CELExpression | None = None
    """CEL expression for a redirect location when the service denies (e.g. a sign-in page)."""

    allowed_request_headers: Annotated[list[common.ShortString], pydantic.Field(max_length=64)] | None = None
    """Client request headers sent to the service, at most 64. Default: `Authorization`."""

    add_request_headers: Annotated[dict[str, CELExpression], pydantic.Field(max_length=64)] | None = None
    """Headers added to the authorization request: name -> CEL expression; at most 64."""

    allowed_response_headers: Annotated[list[common.ShortString], pydantic.Field(max_length=64)] | None = None
    """Headers of the service's answer copied into the request to the backend, at most 64."""


class ExtAuthBody(base.Model):
    """Send the request body to the authorization service (the body is buffered)."""

    max_size: ByteSize
    """Largest body sent; a larger body is rejected. Required."""


class ExtAuth(base.Model):
    """Ask an external authorization service to allow or deny each request."""

    __rules__ = (
        base.Rule(
            "[has(self.backendRef),has(self.url)].filter(x,x==true).size() == 1",
            "exactly one of backendRef or url must be set",
            lambda s: (s.backend_ref is None) != (s.url is None),
        ),
        base.exactly_one_of("grpc", "http"),
        base.Rule(
            "!has(self.url) || !self.url.matches('^https?://[^/?#]+/') || has(self.http)",
            "url path is only valid with http",
            _url_path_needs_http,
        ),
        base.Rule(
            "!has(self.url) || !self.url.matches('^https?://[^/?#]+/') || !has(self.http) || "
            "!has(self.http.path)",
            "http.path may not be set when url includes a path",
            _url_path_or_http_path,
        ),
    )

    backend_ref: BackendObjectReference | None = None
    """The service, as a Service or an AgentgatewayBackend."""

    url: URL | None = None
    """The service's address; an HTTP `url` may carry the authorization path, a gRPC one may not.
    `https` turns TLS on."""

    failure_mode: FailureMode | None = None
    """When the service cannot be reached or errs. Default: `FailClosed` (deny)."""

    grpc: ExtAuthGRPC | None = None
    """Use the gRPC protocol."""

    http: ExtAuthHTTP | None = None
    """Use plain HTTP."""

    forward_body: ExtAuthBody | None = None
    """Send the request body too."""


# --------------------------------------------------------------------------------------------
# Rate limits


class LocalRateLimit(base.Model):
    """A token bucket counted by each proxy process (no coordination between replicas), of
    requests or of LLM tokens (charged with the usage each response reports)."""

    __rules__ = (base.exactly_one_of("requests", "tokens"),)

    requests: Annotated[int, pydantic.Field(ge=1)] | None = None
    """Requests allowed per `unit`; more get 429."""

    tokens: Annotated[int, pydantic.Field(ge=1)] | None = None
    """LLM tokens allowed per `unit`: a request passes while tokens remain, and its response's
    reported usage is then charged."""

    unit: Literal["Seconds", "Minutes", "Hours"]
    """The period of the limit. Required."""

    burst: Annotated[int, pydantic.Field(ge=0)] | None = None
    """Extra requests allowed in a short burst above the rate. Default: 0."""


class RateLimitDescriptorEntry(base.Model):
    """One part of a rate-limit descriptor."""

    name: common.TinyString
    """Descriptor key. Required."""

    expression: CELExpression
    """CEL expression for the value, e.g. `source.address`; the descriptor is skipped when it
    has no value. Required."""


class RateLimitDescriptor(base.Model):
    """One rate-limit rule, sent to the rate-limit service."""

    entries: Annotated[list[RateLimitDescriptorEntry], pydantic.Field(min_length=1, max_length=16)]
    """Its entries, 1 to 16. Required."""

    unit: Literal["Requests"] | None = None
    """What is counted: `Requests` (the default)."""


class GlobalRateLimit(base.Model):
    """Limits decided by an Envoy rate-limit service (`envoy.service.ratelimit.v3`), shared by every
    replica."""

    __rules__ = (
        base.Rule(
            "!has(self.url) || self.url.matches('^https?://[^/?#]+$')",
            "url must not include a path",
            lambda s: s.url is None or re.match(r"^https?://[^/?#]+$", s.url) is not None,
        ),
        base.exactly_one_of("backendRef", "url"),
    )

    backend_ref: BackendObjectReference | None = None
    """The service, as a Service or an AgentgatewayBackend."""

    url: URL | None = None
    """The service's address, without a path; `https` turns TLS on."""

    failure_mode: FailureMode | None = None
    """When the service cannot be reached or errs. Default: `FailClosed` (reject)."""

    domain: common.ShortString
    """Domain the service applies its limits under. Required."""

    descriptors: Annotated[list[RateLimitDescriptor], pydantic.Field(min_length=1, max_length=16)]
    """Descriptors sent with each request, 1 to 16. Required."""


class RateLimits(base.Model):
    """Rate limits: local token buckets, a global service, or both."""

    __rules__ = (base.at_least_one_field_set(("local", "global")),)

    local: Annotated[list[LocalRateLimit], pydantic.Field(min_length=1, max_length=16)] | None = None
    """Token buckets in each proxy process, 1 to 16."""

    global_: GlobalRateLimit | None = None
    """A rate-limit service."""


# --------------------------------------------------------------------------------------------
# CSRF and transformations


class CSRF(base.Model):
    """Cross-site request forgery protection: safe methods (GET, HEAD, OPTIONS) and requests
    without `Sec-Fetch-Site` or `Origin` pass; otherwise `Sec-Fetch-Site` (or `Origin` against the
    `Host`) must say same-origin, or the origin must be listed."""

    additional_origins: (
        Annotated[list[common.ShortString], pydantic.Field(min_length=1, max_length=16)] | None
    ) = None
    """Other origins allowed, as `<scheme>://<host>(:<port>)`, 1 to 16."""


_PSEUDO_HEADERS = (":authority", ":method", ":path", ":scheme", ":status")

HeaderName = Annotated[
    str,
    pydantic.StringConstraints(min_length=1, max_length=256, pattern=r"^:?[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$"),
    base.Rule(
        "!self.startsWith(':') || self in [':authority', ':method', ':path', ':scheme', ':status']",
        "pseudo-headers must be one of :authority, :method, :path, :scheme, or :status",
        lambda s: not s.startswith(":") or s in _PSEUDO_HEADERS,
    ),
]
"""A header name, or one of the pseudo-headers `:authority`, `:method`, `:path`, `:scheme`,
`:status`."""


class HeaderTransformation(base.Model):
    """A header and the CEL expression that computes its value."""

    name: HeaderName
    """Header name. Required."""

    value: CELExpression
    """CEL expression for the value, e.g. `request.headers['x-user'] + '-suffix'`. Required."""


class ResponseTransform(base.Model):
    """Header changes computed with CEL (the part a request and a response transform share)."""

    __rules__ = (base.at_least_one_field_set(("set", "add", "remove")),)

    set: (
        Annotated[
            list[HeaderTransformation], pydantic.Field(min_length=1, max_length=16), base.ListMap("name")
        ]
        | None
    ) = None
    """Headers to set (replacing any value), 1 to 16, unique by name."""

    add: (
        Annotated[
            list[HeaderTransformation], pydantic.Field(min_length=1, max_length=16), base.ListMap("name")
        ]
        | None
    ) = None
    """Headers to append, 1 to 16, unique by name."""

    remove: (
        Annotated[list[HeaderName], pydantic.Field(min_length=1, max_length=16), base.ListSet()] | None
    ) = None
    """Header names to remove, 1 to 16."""


class Transform(ResponseTransform):
    """Changes to a request or a response, computed with CEL."""

    __rules__ = (base.at_least_one_field_set(("set", "add", "remove", "body")),)

    body: CELExpression | None = None
    """CEL expression for the new body; strings and bytes are written as they are, other values
    as JSON."""


class Transformation(base.Model):
    """Request and response transformations."""

    __rules__ = (base.at_least_one_field_set(("request", "response")),)

    request: Transform | None = None
    """Changes to the request before it is forwarded."""

    response: Transform | None = None
    """Changes to the response before it is returned (a `body` reads `response.body`)."""


class Traffic(base.Model):
    """How requests are processed."""

    __rules__ = (
        base.Rule(
            "has(self.phase) && self.phase == 'PreRouting' ? "
            + "["
            + ",".join(f"has(self.{n})" for n in _PRE_ROUTING_FORBIDDEN)
            + "]"
            + ".filter(x,x==true).size() == 0 : true",
            "phase PreRouting only supports extAuth, authorization, transformation, jwtAuthentication, "
            "basicAuthentication, apiKeyAuthentication and cors",
            lambda s: s.phase != "PreRouting" or not any(base.present(s, n) for n in _PRE_ROUTING_FORBIDDEN),
        ),
    )

    phase: Literal["PreRouting", "PostRouting"] | None = None
    """When the policy runs. `PostRouting` (the default): after a route is selected, merged by
    precedence. `PreRouting`: before route selection, for every request of the Gateway or
    ListenerSet it targets. The phases do not merge with each other."""

    cors: CORS | None = None
    """Cross-origin resource sharing."""

    header_modifiers: HeaderModifiers | None = None
    """Request and response header changes."""

    host_rewrite: HostnameRewrite | None = None
    """How the `Host` header is set."""

    timeouts: Timeouts | None = None
    """Request timeouts."""

    retry: Retry | None = None
    """Retries."""

    direct_response: DirectResponse | None = None
    """Answer from the gateway instead of a backend."""

    csrf: CSRF | None = None
    """Cross-site request forgery protection."""

    authorization: Authorization | None = None
    """CEL authorization rules."""

    jwt_authentication: JWTAuthentication | None = None
    """JSON Web Token authentication."""

    api_key_authentication: APIKeyAuthentication | None = None
    """API key authentication."""

    basic_authentication: BasicAuthentication | None = None
    """HTTP Basic authentication."""

    ext_auth: ExtAuth | None = None
    """External authorization service."""

    rate_limit: RateLimits | None = None
    """Local and global rate limits."""

    transformation: Transformation | None = None
    """Request and response transformations with CEL."""


# --------------------------------------------------------------------------------------------
# Frontend


class FrontendHTTP(base.Model):
    """Downstream HTTP handling."""

    __rules__ = (base.at_least_one_field_set(("maxBufferSize", "http1MaxHeaders", "http1IdleTimeout")),)

    max_buffer_size: ByteSize | None = None
    """Largest body buffered in memory, for policies that need the whole body. Default: `2Mi`."""

    http1_max_headers: Annotated[int, pydantic.Field(ge=1, le=4096)] | None = None
    """Most headers accepted in an HTTP/1.1 request, 1 to 4096. Default: 100."""

    http1_idle_timeout: (
        Annotated[common.Duration, common.min_duration("1s", "http1IdleTimeout must be at least 1 second")]
        | None
    ) = None
    """Idle time after which a kept-alive connection is closed; at least 1s. Default: 10m."""


class Frontend(base.Model):
    """How incoming connections are handled; merged field by field across policies."""

    __rules__ = (base.at_least_one_field_set(("http",)),)

    http: FrontendHTTP | None = None
    """Downstream HTTP settings. Targets a whole Gateway (or a port), not a listener."""


# --------------------------------------------------------------------------------------------
# Spec


class PolicyStrategy(base.Model):
    """How this policy merges with others."""

    inheritance: Literal["Default", "Override"] | None = None
    """Traffic policies only. `Default` (the default): more specific attachments (routes, rules)
    override this policy's fields. `Override`: this policy's fields win over more specific traffic
    policies, e.g. to keep a Gateway-level setting authoritative."""


def _spec_targets(spec: AgentgatewayPolicySpec, field: str) -> Sequence[Target] | None:
    if field == "targetRefs":
        return spec.target_refs
    return spec.target_selectors


def _per_list(
    rule: str, message: str, check: Callable[[AgentgatewayPolicySpec, Sequence[Target]], bool]
) -> tuple[base.Rule, base.Rule]:
    """One rule for `targetRefs` and the same rule for `targetSelectors`, as agentgateway writes them.

    `check` gets the spec and the (present) list; an absent list passes.
    """

    def make(field: str) -> base.Rule:
        def holds(spec: AgentgatewayPolicySpec) -> bool:
            targets = _spec_targets(spec, field)
            return targets is None or check(spec, targets)

        return base.Rule(rule.format(list=field), message, holds)

    return make("targetRefs"), make("targetSelectors")


def _service_section_is_port(section: str | None) -> bool:
    return section is None or 1 <= int(section) <= 65535


class AgentgatewayPolicySpec(base.Model):
    """Targets, an optional merge strategy, and at least one of traffic, frontend, backend."""

    __rules__ = (
        base.Rule(
            "has(self.traffic) || has(self.frontend) || has(self.backend)",
            "At least one of traffic, frontend, or backend must be provided.",
            lambda s: s.traffic is not None or s.frontend is not None or s.backend is not None,
        ),
        base.Rule(
            "!has(self.strategy) || !has(self.strategy.inheritance) || "
            "(has(self.traffic) && !has(self.frontend) && !has(self.backend))",
            "strategy.inheritance may only be set on traffic policies",
            lambda s: (
                s.strategy is None
                or s.strategy.inheritance is None
                or (s.traffic is not None and s.frontend is None and s.backend is None)
            ),
        ),
        base.Rule(
            "!has(self.backend) || !has(self.backend.ai) || "
            "((!has(self.targetRefs) || !self.targetRefs.exists(t, t.kind == 'Service')) && "
            "(!has(self.targetSelectors) || !self.targetSelectors.exists(t, t.kind == 'Service')))",
            "backend.ai may not be used with a Service target",
            lambda s: (
                s.backend is None
                or s.backend.ai is None
                or not any(t.kind == "Service" for t in [*(s.target_refs or ()), *(s.target_selectors or ())])
            ),
        ),
        *_per_list(
            "has(self.frontend) && has(self.{list}) ? self.{list}.all(t, t.kind == 'Gateway') : true",
            "the 'frontend' field can only target a Gateway",
            lambda s, ts: s.frontend is None or all(t.kind == "Gateway" for t in ts),
        ),
        *_per_list(
            "has(self.frontend) && has(self.frontend.http) && has(self.{list}) ? "
            "self.{list}.all(t, !has(t.sectionName)) : true",
            "frontend http policies may only target a Gateway or port, not a listener (sectionName)",
            lambda s, ts: (
                s.frontend is None or s.frontend.http is None or all(t.section_name is None for t in ts)
            ),
        ),
        *_per_list(
            "has(self.{list}) && self.{list}.exists(t, has(t.port)) ? "
            "(has(self.frontend) && !has(self.traffic) && !has(self.backend)) : true",
            "port may only be set on frontend-only policies (not traffic or backend)",
            lambda s, ts: (
                not any(t.port is not None for t in ts)
                or (s.frontend is not None and s.traffic is None and s.backend is None)
            ),
        ),
        *_per_list(
            "has(self.traffic) && has(self.{list}) ? self.{list}.all(t, t.kind in "
            "['Gateway', 'HTTPRoute', 'GRPCRoute', 'ListenerSet', 'InferencePool']) : true",
            "the 'traffic' field can only target a Gateway, ListenerSet, GRPCRoute, HTTPRoute, "
            "or InferencePool",
            lambda s, ts: s.traffic is None or all(t.kind in TRAFFIC_TARGET_KINDS for t in ts),
        ),
        *_per_list(
            "has(self.{list}) && has(self.traffic) && has(self.traffic.phase) && "
            "self.traffic.phase == 'PreRouting' ? "
            "self.{list}.all(t, t.kind in ['Gateway', 'ListenerSet']) : true",
            "the 'traffic.phase=PreRouting' field can only target a Gateway or ListenerSet",
            lambda s, ts: (
                s.traffic is None
                or s.traffic.phase != "PreRouting"
                or all(t.kind in PRE_ROUTING_TARGET_KINDS for t in ts)
            ),
        ),
        *_per_list(
            "!has(self.{list}) || self.{list}.all(t, t.kind != 'Service' || !has(t.sectionName) || "
            "(int(t.sectionName) >= 1 && int(t.sectionName) <= 65535))",
            "Service sectionName must be a numeric port from 1 to 65535",
            lambda s, ts: all(t.kind != "Service" or _service_section_is_port(t.section_name) for t in ts),
        ),
        base.exactly_one_of("targetRefs", "targetSelectors"),
    )

    target_refs: (
        Annotated[
            list[LocalPolicyTargetReferenceWithSectionName],
            pydantic.Field(min_length=1, max_length=16),
            base.ATOMIC,
            base.Rules(_KINDS_RULE, _ONE_KIND_RULE),
        ]
        | None
    ) = None
    """Targets by name, 1 to 16, all of one kind and in the policy's namespace."""

    target_selectors: (
        Annotated[
            list[LocalPolicyTargetSelectorWithSectionName],
            pydantic.Field(min_length=1, max_length=16),
            base.Rules(_KINDS_RULE, _ONE_KIND_RULE),
        ]
        | None
    ) = None
    """Targets by labels, 1 to 16 selectors, all of one kind. Prefer `targetRefs` when
    reconciliation latency matters."""

    strategy: PolicyStrategy | None = None
    """Merge strategy for the policy as a whole."""

    frontend: Frontend | None = None
    """Downstream connection settings; targets Gateways only."""

    traffic: Traffic | None = None
    """Request processing."""

    backend: backendpolicy.BackendFull | None = None
    """Connection settings for the backends reached through the targets."""


# --------------------------------------------------------------------------------------------
# Status (Gateway API PolicyStatus)


class ParentReference(base.Model):
    """A Gateway API `ParentReference`: the ancestor a status entry is about."""

    group: common.Group = "gateway.networking.k8s.io"
    """API group. Default: `gateway.networking.k8s.io`."""

    kind: common.Kind = "Gateway"
    """Kind. Default: `Gateway`."""

    namespace: common.Namespace | None = None
    """Namespace. Default: the policy's namespace."""

    name: common.ObjectName
    """Name. Required."""

    section_name: common.SectionName | None = None
    """Listener or other section."""

    port: common.Port | None = None
    """Port of the parent."""


ControllerName = Annotated[
    str,
    pydantic.StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$",
    ),
]


class PolicyAncestorStatus(base.Model):
    """How the policy affects one ancestor (a Gateway, usually)."""

    ancestor_ref: ParentReference
    """The ancestor. Required."""

    controller_name: ControllerName
    """The controller that wrote this entry, `agentgateway.dev/agentgateway`. Required."""

    conditions: Annotated[
        list[common.Condition], pydantic.Field(min_length=1, max_length=8), base.ListMap("type")
    ]
    """`Accepted` (reasons Valid, PartiallyValid / Invalid, Pending) and `Attached` (reasons Attached,
    Merged / Pending, Overridden). Required."""


class PolicyStatus(base.Model):
    """Status per ancestor, written by the controllers that handle the policy."""

    ancestors: Annotated[list[PolicyAncestorStatus], pydantic.Field(max_length=16), base.ATOMIC]
    """At most 16 entries. Required (may be empty)."""


class AgentgatewayPolicy(common.Resource):
    """Traffic, frontend and backend policies attached to Gateways, routes, Services and backends."""

    __crd__ = base.CRDInfo(
        plural="agentgatewaypolicies",
        singular="agentgatewaypolicy",
        short_names=("agpol",),
        printer_columns=(
            base.PrinterColumn(
                "Accepted",
                ".status.ancestors[*].conditions[?(@.type=='Accepted')].status",
                description="Agentgateway policy acceptance status",
            ),
            base.PrinterColumn(
                "Attached",
                ".status.ancestors[*].conditions[?(@.type=='Attached')].status",
                description="Agentgateway policy attachment status",
            ),
            base.PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
        labels=(
            ("app", "agentgateway"),
            ("app.kubernetes.io/name", "agentgateway"),
            ("gateway.networking.k8s.io/policy", "Direct"),
        ),
    )

    kind: Literal["AgentgatewayPolicy"] = "AgentgatewayPolicy"
    spec: AgentgatewayPolicySpec
    """Desired policy configuration."""

    status: PolicyStatus | None = None
    """Current policy status."""
