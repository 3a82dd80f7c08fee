"""The standalone YAML file format: validate it, then lower it to xDS resources.

In: the text of an agentgateway-format file (`config`, `binds` -> `listeners` -> `routes` ->
`backends`, route `policies`, top-level `backends`). Out: the validated `File` model (`load`)
and the `resource_pb2.Resource` messages it lowers to (`lower`). Both halves read this format:
the proxy (dataplane.config.local adds its startup settings) and the controller's
`--from-file` mode, which serves the file's resources over xDS. It lives in `api` because it
is a contract, like the CRD models.

Every field of the file is either implemented or rejected: pydantic models forbid unknown keys,
and agentgateway fields agentgw does not implement yet are declared as `Unsupported` so the
error says so. Errors name the field path, e.g.
`binds[0].listeners[0].routes[2].matches[0].path.regex: invalid regular expression ...`.
`$VAR` and `${VAR}` in string values resolve from the environment before validation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
import yaml
from google.protobuf import duration_pb2

from api import durations, errors
from api import standalone_security as security
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.standalone_types import (
    Duration,
    HeaderName,
    HeaderValue,
    Hostname,
    HostPort,
    Model,
    Regex,
    Unsupported,
    split_host_port,
)
from api.standalone_types import absolute as _absolute
from api.standalone_types import exactly_one as _exactly_one

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: ~2x faster on a 10,000-route file."""

DEFAULT_MAX_BUFFER_SIZE = 2 * 1024 * 1024
"""agentgateway's `frontendPolicies.http.maxBufferSize` default."""

DEFAULT_GATEWAY = "default"
"""Gateway name in resources when the file's `config.gateway` is not set."""

# --------------------------------------------------------------------------------------------
# Matches


class PathMatch(Model):
    exact: str | None = None
    path_prefix: str | None = pydantic.Field(None, alias="pathPrefix")
    regex: Regex | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> PathMatch:
        _exactly_one(self, ("exact", "path_prefix", "regex"))
        _absolute(self.exact, self.path_prefix)
        return self


class StringMatch(Model):
    exact: str | None = None
    regex: Regex | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> StringMatch:
        _exactly_one(self, ("exact", "regex"))
        return self


class HeaderMatch(Model):
    name: str
    value: StringMatch


class QueryMatch(Model):
    name: str
    value: StringMatch


_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


