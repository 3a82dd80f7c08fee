"""Security policies of the standalone file: models in agentgateway's format, and their lowering.

In: the `jwtAuth`, `apiKey`, `basicAuth`, `authorization`, `extAuthz`, `localRateLimit`,
`remoteRateLimit`, `transformations`, `csrf`, `backendTLS`, `backendAuth` sections of route,
listener and backend policies, a listener's `tls`, and the top-level targeted `policies` list.
Out: the matching `resource_pb2` messages (`TrafficPolicy` fields 10-18, `BackendTls`,
`ListenerTls`, `Policy`).

CEL expressions are carried as text: the proxy compiles and type-checks them when it compiles
the resources, and a bad one is an error naming the field path. Files named by `htpasswd`
are read while lowering; JWKS files are read (and re-read) by the proxy.

agentgw extensions to agentgateway's format: a local rate limit may carry `key`, a CEL
expression giving one bucket per distinct value (agentgateway's buckets are gateway-wide).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

import pydantic
from google.protobuf import duration_pb2

from api import durations, errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.standalone_types import (
    Duration,
    HeaderName,
    HostPort,
    Model,
    Unsupported,
    exactly_one,
    split_host_port,
)

Mode = Literal["strict", "optional", "permissive"]

_MODES = {
    "strict": pb.AUTH_MODE_STRICT,
    "optional": pb.AUTH_MODE_OPTIONAL,
    "permissive": pb.AUTH_MODE_PERMISSIVE,
}


# --------------------------------------------------------------------------------------------
# Shared pieces


class HeaderLocation(Model):
    name: HeaderName
    prefix: str | None = None


class NamedLocation(Model):
    name: Annotated[str, pydantic.Field(min_length=1)]


class AuthorizationLocation(Model):
    """Where a credential is read: a header (with an optional prefix), a query parameter or a cookie."""

    header: HeaderLocation | None = None
    query_parameter: NamedLocation | None = pydantic.Field(None, alias="queryParameter")
    cookie: NamedLocation | None = None
    expression: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> AuthorizationLocation:
        exactly_one(self, ("header", "query_parameter", "cookie"))
        return self


class FileRef(Model):
    file: Annotated[str, pydantic.Field(min_length=1)]


class UrlRef(Model):
    url: Annotated[str, pydantic.Field(pattern=r"^https?://")]


def _location(loc: AuthorizationLocation | None, default_prefix: str) -> pb.CredentialLocation:
    if loc is None:
        return pb.CredentialLocation(header=pb.HeaderLocation(name="authorization", prefix=default_prefix))
    if loc.header is not None:
        return pb.CredentialLocation(
            header=pb.HeaderLocation(name=loc.header.name.lower(), prefix=loc.header.prefix or "")
        )
    if loc.query_parameter is not None:
        return pb.CredentialLocation(query_parameter=loc.query_parameter.name)
    assert loc.cookie is not None
    return pb.CredentialLocation(cookie=loc.cookie.name)


def _duration(text: str | None) -> duration_pb2.Duration | None:
    if text is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(durations.parse(text) * 1e9))
    return d


def _read(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise errors.ConfigError([f"{where}: cannot read {path!r}: {exc.strerror or exc}"]) from exc


# --------------------------------------------------------------------------------------------
# Authentication


class JwtValidationOptions(Model):
    required_claims: list[Literal["exp", "nbf", "aud", "iss", "sub"]] = pydantic.Field(
        ["exp"], alias="requiredClaims"
    )


class JwtProvider(Model):
    issuer: str
    audiences: list[str] | None = None
    jwks: str | FileRef | UrlRef
    jwt_validation_options: JwtValidationOptions | None = pydantic.Field(None, alias="jwtValidationOptions")


class JwtAuth(Model):
    """`jwtAuth`: either `providers` or one provider's fields inline (agentgateway accepts both)."""

    mode: Mode = "optional"
    location: AuthorizationLocation | None = None
    providers: list[JwtProvider] | None = None
    issuer: str | None = None
    audiences: list[str] | None = None
    jwks: str | FileRef | UrlRef | None = None
    jwt_validation_options: JwtValidationOptions | None = pydantic.Field(None, alias="jwtValidationOptions")

    @pydantic.model_validator(mode="after")
    def _shape(self) -> JwtAuth:
        inline = self.issuer is not None or self.jwks is not None
        if self.providers is not None and inline:
            raise ValueError("set either providers or issuer/jwks, not both")
        if self.providers is None:
            if self.issuer is None or self.jwks is None:
                raise ValueError("issuer and jwks are required (or a providers list)")
        elif not self.providers:
            raise ValueError("providers must not be empty")
        return self

    def all_providers(self) -> list[JwtProvider]:
        if self.providers is not None:
            return self.providers
        assert self.issuer is not None and self.jwks is not None
        return [
            JwtProvider.model_validate(
                {
                    "issuer": self.issuer,
                    "audiences": self.audiences,
                    "jwks": self.jwks,
                    "jwtValidationOptions": self.jwt_validation_options,
                }
            )
        ]


