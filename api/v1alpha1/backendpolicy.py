"""Backend policies: how the gateway connects to a destination (TCP, TLS, HTTP, auth, LLM).

agentgateway uses one family of types for this in three places, and so do we:

- `BackendFull`: `AgentgatewayBackend.spec.policies` and `AgentgatewayPolicy.spec.backend`;
- `BackendWithAI`: the policies of one LLM provider in a priority group;
- `BackendSimple`: the policies of one static MCP target.

Merge order, field by field (not deep): `AgentgatewayPolicy` < `AgentgatewayBackend.spec.policies`
< per-provider or per-MCP-target policies.

Subset of agentgateway: `tcp`, `tls`, `http.requestTimeout`, `auth` (key, secretRef, passthrough,
location, credentials) and `ai` (prompt, defaults, overrides, modelAliases). Left out until
agentgw implements them: `tunnel`, `http.version`, `tls.certificateSource`/`keyExchangeGroups`,
cloud auth (`aws`, `azure`, `gcp`), `oauthTokenExchange`, `crossAppAccess`, `jwtSign`, `mcp`,
`transformation`, `health`, `extAuth`, and the AI `promptGuard`, `transformations`,
`finalTransformations`, `promptCaching` and `routes`. A manifest that sets one of them is
rejected as an unknown field, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from api.v1alpha1 import base, common

# --------------------------------------------------------------------------------------------
# TCP


class Keepalive(base.Model):
    """TCP keepalive probes on the connection."""

    retries: Annotated[int, pydantic.Field(ge=1, le=64)] | None = None
    """Probes sent before the connection is dropped, 1 to 64. Default: 9."""

    time: Annotated[common.Duration, common.min_duration("1s", "time must be at least 1 second")] | None = (
        None
    )
    """Idle time before the first probe; at least 1s. Default: 180s."""

    interval: (
        Annotated[common.Duration, common.min_duration("1s", "interval must be at least 1 second")] | None
    ) = None
    """Time between probes; at least 1s. Default: 180s."""


class BackendTCP(base.Model):
    """TCP connections to the backend."""

    keepalive: Keepalive | None = None
    """TCP keepalives on the connection. Default: off."""

    connect_timeout: (
        Annotated[common.Duration, common.min_duration("100ms", "connectTimeout must be at least 100ms")]
        | None
    ) = None
    """Deadline for establishing a connection; at least 100ms. Default: 10s."""


# --------------------------------------------------------------------------------------------
# TLS


class LocalCACertificateRef(base.Model):
    """A same-namespace CA certificate source: a ConfigMap (the default) or a Secret with `ca.crt`."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    name: common.ObjectName
    """Name of the ConfigMap or Secret. Required."""

    kind: Literal["ConfigMap", "Secret"] = "ConfigMap"
    """Kind of the source. Default: `ConfigMap`."""


def _insecure_all_without_ca(tls: BackendTLS) -> bool:
    return tls.insecure_skip_verify != "All" or tls.ca_certificate_refs is None