class RouteMatch(Model):
    path: PathMatch = PathMatch(path_prefix="/")
    method: str | None = None
    headers: list[HeaderMatch] = []
    query: list[QueryMatch] = []

    @pydantic.field_validator("method")
    @classmethod
    def _method(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in _METHODS:
            raise ValueError(f"unknown HTTP method {value!r}")
        return value.upper() if value else value


# --------------------------------------------------------------------------------------------
# Policies


class HeaderModifier(Model):
    add: dict[HeaderName, HeaderValue] = {}
    set: dict[HeaderName, HeaderValue] = {}
    remove: list[HeaderName] = []


class AuthorityRewrite(Model):
    full: str | None = None
    host: str | None = None
    port: Annotated[int, pydantic.Field(ge=1, le=65535)] | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> AuthorityRewrite:
        _exactly_one(self, ("full", "host", "port"))
        return self


class PathRewrite(Model):
    full: str | None = None
    prefix: str | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> PathRewrite:
        _exactly_one(self, ("full", "prefix"))
        _absolute(self.full, self.prefix)
        return self


class UrlRewrite(Model):
    authority: AuthorityRewrite | str | None = None
    path: PathRewrite | None = None

    @pydantic.field_validator("authority")
    @classmethod
    def _authority(cls, value: AuthorityRewrite | str | None) -> AuthorityRewrite | str | None:
        if isinstance(value, str) and value not in ("auto", "none"):
            raise ValueError("authority must be {full|host|port: ...}, 'auto' or 'none'")
        return value


_REDIRECT_CODES = {301, 302, 303, 307, 308}


class RequestRedirect(Model):
    scheme: str | None = None
    authority: AuthorityRewrite | str | None = None
    path: PathRewrite | None = None
    status: int | None = None

    @pydantic.field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and value not in ("http", "https"):
            raise ValueError("scheme must be 'http' or 'https'")
        return value

    @pydantic.field_validator("status")
    @classmethod
    def _status(cls, value: int | None) -> int | None:
        if value is not None and value not in _REDIRECT_CODES:
            raise ValueError(f"redirect status must be one of {sorted(_REDIRECT_CODES)}")
        return value

    @pydantic.field_validator("authority")
    @classmethod
    def _authority(cls, value: AuthorityRewrite | str | None) -> AuthorityRewrite | str | None:
        if isinstance(value, str) and value != "none":
            raise ValueError("authority must be {full|host|port: ...} or 'none'")
        return value


class DirectResponse(Model):
    status: Annotated[int, pydantic.Field(ge=100, le=599)]
    body: str | list[Annotated[int, pydantic.Field(ge=0, le=255)]] = ""
    body_expression: Unsupported = pydantic.Field(None, alias="bodyExpression")
    headers: Unsupported = None


class SimpleBackend(Model):
    host: HostPort | None = None
    backend: str | None = None
    service: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> SimpleBackend:
        _exactly_one(self, ("host", "backend"))
        return self


class RequestMirror(Model):
    backend: SimpleBackend
    percentage: Annotated[float, pydantic.Field(ge=0.0, le=1.0)]


class TimeoutPolicy(Model):
    request_timeout: Duration | None = pydantic.Field(None, alias="requestTimeout")
    backend_request_timeout: Duration | None = pydantic.Field(None, alias="backendRequestTimeout")


class RetryPolicy(Model):
    attempts: Annotated[int, pydantic.Field(ge=1, le=255)] = 1
    backoff: Duration | None = None
    codes: list[Annotated[int, pydantic.Field(ge=100, le=599)]]
    precondition: Unsupported = None
    condition: Unsupported = None


class Cors(Model):
    allow_credentials: bool = pydantic.Field(False, alias="allowCredentials")
    allow_headers: list[str] = pydantic.Field([], alias="allowHeaders")
    allow_methods: list[str] = pydantic.Field([], alias="allowMethods")
    allow_origins: list[str] = pydantic.Field([], alias="allowOrigins")
    expose_headers: list[str] = pydantic.Field([], alias="exposeHeaders")
    max_age: Duration | None = pydantic.Field(None, alias="maxAge")


class RoutePolicies(Model):
    """agentgateway's `FilterOrPolicy`: the policies a route may carry."""

    request_header_modifier: HeaderModifier | None = pydantic.Field(None, alias="requestHeaderModifier")
    response_header_modifier: HeaderModifier | None = pydantic.Field(None, alias="responseHeaderModifier")
    request_redirect: RequestRedirect | None = pydantic.Field(None, alias="requestRedirect")
    url_rewrite: UrlRewrite | None = pydantic.Field(None, alias="urlRewrite")
    request_mirror: RequestMirror | list[RequestMirror] | None = pydantic.Field(None, alias="requestMirror")
    direct_response: DirectResponse | None = pydantic.Field(None, alias="directResponse")
    timeout: TimeoutPolicy | None = None
    retry: RetryPolicy | None = None
    cors: Cors | None = None
    # agentgateway policies that later issues implement:
    mcp_authorization: Unsupported = pydantic.Field(None, alias="mcpAuthorization")
    mcp_guardrails: Unsupported = pydantic.Field(None, alias="mcpGuardrails")
    authorization: security.Authorization | None = None
    mcp_authentication: Unsupported = pydantic.Field(None, alias="mcpAuthentication")
    a2a: Unsupported = None
    ai: Unsupported = None
    backend_tls: Unsupported = pydantic.Field(None, alias="backendTLS")
    backend_tunnel: Unsupported = pydantic.Field(None, alias="backendTunnel")
    backend_auth: Unsupported = pydantic.Field(None, alias="backendAuth")
    local_rate_limit: list[security.RateLimitSpec] | None = pydantic.Field(None, alias="localRateLimit")
    remote_rate_limit: security.RemoteRateLimit | None = pydantic.Field(None, alias="remoteRateLimit")
    jwt_auth: security.JwtAuth | None = pydantic.Field(None, alias="jwtAuth")
    oidc: Unsupported = None
    basic_auth: security.BasicAuth | None = pydantic.Field(None, alias="basicAuth")
    api_key: security.ApiKeyAuth | None = pydantic.Field(None, alias="apiKey")
    ext_authz: security.ExtAuthz | None = pydantic.Field(None, alias="extAuthz")
    ext_proc: Unsupported = pydantic.Field(None, alias="extProc")
    transformations: security.Transformations | None = None
    csrf: security.Csrf | None = None
    buffer: Unsupported = None
    delay: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _compatible(self) -> RoutePolicies:
        if self.request_redirect is not None and self.url_rewrite is not None:
            raise ValueError("requestRedirect and urlRewrite cannot be combined on one route")
        return self


HTTP_VERSIONS = {
    "1.1": pb.HTTP_VERSION_HTTP1,
    "HTTP/1.1": pb.HTTP_VERSION_HTTP1,
    "2": pb.HTTP_VERSION_HTTP2,
    "2.0": pb.HTTP_VERSION_HTTP2,
    "HTTP/2": pb.HTTP_VERSION_HTTP2,
    "HTTP/2.0": pb.HTTP_VERSION_HTTP2,
}
"""`policies.http.version` spellings (agentgateway's) and what they lower to."""


class BackendHTTP(Model):
    version: str | None = None
    """The HTTP version spoken to the backend: "1.1" (default) or "2" (h2c, or ALPN h2 over TLS)."""
    request_timeout: Duration | None = pydantic.Field(None, alias="requestTimeout")

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # YAML reads 2 and 1.1 as numbers
        if not isinstance(value, str) or value.upper() not in HTTP_VERSIONS:
            raise ValueError(f"unknown HTTP version {value!r}: use one of {', '.join(HTTP_VERSIONS)}")
        return value.upper()


class BackendTCP(Model):
    keepalives: Unsupported = None
    connect_timeout: Duration | None = pydantic.Field(None, alias="connectTimeout")


class BackendPolicies(Model):
    request_header_modifier: HeaderModifier | None = pydantic.Field(None, alias="requestHeaderModifier")
    response_header_modifier: HeaderModifier | None = pydantic.Field(None, alias="responseHeaderModifier")
    request_redirect: RequestRedirect | None = pydantic.Field(None, alias="requestRedirect")
    http: BackendHTTP | None = None
    tcp: BackendTCP | None = None
    transformations: Unsupported = None
    backend_tls: security.BackendTls | None = pydantic.Field(None, alias="backendTLS")
    backend_auth: security.BackendAuth | None = pydantic.Field(None, alias="backendAuth")
    backend_tunnel: Unsupported = pydantic.Field(None, alias="backendTunnel")
    health: Unsupported = None
    mcp_authorization: Unsupported = pydantic.Field(None, alias="mcpAuthorization")
    mcp_authentication: Unsupported = pydantic.Field(None, alias="mcpAuthentication")
    a2a: Unsupported = None
    ai: Unsupported = None


# --------------------------------------------------------------------------------------------
# Structure


class RouteBackend(Model):
    host: HostPort | None = None
    backend: str | None = None
    weight: Annotated[int, pydantic.Field(ge=0)] = 1
    policies: BackendPolicies | None = None
    service: Unsupported = None
    internal: Unsupported = None
    dynamic: Unsupported = None
    mcp: Unsupported = None
    ai: Unsupported = None
    aws: Unsupported = None
    route_group: Unsupported = pydantic.Field(None, alias="routeGroup")

    @pydantic.model_validator(mode="after")
    def _one(self) -> RouteBackend:
        _exactly_one(self, ("host", "backend"))
        return self


class Route(Model):
    name: str | None = None
    namespace: str | None = None
    rule_name: str | None = pydantic.Field(None, alias="ruleName")
    hostnames: list[Hostname] = []
    matches: list[RouteMatch] = [RouteMatch()]
    policies: RoutePolicies | None = None
    backends: list[RouteBackend] = []


class ListenerTarget(Model):
    gateway_name: str = pydantic.Field(alias="gatewayName")
    gateway_namespace: str = pydantic.Field(alias="gatewayNamespace")
    listener_name: str | None = pydantic.Field(None, alias="listenerName")
    port: Annotated[int, pydantic.Field(ge=1, le=65535)] | None = None


class RouteTarget(Model):
    name: str
    namespace: str
    rule_name: str | None = pydantic.Field(None, alias="ruleName")
    kind: str | None = None


class BackendTargetRef(Model):
    name: str
    namespace: str
    section: Unsupported = None


class BackendTarget(Model):
    backend: BackendTargetRef | None = None
    service: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> BackendTarget:
        if self.backend is None:
            raise ValueError("backend is required (service targets are not supported by agentgw yet)")
        return self


class PolicyTarget(Model):
    gateway: ListenerTarget | None = None
    route: RouteTarget | None = None
    backend: BackendTarget | None = None
    listener_set: Unsupported = pydantic.Field(None, alias="listenerSet")

    @pydantic.model_validator(mode="after")
    def _one(self) -> PolicyTarget:
        _exactly_one(self, ("gateway", "route", "backend"))
        return self


class LocalPolicy(Model):
    """A top-level policy attached to a gateway, listener, route or backend by name."""

    name: Annotated[str, pydantic.Field(min_length=1)]
    target: PolicyTarget
    phase: Literal["route", "gateway"] = "route"
    policy: RoutePolicies

    @pydantic.field_validator("phase")
    @classmethod
    def _phase(cls, value: str) -> str:
        if value != "route":
            raise ValueError("phase 'gateway' (pre-routing policies) is not supported by agentgw yet")
        return value


class GatewayPolicies(Model):
    cors: Cors | None = None
    oidc: Unsupported = None
    jwt_auth: security.JwtAuth | None = pydantic.Field(None, alias="jwtAuth")
    authorization: security.Authorization | None = None
    ext_authz: security.ExtAuthz | None = pydantic.Field(None, alias="extAuthz")
    ext_proc: Unsupported = pydantic.Field(None, alias="extProc")
    transformations: security.Transformations | None = None
    basic_auth: security.BasicAuth | None = pydantic.Field(None, alias="basicAuth")
    api_key: security.ApiKeyAuth | None = pydantic.Field(None, alias="apiKey")


class Listener(Model):
    name: str | None = None
    namespace: str | None = None
    hostname: Hostname | None = None
    protocol: str = "HTTP"
    tls: security.ListenerTls | None = None
    routes: list[Route] | None = None
    tcp_routes: Unsupported = pydantic.Field(None, alias="tcpRoutes")
    policies: GatewayPolicies | None = None

    @pydantic.field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if value not in ("HTTP", "HTTPS"):
            raise ValueError(f"protocol {value!r} is not supported by agentgw yet (supported: HTTP, HTTPS)")
        return value

    @pydantic.model_validator(mode="after")
    def _tls(self) -> Listener:
        if self.protocol == "HTTPS" and self.tls is None:
            raise ValueError("tls (cert and key) is required when protocol is HTTPS")
        if self.protocol == "HTTP" and self.tls is not None:
            raise ValueError("tls is only used with protocol HTTPS")
        return self


class Bind(Model):
    port: Annotated[int, pydantic.Field(ge=1, le=65535)]
    listeners: list[Listener]
    tunnel_protocol: Unsupported = pydantic.Field(None, alias="tunnelProtocol")
    mode: Unsupported = None


class NamedBackend(Model):
    name: str
    host: HostPort | None = None
    policies: BackendPolicies | None = None
    internal: Unsupported = None
    mcp: Unsupported = None
    ai: Unsupported = None
    aws: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _host(self) -> NamedBackend:
        if self.host is None:
            raise ValueError("host is required (the only backend kind agentgw supports yet)")
        return self


class FrontendHTTP(Model):
    max_buffer_size: Annotated[int, pydantic.Field(ge=0)] = pydantic.Field(
        DEFAULT_MAX_BUFFER_SIZE, alias="maxBufferSize"
    )
    http1_max_headers: Annotated[int, pydantic.Field(ge=1)] | None = pydantic.Field(
        None, alias="http1MaxHeaders"
    )
    http1_idle_timeout: Duration | None = pydantic.Field(None, alias="http1IdleTimeout")
    http1_header_case: Unsupported = pydantic.Field(None, alias="http1HeaderCase")
    max_connection_duration: Unsupported = pydantic.Field(None, alias="maxConnectionDuration")


class FrontendPolicies(Model):
    http: FrontendHTTP | None = None
    tls: Unsupported = None
    tcp: Unsupported = None
    network_authorization: Unsupported = pydantic.Field(None, alias="networkAuthorization")
    network_ext_authz: Unsupported = pydantic.Field(None, alias="networkExtAuthz")
    proxy: Unsupported = None
    proxy_protocol: Unsupported = pydantic.Field(None, alias="proxyProtocol")
    connect: Unsupported = None
    access_log: Unsupported = pydantic.Field(None, alias="accessLog")
    tracing: Unsupported = None


class BackendDefaults(Model):
    keepalives: Unsupported = None
    connect_timeout: Duration = pydantic.Field("10s", alias="connectTimeout")
    pool_idle_timeout: Duration = pydantic.Field("1m30s", alias="poolIdleTimeout")
    pool_max_size: Annotated[int, pydantic.Field(ge=0)] | None = pydantic.Field(None, alias="poolMaxSize")


class Logging(Model):
    level: str | None = None
    format: str | None = None
    filter: Unsupported = None
    fields: Unsupported = None
    database: Unsupported = None

    @pydantic.field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and value not in ("json", "text"):
            raise ValueError("format must be 'json' or 'text'")
        return value


class RawConfig(Model):
    admin_addr: str | None = pydantic.Field(None, alias="adminAddr")
    stats_addr: str | None = pydantic.Field(None, alias="statsAddr")
    readiness_addr: str | None = pydantic.Field(None, alias="readinessAddr")
    connection_termination_deadline: Duration | None = pydantic.Field(
        None, alias="connectionTerminationDeadline"
    )
    connection_min_termination_deadline: Duration | None = pydantic.Field(
        None, alias="connectionMinTerminationDeadline"
    )
    namespace: str | None = None
    gateway: str | None = None
    logging: Logging | None = None
    backend: BackendDefaults | None = None
    xds_address: str | None = pydantic.Field(None, alias="xdsAddress")
    worker_threads: Unsupported = pydantic.Field(None, alias="workerThreads")
    tracing: Unsupported = None
    metrics: Unsupported = None
    session: Unsupported = None
    mcp: Unsupported = None
    dns: Unsupported = None
    enable_ipv6: Unsupported = pydantic.Field(None, alias="enableIpv6")
    hbone: Unsupported = None

    @pydantic.field_validator("admin_addr", "stats_addr", "readiness_addr", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        """YAML reads a bare `off` as false; agentgateway's files write it unquoted."""
        return "off" if value is False else value

    @pydantic.field_validator("admin_addr", "stats_addr", "readiness_addr")
    @classmethod
    def _addr(cls, value: str | None) -> str | None:
        if value is not None and value != "off":
            split_host_port(value)
        return value


class File(Model):
    """The top level of an agentgateway standalone file."""

    config: RawConfig | None = None
    binds: list[Bind] = []
    frontend_policies: FrontendPolicies | None = pydantic.Field(None, alias="frontendPolicies")
    backends: list[NamedBackend] = []
    policies: list[LocalPolicy] = []
    workloads: Unsupported = None
    services: Unsupported = None
    route_groups: Unsupported = pydantic.Field(None, alias="routeGroups")
    gateways: Unsupported = None
    routes: Unsupported = None
    tcp_routes: Unsupported = pydantic.Field(None, alias="tcpRoutes")
    llm: Unsupported = None
    mcp: Unsupported = None
    ui: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _unique(self) -> File:
        ports = [b.port for b in self.binds]
        dupes = sorted({p for p in ports if ports.count(p) > 1})
        if dupes:
            raise ValueError(f"binds: port {dupes[0]} is bound twice")
        names = [b.name for b in self.backends]
        dupes_n = sorted({n for n in names if names.count(n) > 1})
        if dupes_n:
            raise ValueError(f"backends: name {dupes_n[0]!r} is defined twice")
        known = set(names)
        for bi, bind in enumerate(self.binds):
            listener_names = [lis.name or f"listener{li}" for li, lis in enumerate(bind.listeners)]
            for li, name in enumerate(listener_names):
                if listener_names.index(name) != li:
                    raise ValueError(
                        f"binds[{bi}].listeners[{li}].name: {name!r} is used twice on port {bind.port}"
                    )
            for li, listener in enumerate(bind.listeners):
                for ri, route in enumerate(listener.routes or []):
                    where = f"binds[{bi}].listeners[{li}].routes[{ri}]"
                    for bei, be in enumerate(route.backends):
                        if be.backend is not None and be.backend not in known:
                            raise ValueError(
                                f"{where}.backends[{bei}].backend: "
                                f"no backend named {be.backend!r} in top-level backends"
                            )
                    mirror = route.policies.request_mirror if route.policies else None
                    mirrors = mirror if isinstance(mirror, list) else [mirror] if mirror else []
                    for mi, m in enumerate(mirrors):
                        if m.backend.backend is not None and m.backend.backend not in known:
                            index = f"[{mi}]" if isinstance(mirror, list) else ""
                            raise ValueError(
                                f"{where}.policies.requestMirror{index}.backend.backend: "
                                f"no backend named {m.backend.backend!r} in top-level backends"
                            )
        return self


# --------------------------------------------------------------------------------------------
# Loading


_ENV_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def substitute_env(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `$VAR`/`${VAR}` in every string of a parsed YAML tree; `$$` is a literal `$`."""
    if isinstance(node, dict):
        return {k: substitute_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in env:
            missing.append(name)
            return m.group(0)
        return env[name]

    parts = node.split("$$")
    result = "$".join(_ENV_REF.sub(repl, p) for p in parts)
    if missing:
        raise errors.ConfigError([f"{path}: environment variable {missing[0]} is not set"])
    return result


def load(text: str, env: Mapping[str, str] | None = None) -> File:
    """Validate file text; raise `errors.ConfigError` naming every bad field."""
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        raise errors.ConfigError([f"invalid YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.ConfigError(["the file must be a mapping with keys such as config, binds, backends"])
    raw = substitute_env(raw, os.environ if env is None else env)
    try:
        model = File.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise errors.ConfigError([_describe(e) for e in exc.errors()]) from exc
    return model


def _describe(error: Any) -> str:
    loc = _format_loc(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


# --------------------------------------------------------------------------------------------
# Lowering to resources


def _duration(text: str | None) -> duration_pb2.Duration | None:
    if text is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(durations.parse(text) * 1e9))
    return d


def _header_modifier(m: HeaderModifier) -> pb.HeaderModifier:
    return pb.HeaderModifier(
        add=[pb.HeaderPair(name=k, value=v) for k, v in m.add.items()],
        set=[pb.HeaderPair(name=k, value=v) for k, v in m.set.items()],
        remove=list(m.remove),
    )


def _authority(a: AuthorityRewrite | str | None) -> pb.AuthorityRewrite | None:
    if a is None or a == "none":
        return None
    if a == "auto":
        return pb.AuthorityRewrite(auto=True)
    assert isinstance(a, AuthorityRewrite)
    if a.full is not None:
        return pb.AuthorityRewrite(full=a.full)
    if a.host is not None:
        return pb.AuthorityRewrite(host=a.host)
    return pb.AuthorityRewrite(port=a.port or 0)


def _path_rewrite(p: PathRewrite | None) -> pb.PathRewrite | None:
    if p is None:
        return None
    return pb.PathRewrite(full=p.full) if p.full is not None else pb.PathRewrite(prefix=p.prefix or "/")


def _redirect(r: RequestRedirect) -> pb.RequestRedirect:
    return pb.RequestRedirect(
        scheme=r.scheme or "",
        authority=_authority(r.authority),
        path=_path_rewrite(r.path),
        status=r.status or 0,
    )


def _backend_ref(host: str | None, backend: str | None) -> pb.BackendRef:
    if host is not None:
        h, port = split_host_port(host)
        return pb.BackendRef(host=pb.StaticBackend(host=h, port=port))
    return pb.BackendRef(backend_key=f"backend/{backend}")


def _traffic_policy(p: RoutePolicies | None, where: str = "") -> pb.TrafficPolicy | None:
    if p is None:
        return None
    out = pb.TrafficPolicy()
    security.lower_security(p, out, where)
    if p.request_header_modifier:
        out.request_header_modifier.CopyFrom(_header_modifier(p.request_header_modifier))
    if p.response_header_modifier:
        out.response_header_modifier.CopyFrom(_header_modifier(p.response_header_modifier))
    if p.request_redirect:
        out.request_redirect.CopyFrom(_redirect(p.request_redirect))
    if p.url_rewrite:
        out.url_rewrite.CopyFrom(
            pb.UrlRewrite(
                authority=_authority(p.url_rewrite.authority), path=_path_rewrite(p.url_rewrite.path)
            )
        )
    mirrors = (
        p.request_mirror
        if isinstance(p.request_mirror, list)
        else [p.request_mirror]
        if p.request_mirror
        else []
    )
    for m in mirrors:
        out.request_mirrors.append(
            pb.RequestMirror(backend=_backend_ref(m.backend.host, m.backend.backend), percentage=m.percentage)
        )
    if p.direct_response:
        body = p.direct_response.body
        out.direct_response.CopyFrom(
            pb.DirectResponse(
                status=p.direct_response.status, body=body.encode() if isinstance(body, str) else bytes(body)
            )
        )
    if p.timeout:
        out.timeout.CopyFrom(
            pb.Timeout(
                request_timeout=_duration(p.timeout.request_timeout),
                backend_request_timeout=_duration(p.timeout.backend_request_timeout),
            )
        )
    if p.retry:
        out.retry.CopyFrom(
            pb.Retry(attempts=p.retry.attempts, backoff=_duration(p.retry.backoff), codes=p.retry.codes)
        )
    if p.cors:
        out.cors.CopyFrom(_cors(p.cors))
    return out


def _cors(c: Cors) -> pb.Cors:
    return pb.Cors(
        allow_credentials=c.allow_credentials,
        allow_headers=c.allow_headers,
        allow_methods=c.allow_methods,
        allow_origins=c.allow_origins,
        expose_headers=c.expose_headers,
        max_age=_duration(c.max_age),
    )


def _backend_policy(p: BackendPolicies | None) -> pb.BackendPolicy | None:
    if p is None:
        return None
    out = pb.BackendPolicy()
    if p.request_header_modifier:
        out.request_header_modifier.CopyFrom(_header_modifier(p.request_header_modifier))
    if p.response_header_modifier:
        out.response_header_modifier.CopyFrom(_header_modifier(p.response_header_modifier))
    if p.request_redirect:
        out.request_redirect.CopyFrom(_redirect(p.request_redirect))
    if p.http and p.http.request_timeout:
        out.request_timeout.FromNanoseconds(round(durations.parse(p.http.request_timeout) * 1e9))
    if p.http and p.http.version:
        out.http_version = HTTP_VERSIONS[p.http.version]
    if p.tcp and p.tcp.connect_timeout:
        out.connect_timeout.FromNanoseconds(round(durations.parse(p.tcp.connect_timeout) * 1e9))
    if p.backend_tls:
        out.tls.CopyFrom(security.backend_tls(p.backend_tls))
    if p.backend_auth and p.backend_auth.passthrough is not None:
        out.auth_passthrough = True
    return out


def _match(m: RouteMatch) -> pb.RouteMatch:
    path = m.path
    if path.exact is not None:
        pm = pb.PathMatch(exact=path.exact)
    elif path.regex is not None:
        pm = pb.PathMatch(regex=path.regex)
    else:
        pm = pb.PathMatch(prefix=path.path_prefix or "/")

    def string_match(s: StringMatch) -> pb.StringMatch:
        return pb.StringMatch(exact=s.exact) if s.exact is not None else pb.StringMatch(regex=s.regex or "")

    return pb.RouteMatch(
        path=pm,
        method=m.method or "",
        headers=[pb.HeaderMatch(name=h.name.lower(), value=string_match(h.value)) for h in m.headers],
        query=[pb.QueryMatch(name=q.name, value=string_match(q.value)) for q in m.query],
    )


def lower(model: File) -> list[pb.Resource]:
    """Lower a validated file to resources: one per bind, listener, route and named backend."""
    gateway = (model.config.gateway if model.config else None) or DEFAULT_GATEWAY
    out: list[pb.Resource] = []
    for backend in model.backends:
        assert backend.host is not None
        host, port = split_host_port(backend.host)
        out.append(
            pb.Resource(
                backend=pb.Backend(
                    key=f"backend/{backend.name}",
                    name=backend.name,
                    static=pb.StaticBackend(host=host, port=port),
                    policies=_backend_policy(backend.policies),
                )
            )
        )
    order = 0
    for bi, bind in enumerate(model.binds):
        bind_key = f"bind/{bind.port}"
        out.append(pb.Resource(bind=pb.Bind(key=bind_key, port=bind.port)))
        for li, listener in enumerate(bind.listeners):
            lname = listener.name or f"listener{li}"
            listener_key = f"{bind_key}/{lname}"
            lpol = None
            if listener.policies:
                lpol = pb.TrafficPolicy()
                if listener.policies.cors:
                    lpol.cors.CopyFrom(_cors(listener.policies.cors))
                security.lower_security(listener.policies, lpol, f"binds[{bi}].listeners[{li}].policies")
            out.append(
                pb.Resource(
                    listener=pb.Listener(
                        key=listener_key,
                        bind_key=bind_key,
                        name=lname,
                        gateway_name=gateway,
                        hostname=listener.hostname or "",
                        protocol=pb.HTTPS if listener.protocol == "HTTPS" else pb.HTTP,
                        policies=lpol,
                        tls=security.listener_tls(listener.tls) if listener.tls else None,
                    )
                )
            )
            for ri, route in enumerate(listener.routes or []):
                rname = route.name or f"route{ri}"
                out.append(
                    pb.Resource(
                        route=pb.Route(
                            key=f"{listener_key}/{rname}/{ri}",
                            listener_key=listener_key,
                            name=rname,
                            namespace=route.namespace or "",
                            rule_name=route.rule_name or "",
                            hostnames=route.hostnames,
                            matches=[_match(m) for m in route.matches],
                            backends=[
                                pb.RouteBackend(
                                    ref=_backend_ref(b.host, b.backend),
                                    weight=b.weight,
                                    policies=_backend_policy(b.policies),
                                )
                                for b in route.backends
                            ],
                            policies=_traffic_policy(
                                route.policies, f"binds[{bi}].listeners[{li}].routes[{ri}].policies"
                            ),
                            # File order stands in for creation time: earlier routes win ties.
                            creation_unix_seconds=order,
                            rule_index=0,
                        )
                    )
                )
                order += 1
    out.extend(_policies(model, gateway))
    return out


def _policies(model: File, gateway: str) -> list[pb.Resource]:
    """Top-level `policies`: one Policy resource per target they resolve to."""
    out: list[pb.Resource] = []
    names = [p.name for p in model.policies]
    for pi, policy in enumerate(model.policies):
        where = f"policies[{pi}]"
        if names.index(policy.name) != pi:
            raise errors.ConfigError([f"{where}.name: {policy.name!r} is used twice"])
        traffic = _traffic_policy(policy.policy, f"{where}.policy")
        targets: list[pb.PolicyTarget] = []
        t = policy.target
        if t.gateway is not None:
            if t.gateway.gateway_name != gateway:
                raise errors.ConfigError(
                    [
                        f"{where}.target.gateway.gatewayName: no gateway named {t.gateway.gateway_name!r} "
                        f"(this file's gateway is {gateway!r}; set config.gateway to rename it)"
                    ]
                )
            if t.gateway.listener_name is None and t.gateway.port is None:
                targets.append(pb.PolicyTarget(gateway=gateway))
            for bind in model.binds:
                if t.gateway.port is not None and bind.port != t.gateway.port:
                    continue
                for li, listener in enumerate(bind.listeners):
                    lname = listener.name or f"listener{li}"
                    if t.gateway.listener_name is None and t.gateway.port is None:
                        continue
                    if t.gateway.listener_name is not None and lname != t.gateway.listener_name:
                        continue
                    targets.append(pb.PolicyTarget(listener_key=f"bind/{bind.port}/{lname}"))
            if not targets:
                raise errors.ConfigError([f"{where}.target.gateway: no listener matches"])
        elif t.route is not None:
            for bind in model.binds:
                for li, listener in enumerate(bind.listeners):
                    lname = listener.name or f"listener{li}"
                    for ri, route in enumerate(listener.routes or []):
                        rname = route.name or f"route{ri}"
                        if rname != t.route.name:
                            continue
                        if t.route.rule_name is not None and route.rule_name != t.route.rule_name:
                            continue
                        key = f"bind/{bind.port}/{lname}/{rname}/{ri}"
                        targets.append(
                            pb.PolicyTarget(rule_key=key)
                            if t.route.rule_name is not None
                            else pb.PolicyTarget(route_key=key)
                        )
            if not targets:
                raise errors.ConfigError([f"{where}.target.route: no route named {t.route.name!r}"])
        else:
            assert t.backend is not None and t.backend.backend is not None
            name = t.backend.backend.name
            if name not in {b.name for b in model.backends}:
                raise errors.ConfigError(
                    [f"{where}.target.backend.backend.name: no backend named {name!r} in top-level backends"]
                )
            targets.append(pb.PolicyTarget(backend_key=f"backend/{name}"))
        for ti, target in enumerate(targets):
            key = f"policy/{policy.name}" if len(targets) == 1 else f"policy/{policy.name}/{ti}"
            out.append(
                pb.Resource(
                    policy=pb.Policy(
                        key=key, name=policy.name, target=target, traffic=traffic, creation_unix_seconds=pi
                    )
                )
            )
    return out