def _jwt(m: JwtAuth) -> pb.JwtAuth:
    out = pb.JwtAuth(mode=_MODES[m.mode], location=_location(m.location, "Bearer "))
    for p in m.all_providers():
        if isinstance(p.jwks, FileRef):
            jwks = pb.Jwks(file=p.jwks.file)
        elif isinstance(p.jwks, UrlRef):
            jwks = pb.Jwks(url=p.jwks.url)
        else:
            jwks = pb.Jwks(inline=p.jwks)
        options = p.jwt_validation_options or JwtValidationOptions()
        out.providers.append(
            pb.JwtProvider(
                issuer=p.issuer,
                audiences=p.audiences or [],
                jwks=jwks,
                required_claims=list(options.required_claims),
            )
        )
    return out


_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


class ApiKeyEntry(Model):
    key: Annotated[str, pydantic.Field(min_length=1)] | None = None
    key_hash: str | None = pydantic.Field(None, alias="keyHash")
    metadata: Any = None
    allowed_models: Unsupported = pydantic.Field(None, alias="allowedModels")

    @pydantic.model_validator(mode="after")
    def _one(self) -> ApiKeyEntry:
        exactly_one(self, ("key", "key_hash"))
        if self.key_hash is not None and not _SHA256.match(self.key_hash):
            raise ValueError("keyHash must be 'sha256:' followed by 64 hex digits")
        return self


class ApiKeyAuth(Model):
    keys: list[ApiKeyEntry]
    mode: Mode = "optional"
    location: AuthorizationLocation | None = None


def _api_key(m: ApiKeyAuth) -> pb.ApiKeyAuth:
    out = pb.ApiKeyAuth(mode=_MODES[m.mode], location=_location(m.location, "Bearer "))
    for k in m.keys:
        meta = json.dumps(k.metadata, sort_keys=True) if k.metadata is not None else ""
        if k.key is not None:  # sent as a digest: never in clear in resources or /config_dump
            out.keys.append(pb.ApiKey(sha256=hashlib.sha256(k.key.encode()).hexdigest(), metadata_json=meta))
        else:
            assert k.key_hash is not None
            out.keys.append(pb.ApiKey(sha256=k.key_hash[7:].lower(), metadata_json=meta))
    return out