class BackendTLS(base.Model):
    """Originate TLS to the backend.

    Setting `tls` (even `{}`) turns TLS on, verified against the system trust roots, with SNI
    taken from the destination host.
    """

    __rules__ = (
        base.Rule(
            "has(self.insecureSkipVerify) && self.insecureSkipVerify == 'All' ? "
            "!has(self.caCertificateRefs) : true",
            "insecureSkipVerify All and caCertificateRefs may not be set together",
            _insecure_all_without_ca,
        ),
        base.Rule(
            "has(self.insecureSkipVerify) ? !has(self.verifySubjectAltNames) : true",
            "insecureSkipVerify and verifySubjectAltNames may not be set together",
            lambda s: s.insecure_skip_verify is None or s.verify_subject_alt_names is None,
        ),
        base.at_most_one_of("verifySubjectAltNames", "insecureSkipVerify"),
    )

    mtls_certificate_ref: (
        Annotated[list[common.LocalSecretObjectRef], pydantic.Field(max_length=1), base.ATOMIC] | None
    ) = None
    """Client certificate for mutual TLS: `tls.crt` and `tls.key` of the referenced Secret (at most
    one). An optional `ca.crt` in it verifies the server unless `caCertificateRefs` is set.
    Default: no client certificate."""

    ca_certificate_refs: (
        Annotated[list[LocalCACertificateRef], pydantic.Field(max_length=1), base.ATOMIC] | None
    ) = None
    """CA bundle (`ca.crt`) to verify the server certificate with, at most one.
    Default: the system trust roots."""

    insecure_skip_verify: Literal["All", "Hostname"] | None = None
    """Skip verification. `All`: no verification at all. `Hostname`: verify the chain but not the
    name. Insecure: prefer `verifySubjectAltNames`."""

    sni: common.SNI | None = None
    """Server Name Indication to send. Default: the destination hostname."""

    verify_subject_alt_names: (
        Annotated[list[common.ShortString], pydantic.Field(min_length=1, max_length=16)] | None
    ) = None
    """Subject Alternative Names accepted in the server certificate, 1 to 16.
    Default: the destination hostname."""

    alpn_protocols: Annotated[list[common.TinyString], pydantic.Field(min_length=1, max_length=16)] | None = (
        None
    )
    """ALPN protocols offered, 1 to 16. Default: `["h2", "http/1.1"]`."""


# --------------------------------------------------------------------------------------------
# HTTP


class BackendHTTP(base.Model):
    """HTTP requests to the backend."""

    request_timeout: (
        Annotated[common.Duration, common.min_duration("1ms", "requestTimeout must be at least 1ms")] | None
    ) = None
    """Deadline for the backend's whole response; at least 1ms. Default: none."""


# --------------------------------------------------------------------------------------------
# Auth


class AuthorizationHeaderLocation(base.Model):
    """Put the credential in a header."""

    name: common.HTTPHeaderName
    """Header name. Required."""

    prefix: common.ShortString | None = None
    """Text written before the credential, e.g. `Bearer `. Default: no prefix."""


class AuthorizationQueryParameterLocation(base.Model):
    """Put the credential in a query parameter."""

    name: common.ShortString
    """Query parameter name. Required."""


class AuthorizationCookieLocation(base.Model):
    """Put the credential in a cookie."""

    name: common.ShortString
    """Cookie name. Required."""


class AuthorizationLocation(base.Model):
    """Where a credential is written on the backend request: exactly one of header, query, cookie."""

    __rules__ = (base.exactly_one_of("header", "queryParameter", "cookie"),)

    header: AuthorizationHeaderLocation | None = None
    query_parameter: AuthorizationQueryParameterLocation | None = None
    cookie: AuthorizationCookieLocation | None = None


class BackendAuthPassthrough(base.Model):
    """Forward the client token that a client-auth policy already validated (empty object)."""


class BackendAuthCredential(base.Model):
    """One additional credential read from a Secret and written to its own location."""

    location: AuthorizationLocation
    """Where the credential is written. Required."""

    secret_ref: common.LocalSecretKeyRef
    """The Secret holding the value. Default key: `Authorization`. Required."""


_PRIMARY_AUTH = ("key", "secretRef", "passthrough")


class BackendAuth(base.Model):
    """Credentials the gateway adds to backend requests.

    At most one primary kind (`key`, `secretRef`, `passthrough`); `credentials` may be used alone
    or beside it. agentgateway's cloud and token-exchange kinds are not supported yet.
    """

    __rules__ = (
        base.Rule(
            "has(self.credentials) || has(self.key) || has(self.secretRef) || has(self.passthrough)",
            "must specify credentials, or at most one of key/secretRef/passthrough "
            "(credentials may be combined with a primary auth kind)",
            lambda s: s.credentials is not None or any(base.present(s, n) for n in _PRIMARY_AUTH),
        ),
        base.Rule(
            "has(self.location) ? has(self.key) || has(self.secretRef) || has(self.passthrough) : true",
            "location may only be set for key, secretRef, or passthrough auth",
            lambda s: s.location is None or any(base.present(s, n) for n in _PRIMARY_AUTH),
        ),
        base.at_most_one_of(*_PRIMARY_AUTH),
    )

    key: Annotated[str, pydantic.StringConstraints(max_length=2048)] | None = None
    """Inline credential, at most 2048 characters. Least secure: prefer `secretRef`."""

    secret_ref: common.LocalSecretKeyRef | None = None
    """Secret holding the credential. Default key: `Authorization`, from which a leading `Bearer `
    is stripped (a value under another key is used as is)."""

    passthrough: BackendAuthPassthrough | None = None
    """Re-send the client's token that another policy validated (and may have stripped)."""

    location: AuthorizationLocation | None = None
    """Where `key`/`secretRef`/`passthrough` is written.
    Default: header `Authorization` with prefix `Bearer `."""

    credentials: (
        Annotated[list[BackendAuthCredential], pydantic.Field(min_length=1, max_length=8), base.ATOMIC] | None
    ) = None
    """Additional credentials, 1 to 8, each with its own location."""


# --------------------------------------------------------------------------------------------
# AI


class Message(base.Model):
    """A chat message to add to every prompt."""

    role: str
    """Role, as the provider names it (`system`, `user`, ...). Required."""

    content: str
    """Text content. Required."""


class AIPromptEnrichment(base.Model):
    """Static messages added to every chat request before it goes to the provider."""

    prepend: list[Message] | None = None
    """Messages put before the client's messages."""

    append: list[Message] | None = None
    """Messages put after the client's messages."""


class FieldDefault(base.Model):
    """A top-level request body field and the JSON value to give it."""

    field: common.ShortString
    """Name of the body field, e.g. `temperature`. Required."""

    value: base.Json
    """Any JSON value. Required."""


class BackendAI(base.Model):
    """LLM request handling. Applies only to an `ai` AgentgatewayBackend."""

    __rules__ = (base.at_least_one_field_set(("prompt", "defaults", "overrides", "modelAliases")),)

    prompt: AIPromptEnrichment | None = None
    """Messages to prepend and append to every chat request."""

    defaults: Annotated[list[FieldDefault], pydantic.Field(min_length=1, max_length=64)] | None = None
    """Body fields set when the request does not set them, 1 to 64."""

    overrides: Annotated[list[FieldDefault], pydantic.Field(min_length=1, max_length=64)] | None = None
    """Body fields set whatever the request says, 1 to 64."""

    model_aliases: Annotated[dict[str, str], pydantic.Field(max_length=64)] | None = None
    """Friendly model names mapped to provider model names, e.g. `{fast: gpt-4o-mini}`; at most 64."""


# --------------------------------------------------------------------------------------------
# The three shapes


class BackendSimple(base.Model):
    """Connection policies: TCP, TLS, HTTP and auth (used by static MCP targets)."""

    tcp: BackendTCP | None = None
    """TCP connection settings."""

    tls: BackendTLS | None = None
    """Originate TLS. Default: plaintext, unless the backend kind implies TLS (LLM providers)."""

    http: BackendHTTP | None = None
    """HTTP request settings."""

    auth: BackendAuth | None = None
    """Credentials added to backend requests."""


class BackendWithAI(BackendSimple):
    """Connection policies plus LLM handling (used by one provider of a priority group)."""

    __rules__ = (base.at_least_one_field_set(("tcp", "tls", "http", "auth", "ai")),)

    ai: BackendAI | None = None
    """LLM request handling; only for `ai` backends."""


class BackendFull(BackendWithAI):
    """All backend policies (`AgentgatewayBackend.spec.policies`, `AgentgatewayPolicy.spec.backend`)."""