def api_key_digest(key: str) -> str:
    """The `sha256:<hex>` form of a key, for users writing `keyHash` entries."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class BasicAuth(Model):
    htpasswd: str | FileRef
    realm: str | None = None
    mode: Literal["strict", "optional"] = "optional"
    authorization_location: AuthorizationLocation | None = pydantic.Field(None, alias="authorizationLocation")


def _basic(m: BasicAuth, where: str) -> pb.BasicAuth:
    text = _read(m.htpasswd.file, f"{where}.htpasswd.file") if isinstance(m.htpasswd, FileRef) else m.htpasswd
    return pb.BasicAuth(
        mode=_MODES[m.mode],
        location=_location(m.authorization_location, "Basic "),
        htpasswd=text,
        realm=m.realm or "",
    )


# --------------------------------------------------------------------------------------------
# Authorization


class Rule(Model):
    allow: str | None = None
    deny: str | None = None
    require: str | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> Rule:
        exactly_one(self, ("allow", "deny", "require"))
        return self


class Authorization(Model):
    rules: list[str | Rule]


def _authorization(m: Authorization) -> pb.Authorization:
    out = pb.Authorization()
    for r in m.rules:
        if isinstance(r, str):
            out.rules.append(pb.AuthorizationRule(kind=pb.AuthorizationRule.ALLOW, expression=r))
        elif r.allow is not None:
            out.rules.append(pb.AuthorizationRule(kind=pb.AuthorizationRule.ALLOW, expression=r.allow))
        elif r.deny is not None:
            out.rules.append(pb.AuthorizationRule(kind=pb.AuthorizationRule.DENY, expression=r.deny))
        else:
            assert r.require is not None
            out.rules.append(pb.AuthorizationRule(kind=pb.AuthorizationRule.REQUIRE, expression=r.require))
    return out


# --------------------------------------------------------------------------------------------
# Rate limits


class RateLimitSpec(Model):
    max_tokens: Annotated[int, pydantic.Field(ge=1)] = pydantic.Field(alias="maxTokens")
    tokens_per_fill: Annotated[int, pydantic.Field(ge=1)] = pydantic.Field(alias="tokensPerFill")
    fill_interval: Duration = pydantic.Field(alias="fillInterval")
    type: Literal["requests", "tokens"] = "requests"
    """`tokens`: an LLM token budget, charged with the usage each response reports."""
    key: str | None = None
    """agentgw extension: a CEL expression; one bucket per distinct value."""

    @pydantic.field_validator("fill_interval")
    @classmethod
    def _positive(cls, value: str) -> str:
        if durations.parse(value) <= 0:
            raise ValueError("fillInterval must be greater than zero")
        return value


def _local_rate_limit(specs: list[RateLimitSpec]) -> pb.LocalRateLimits:
    return pb.LocalRateLimits(
        limits=[
            pb.LocalRateLimit(
                max_tokens=s.max_tokens,
                tokens_per_fill=s.tokens_per_fill,
                fill_interval=_duration(s.fill_interval),
                unit=pb.RATE_LIMIT_TOKENS if s.type == "tokens" else pb.RATE_LIMIT_REQUESTS,
                key=s.key or "",
            )
            for s in specs
        ]
    )


class DescriptorKV(Model):
    key: Annotated[str, pydantic.Field(min_length=1)]
    value: str


class Descriptor(Model):
    entries: Annotated[list[DescriptorKV], pydantic.Field(min_length=1)]
    type: Literal["requests"] = "requests"
    cost: Unsupported = None
    limit_override: Unsupported = pydantic.Field(None, alias="limitOverride")


class RemoteServiceRef(Model):
    """The `host` / `backend` / `service` one-of of a policy that calls a service."""

    host: HostPort | None = None
    backend: str | None = None
    service: Unsupported = None
    policies: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> RemoteServiceRef:
        exactly_one(self, ("host", "backend"))
        return self


def _service_ref(m: RemoteServiceRef) -> pb.BackendRef:
    if m.host is not None:
        h, port = split_host_port(m.host)
        return pb.BackendRef(host=pb.StaticBackend(host=h, port=port))
    return pb.BackendRef(backend_key=f"backend/{m.backend}")


class RemoteRateLimit(RemoteServiceRef):
    domain: Annotated[str, pydantic.Field(min_length=1)]
    descriptors: Annotated[list[Descriptor], pydantic.Field(min_length=1)]
    failure_mode: Literal["failClosed", "FailClosed", "failOpen", "FailOpen"] = pydantic.Field(
        "failClosed", alias="failureMode"
    )


def _remote_rate_limit(m: RemoteRateLimit) -> pb.RemoteRateLimit:
    return pb.RemoteRateLimit(
        target=_service_ref(m),
        domain=m.domain,
        descriptors=[
            pb.RateLimitDescriptor(entries=[pb.DescriptorEntry(key=e.key, value=e.value) for e in d.entries])
            for d in m.descriptors
        ],
        fail_open=m.failure_mode.lower() == "failopen",
    )


# --------------------------------------------------------------------------------------------
# External authorization


class ExtAuthzGrpc(Model):
    context: dict[str, str] | None = None
    metadata: dict[str, str] | None = None


class ExtAuthzHttp(Model):
    path: str | None = None
    redirect: str | None = None
    body: Unsupported = None
    include_response_headers: list[HeaderName] = pydantic.Field([], alias="includeResponseHeaders")
    add_request_headers: dict[HeaderName, str] = pydantic.Field({}, alias="addRequestHeaders")
    metadata: Unsupported = None


class ExtAuthzProtocol(Model):
    grpc: ExtAuthzGrpc | None = None
    http: ExtAuthzHttp | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> ExtAuthzProtocol:
        exactly_one(self, ("grpc", "http"))
        return self


class DenyWithStatus(Model):
    deny_with_status: Annotated[int, pydantic.Field(ge=200, le=599)] = pydantic.Field(alias="denyWithStatus")


class BodyOptions(Model):
    max_request_bytes: Annotated[int, pydantic.Field(ge=0)] = pydantic.Field(0, alias="maxRequestBytes")
    allow_partial_message: bool = pydantic.Field(False, alias="allowPartialMessage")
    pack_as_bytes: bool = pydantic.Field(False, alias="packAsBytes")


class ExtAuthz(RemoteServiceRef):
    protocol: ExtAuthzProtocol = ExtAuthzProtocol(grpc=ExtAuthzGrpc())
    failure_mode: Literal["allow", "deny"] | DenyWithStatus = pydantic.Field("deny", alias="failureMode")
    include_request_headers: list[str] = pydantic.Field([], alias="includeRequestHeaders")
    include_request_body: BodyOptions | None = pydantic.Field(None, alias="includeRequestBody")
    cache: Unsupported = None


def _ext_authz(m: ExtAuthz) -> pb.ExtAuthz:
    out = pb.ExtAuthz(
        target=_service_ref(m),
        fail_open=m.failure_mode == "allow",
        deny_status=m.failure_mode.deny_with_status if isinstance(m.failure_mode, DenyWithStatus) else 0,
        include_request_headers=[h.lower() for h in m.include_request_headers],
    )
    if m.protocol.grpc is not None:
        out.grpc.CopyFrom(
            pb.ExtAuthzGrpc(context=m.protocol.grpc.context or {}, metadata=m.protocol.grpc.metadata or {})
        )
    else:
        h = m.protocol.http
        assert h is not None
        out.http.CopyFrom(
            pb.ExtAuthzHttp(
                path=h.path or "",
                redirect=h.redirect or "",
                include_response_headers=[n.lower() for n in h.include_response_headers],
                add_request_headers={k.lower(): v for k, v in h.add_request_headers.items()},
            )
        )
    if m.include_request_body is not None:
        b = m.include_request_body
        out.include_request_body.CopyFrom(
            pb.ExtAuthzBody(
                max_request_bytes=b.max_request_bytes or 8192,
                allow_partial_message=b.allow_partial_message,
                pack_as_bytes=b.pack_as_bytes,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Transformations, CSRF


class Transform(Model):
    add: dict[HeaderName, str] = {}
    set: dict[HeaderName, str] = {}
    remove: list[HeaderName] = []
    replace: str | None = None
    body: str | None = None
    metadata: Unsupported = None

    @pydantic.field_validator("metadata", mode="before")
    @classmethod
    def _empty_metadata(cls, value: Any) -> Any:
        return None if value == {} else value


class Transformations(Model):
    request: Transform | None = None
    response: Transform | None = None


def _transform(t: Transform) -> pb.Transform:
    return pb.Transform(
        add=[pb.HeaderExpression(name=k.lower(), expression=v) for k, v in t.add.items()],
        set=[pb.HeaderExpression(name=k.lower(), expression=v) for k, v in t.set.items()],
        remove=[n.lower() for n in t.remove],
        body=t.body or "",
        replace=t.replace or "",
    )


def _transformations(m: Transformations) -> pb.Transformations:
    out = pb.Transformations()
    if m.request is not None:
        out.request.CopyFrom(_transform(m.request))
    if m.response is not None:
        out.response.CopyFrom(_transform(m.response))
    return out


class Csrf(Model):
    additional_origins: list[str] = pydantic.Field([], alias="additionalOrigins")


# --------------------------------------------------------------------------------------------
# The security section of a policy set, lowered into a TrafficPolicy


class SecurityPolicies(Model):
    """The security fields shared by route (`FilterOrPolicy`) and listener (`LocalGatewayPolicy`)
    policies. Mixed into those models by api.standalone."""

    jwt_auth: JwtAuth | None = pydantic.Field(None, alias="jwtAuth")
    api_key: ApiKeyAuth | None = pydantic.Field(None, alias="apiKey")
    basic_auth: BasicAuth | None = pydantic.Field(None, alias="basicAuth")
    ext_authz: ExtAuthz | None = pydantic.Field(None, alias="extAuthz")
    authorization: Authorization | None = None
    transformations: Transformations | None = None


def lower_security(p: Any, out: pb.TrafficPolicy, where: str) -> None:
    """Copy the security fields present on a policies model `p` into `out`."""
    if getattr(p, "jwt_auth", None) is not None:
        out.jwt_auth.CopyFrom(_jwt(p.jwt_auth))
    if getattr(p, "api_key", None) is not None:
        out.api_key.CopyFrom(_api_key(p.api_key))
    if getattr(p, "basic_auth", None) is not None:
        out.basic_auth.CopyFrom(_basic(p.basic_auth, f"{where}.basicAuth"))
    if getattr(p, "ext_authz", None) is not None:
        out.ext_authz.CopyFrom(_ext_authz(p.ext_authz))
    if getattr(p, "authorization", None) is not None:
        out.authorization.CopyFrom(_authorization(p.authorization))
    if getattr(p, "local_rate_limit", None) is not None:
        out.local_rate_limit.CopyFrom(_local_rate_limit(p.local_rate_limit))
    if getattr(p, "remote_rate_limit", None) is not None:
        out.remote_rate_limit.CopyFrom(_remote_rate_limit(p.remote_rate_limit))
    if getattr(p, "transformations", None) is not None:
        out.transformations.CopyFrom(_transformations(p.transformations))
    if getattr(p, "csrf", None) is not None:
        out.csrf.CopyFrom(pb.Csrf(additional_origins=p.csrf.additional_origins))


# --------------------------------------------------------------------------------------------
# Backend TLS and auth


class BackendTls(Model):
    cert: str | None = None
    key: str | None = None
    root: str | None = None
    hostname: str | None = None
    insecure: bool = False
    insecure_host: bool = pydantic.Field(False, alias="insecureHost")
    alpn: list[str] | None = None
    subject_alt_names: list[str] | None = pydantic.Field(None, alias="subjectAltNames")
    key_exchange_groups: Unsupported = pydantic.Field(None, alias="keyExchangeGroups")
    spiffe: Unsupported = None

    @pydantic.model_validator(mode="after")
    def _pair(self) -> BackendTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be set together")
        return self


def backend_tls(m: BackendTls) -> pb.BackendTls:
    return pb.BackendTls(
        root_file=m.root or "",
        cert_file=m.cert or "",
        key_file=m.key or "",
        hostname=m.hostname or "",
        insecure=m.insecure,
        insecure_host=m.insecure_host,
        subject_alt_names=m.subject_alt_names or [],
        alpn=m.alpn or [],
    )


class Passthrough(Model):
    location: Unsupported = None


class BackendAuth(Model):
    passthrough: Passthrough | None = None
    key: Unsupported = None
    credentials: Unsupported = None
    gcp: Unsupported = None
    aws: Unsupported = None
    azure: Unsupported = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _string_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"backendAuth {value!r} is not supported by agentgw yet")
        return value

    @pydantic.model_validator(mode="after")
    def _one(self) -> BackendAuth:
        if self.passthrough is None:
            raise ValueError("only backendAuth.passthrough is supported by agentgw yet")
        return self


# --------------------------------------------------------------------------------------------
# Listener TLS


class ListenerTls(Model):
    cert: Annotated[str, pydantic.Field(min_length=1)]
    key: Annotated[str, pydantic.Field(min_length=1)]
    root: str | None = None
    mode: Literal["static"] = "static"
    spiffe: Unsupported = None
    cipher_suites: Unsupported = pydantic.Field(None, alias="cipherSuites")
    key_exchange_groups: Unsupported = pydantic.Field(None, alias="keyExchangeGroups")
    min_tls_version: Literal["TLS_V1_2", "TLS_V1_3"] | None = pydantic.Field(None, alias="minTLSVersion")
    max_tls_version: Literal["TLS_V1_2", "TLS_V1_3"] | None = pydantic.Field(None, alias="maxTLSVersion")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _spellings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = dict(value)
            for short, long in (("minTlsVersion", "minTLSVersion"), ("maxTlsVersion", "maxTLSVersion")):
                if short in value:
                    if long in value:
                        raise ValueError(f"set {long} or {short}, not both")
                    value[long] = value.pop(short)
        return value


def listener_tls(m: ListenerTls) -> pb.ListenerTls:
    def version(v: str | None) -> str:
        return "" if v is None else v.removeprefix("TLS_V").replace("_", ".")

    return pb.ListenerTls(
        cert_file=m.cert,
        key_file=m.key,
        root_file=m.root or "",
        min_version=version(m.min_tls_version),
        max_version=version(m.max_tls_version),
    )
