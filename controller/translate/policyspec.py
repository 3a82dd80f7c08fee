"""An AgentgatewayPolicy's `traffic` and `backend` sections -> the TrafficPolicy and BackendPolicy
of its Policy resources. Independent of the targets: `policies` places the result.

In: a validated `api.v1alpha1.policy.AgentgatewayPolicy`, the `Index` (Secrets, ConfigMaps) and
the backend `Resolver` (ext auth and rate-limit services). Out: a `Spec` with the two messages,
the Backend resources they point at (to ship with them), and two lists of messages for the status:

- `invalid`: a reference that does not resolve (a missing Secret, a bad key entry, an unknown
  service). The policy is `Accepted=False` but still emitted, *failing closed*: a key set, user
  list or JWKS that cannot be read is replaced by one nothing satisfies (`DENY_ALL_KEY_SHA256`,
  `DENY_ALL_HTPASSWD`, a JWKS URL on `UNAVAILABLE_HOST`), and an unreachable ext auth or
  rate-limit service by `UNAVAILABLE_HOST`, so its failure mode decides; dropping an
  authentication policy would open the route instead. A CEL expression that does not parse is
  reported too, and emitted as written (the proxy NACKs the Policy and keeps its old version).
- `dropped`: a part agentgw cannot carry (`frontend`, `backend.ai`, backend `auth` credentials,
  `tcp.keepalive`, ...), left out and reported (`Accepted=True/PartiallyValid`); `phase:
  PreRouting` is run after routing like the default.

Mappings that are not one to one: an authorization rule with several `matchExpressions` becomes
one rule per expression with the same action (agentgateway's translation); a local rate limit
becomes a bucket of `requests + burst` tokens refilled with `requests` every unit; `hostRewrite:
Auto` is a URL rewrite to the backend's host and `None` an empty URL rewrite (which, as the more
specific field, stops a less specific Auto); a `url` endpoint becomes an inline host (TLS for
`https`) and its path the ext auth HTTP path; a remote JWKS on a Service is fetched over plain
HTTP from the Service's cluster DNS name; a retry's `attempts` counts retries (tries = attempts
+ 1, as for HTTPRoute retries). Pure; called by `controller.translate.policies`.
"""

from __future__ import annotations

import base64
import dataclasses
import decimal
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib import parse as urlparse

from cel_expr_python import cel  # type: ignore[import-untyped]
from google.protobuf import duration_pb2

from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.v1alpha1 import backendpolicy, common
from api.v1alpha1 import policy as agwpolicy
from controller.translate import backends, filters, index, model, secretdata, tls

KIND = "AgentgatewayPolicy"
GROUP = "agentgateway.dev"

DENY_ALL_KEY_SHA256 = "0" * 64
"""The digest of an API key that stands in for keys that could not be read: no key is known to
hash to it, so a `Strict` policy rejects every key, as agentgateway does with an empty key set."""

DENY_ALL_HTPASSWD = "agentgw-no-users:{SHA}" + base64.b64encode(bytes(20)).decode()
"""An htpasswd line that stands in for users that could not be read (no password hashes to zero)."""

UNAVAILABLE_HOST = "unavailable.invalid"
"""A host that never resolves (RFC 6761 `.invalid`): stands in for a JWKS server, ext auth or
rate-limit service that could not be resolved, so the request fails as if it were down."""

DEFAULT_REALM = "Restricted"
"""The `WWW-Authenticate` realm when `basicAuthentication.realm` is unset (agentgateway's)."""

DEFAULT_HTPASSWD_KEY = ".htaccess"
"""The Secret key of `basicAuthentication.secretRef` when it names none (agentgateway's)."""

HTPASSWD_SCHEMES = ("$2y$", "$2b$", "$2a$", "$apr1$", "{SHA}")
"""Hashes the proxy verifies: bcrypt, apr1 MD5, SHA-1."""

_MODES = {
    "Strict": pb.AUTH_MODE_STRICT,
    "Optional": pb.AUTH_MODE_OPTIONAL,
    "Permissive": pb.AUTH_MODE_PERMISSIVE,
}
_ACTIONS = {
    "Allow": pb.AuthorizationRule.ALLOW,
    "Deny": pb.AuthorizationRule.DENY,
    "Require": pb.AuthorizationRule.REQUIRE,
}
_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600}
_KEY_HASH = re.compile(r"sha256:([0-9a-fA-F]{64})")
_UINT32_MAX = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one AgentgatewayPolicy translates to, whatever it targets."""

    traffic: pb.TrafficPolicy | None
    backend: pb.BackendPolicy | None
    override: bool
    backends: tuple[pb.Backend, ...] = ()
    """Backend resources the policy points at (ext auth and rate-limit services)."""
    invalid: tuple[str, ...] = ()
    """`Accepted=False` messages: references that did not resolve (emitted failing closed)."""
    dropped: tuple[str, ...] = ()
    """`PartiallyValid` messages: parts agentgw cannot carry, left out."""


class _Work:
    """What the translation of one policy collects besides the messages."""

    def __init__(self, namespace: str, idx: index.Index, resolver: backends.Resolver) -> None:
        self.namespace = namespace
        self.idx = idx
        self.resolver = resolver
        self.invalid: list[str] = []
        self.dropped: list[str] = []
        self.backends: list[pb.Backend] = []


def translate(policy: agwpolicy.AgentgatewayPolicy, idx: index.Index, resolver: backends.Resolver) -> Spec:
    spec = policy.spec
    work = _Work(policy.metadata.namespace or "", idx, resolver)
    traffic = _traffic(spec.traffic, work) if spec.traffic is not None else None
    backend = _backend(spec.backend, work) if spec.backend is not None else None
    if spec.frontend is not None:
        work.dropped.append("frontend is not supported by agentgw yet")
    override = spec.strategy is not None and spec.strategy.inheritance == "Override"
    return Spec(
        traffic=traffic if traffic is not None and traffic.ListFields() else None,
        backend=backend if backend is not None and backend.ListFields() else None,
        override=override,
        backends=tuple(work.backends),
        invalid=tuple(work.invalid),
        dropped=tuple(work.dropped),
    )


# --------------------------------------------------------------------------------------------
# Traffic


def _traffic(t: agwpolicy.Traffic, work: _Work) -> pb.TrafficPolicy:
    out = pb.TrafficPolicy()
    where = "traffic"
    if t.phase == "PreRouting":
        work.dropped.append(
            "traffic.phase PreRouting is not supported by agentgw yet: the policy runs after routing"
        )
    if t.cors is not None:
        out.cors.CopyFrom(_cors(t.cors))
    if t.header_modifiers is not None:
        if t.header_modifiers.request is not None:
            out.request_header_modifier.CopyFrom(_header_modifier(t.header_modifiers.request))
        if t.header_modifiers.response is not None:
            out.response_header_modifier.CopyFrom(_header_modifier(t.header_modifiers.response))
    if t.host_rewrite is not None:
        out.url_rewrite.SetInParent()
        if t.host_rewrite.mode == "Auto":
            out.url_rewrite.authority.auto = True
    if t.timeouts is not None and t.timeouts.request is not None:
        out.timeout.request_timeout.CopyFrom(_duration(t.timeouts.request))
    if t.retry is not None:
        retry = gw.HTTPRouteRetry.model_validate(t.retry.model_dump(by_alias=True, exclude_none=True))
        filters.retry(retry, out, f"{where}.retry")
    if t.direct_response is not None:
        body = (t.direct_response.body or "").encode()
        out.direct_response.CopyFrom(pb.DirectResponse(status=t.direct_response.status, body=body))
    if t.csrf is not None:
        out.csrf.SetInParent()
        out.csrf.additional_origins.extend(t.csrf.additional_origins or ())
    if t.jwt_authentication is not None:
        out.jwt_auth.CopyFrom(_jwt(t.jwt_authentication, f"{where}.jwtAuthentication", work))
    if t.api_key_authentication is not None:
        out.api_key.CopyFrom(_api_keys(t.api_key_authentication, f"{where}.apiKeyAuthentication", work))
    if t.basic_authentication is not None:
        out.basic_auth.CopyFrom(_basic(t.basic_authentication, f"{where}.basicAuthentication", work))
    if t.ext_auth is not None:
        out.ext_authz.CopyFrom(_ext_auth(t.ext_auth, f"{where}.extAuth", work))
    if t.authorization is not None:
        out.authorization.CopyFrom(_authorization(t.authorization, f"{where}.authorization", work))
    if t.rate_limit is not None:
        _rate_limits(t.rate_limit, out, f"{where}.rateLimit", work)
    if t.transformation is not None:
        out.transformations.CopyFrom(_transformations(t.transformation, f"{where}.transformation", work))
    return out


def _cors(c: agwpolicy.CORS) -> pb.Cors:
    return pb.Cors(
        allow_credentials=bool(c.allow_credentials),
        allow_headers=c.allow_headers or (),
        allow_methods=c.allow_methods or (),
        allow_origins=c.allow_origins or (),
        expose_headers=c.expose_headers or (),
        max_age=duration_pb2.Duration(seconds=c.max_age),
    )


def _header_modifier(h: common.HTTPHeaderFilter) -> pb.HeaderModifier:
    return pb.HeaderModifier(
        add=[pb.HeaderPair(name=x.name, value=x.value) for x in h.add or ()],
        set=[pb.HeaderPair(name=x.name, value=x.value) for x in h.set or ()],
        remove=h.remove or (),
    )


def _duration(text: str) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(common.duration_ms(text))
    return d


# --------------------------------------------------------------------------------------------
# Authentication


def _location(loc: backendpolicy.AuthorizationLocation | None) -> pb.CredentialLocation | None:
    if loc is None:
        return None
    if loc.header is not None:
        return pb.CredentialLocation(
            header=pb.HeaderLocation(name=loc.header.name.lower(), prefix=loc.header.prefix or "")
        )
    if loc.query_parameter is not None:
        return pb.CredentialLocation(query_parameter=loc.query_parameter.name)
    assert loc.cookie is not None  # the model requires exactly one
    return pb.CredentialLocation(cookie=loc.cookie.name)


def _jwt(j: agwpolicy.JWTAuthentication, where: str, work: _Work) -> pb.JwtAuth:
    out = pb.JwtAuth(mode=_MODES[j.mode], location=_location(j.location))
    for i, p in enumerate(j.providers):
        at = f"{where}.providers[{i}].jwks"
        provider = pb.JwtProvider(issuer=p.issuer, audiences=p.audiences or ())
        if p.jwks.inline is not None:
            problem = _jwks_problem(p.jwks.inline)
            if problem is None:
                provider.jwks.inline = p.jwks.inline
            else:
                work.invalid.append(f"{at}.inline: {problem}")
                provider.jwks.url = f"https://{UNAVAILABLE_HOST}/jwks.json"
        else:
            remote = p.jwks.remote
            assert remote is not None  # the model requires exactly one
            provider.jwks.url = _jwks_url(remote, f"{at}.remote", work)
            provider.jwks.refresh_interval.CopyFrom(_duration(remote.cache_duration))
        out.providers.append(provider)
    return out


def _jwks_problem(text: str) -> str | None:
    try:
        document = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        return 'not a JSON Web Key Set (an object with a non-empty "keys" list)'
    return None


def _jwks_url(remote: agwpolicy.RemoteJWKS, where: str, work: _Work) -> str:
    if remote.url is not None:
        return remote.url
    assert remote.backend_ref is not None and remote.jwks_path is not None  # the model's rules
    target = _endpoint(remote.backend_ref, f"{where}.backendRef", work, add_backend=False)
    if target.host == UNAVAILABLE_HOST:
        return f"https://{UNAVAILABLE_HOST}/jwks.json"
    scheme = "https" if target.tls else "http"
    return f"{scheme}://{_host_port(target.host, target.port)}/{remote.jwks_path.lstrip('/')}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _api_keys(a: agwpolicy.APIKeyAuthentication, where: str, work: _Work) -> pb.ApiKeyAuth:
    out = pb.ApiKeyAuth(mode=_MODES[a.mode], location=_location(a.location))
    sources: list[model.Object] = []
    if a.secret_ref is not None:
        ref = a.secret_ref
        secret = work.idx.secrets.get((work.namespace, ref.name))
        if ref.group or (ref.kind and ref.kind != "Secret"):
            work.invalid.append(f"{where}.secretRef: credential kind {ref.group}/{ref.kind} is not supported")
        elif secret is None:
            work.invalid.append(f"{where}.secretRef: Secret {work.namespace}/{ref.name} not found")
        else:
            sources.append(secret)
    elif a.secret_selector is not None:
        sources = secretdata.labelled(work.idx.secrets, work.namespace, a.secret_selector.match_labels)
        if not sources:
            work.invalid.append(f"{where}.secretSelector: no Secret in namespace {work.namespace} matches")
    elif a.config_map_selector is not None:
        labels = a.config_map_selector.match_labels
        sources = secretdata.labelled(work.idx.config_maps, work.namespace, labels)
        if not sources:
            work.invalid.append(
                f"{where}.configMapSelector: no ConfigMap in namespace {work.namespace} matches"
            )
    keys: dict[tuple[str, str], pb.ApiKey] = {}
    for source in sources:
        for name, key in _key_entries(source, where, work):
            if (key.key, key.sha256) in keys:
                work.invalid.append(
                    f"{where}: {_what(source)}: entry {name}: the same key is configured twice"
                )
                continue
            keys[(key.key, key.sha256)] = key
    out.keys.extend(keys[k] for k in sorted(keys))
    if not out.keys:
        out.keys.append(pb.ApiKey(sha256=DENY_ALL_KEY_SHA256))
    return out


def _key_entries(source: model.Object, where: str, work: _Work) -> Iterable[tuple[str, pb.ApiKey]]:
    """The keys of one Secret or ConfigMap; bad entries are reported (by name, never by value)."""
    hashed_only = source.get("kind") == "ConfigMap"
    what = _what(source)
    for name in secretdata.keys(source):
        try:
            value = (secretdata.text(source, name) or "").strip()
        except secretdata.Unreadable as exc:
            work.invalid.append(f"{where}: {exc}")
            continue
        problem, key = _key_entry(value, hashed_only)
        if key is None:
            work.invalid.append(f"{where}: {what}: entry {name}: {problem}")
            continue
        yield name, key


def _digest(key: str) -> str:
    """Keys travel to proxies as SHA-256 digests: never in clear over xDS or in /config_dump."""
    return hashlib.sha256(key.encode()).hexdigest()


def _key_entry(value: str, hashed_only: bool) -> tuple[str, pb.ApiKey | None]:
    if not value:
        return "empty value", None
    if not value.startswith("{"):
        if hashed_only:
            return "a ConfigMap entry must be a JSON object with keyHash", None
        return "", pb.ApiKey(sha256=_digest(value))
    try:
        entry = json.loads(value)
    except ValueError:
        return "not valid JSON", None
    if not isinstance(entry, dict):
        return "not a JSON object", None
    key, key_hash, metadata = entry.get("key"), entry.get("keyHash"), entry.get("metadata")
    if bool(key) == bool(key_hash):
        return "exactly one of key or keyHash must be set", None
    if metadata is not None and not isinstance(metadata, dict):
        return "metadata must be a JSON object", None
    metadata_json = json.dumps(metadata, sort_keys=True) if metadata is not None else ""
    if key:
        if hashed_only:
            return (
                "keys from a ConfigMap must use keyHash, not key, since ConfigMaps are not confidential",
                None,
            )
        if not isinstance(key, str):
            return "key must be a string", None
        return "", pb.ApiKey(sha256=_digest(key), metadata_json=metadata_json)
    match = _KEY_HASH.fullmatch(str(key_hash))
    if match is None:
        return "keyHash must be sha256: followed by 64 hex digits", None
    return "", pb.ApiKey(sha256=match.group(1).lower(), metadata_json=metadata_json)


def _what(obj: model.Object) -> str:
    return f"{obj.get('kind', 'Secret')} {index.namespace_of(obj)}/{index.name_of(obj)}"


def _basic(b: agwpolicy.BasicAuthentication, where: str, work: _Work) -> pb.BasicAuth:
    out = pb.BasicAuth(mode=_MODES[b.mode], location=_location(b.location), realm=b.realm or DEFAULT_REALM)
    lines: list[str] = []
    if b.users is not None:
        lines = _htpasswd(b.users, f"{where}.users", work)
    elif b.secret_ref is not None:
        ref = b.secret_ref
        data_key = ref.key or DEFAULT_HTPASSWD_KEY
        secret = work.idx.secrets.get((work.namespace, ref.name))
        if ref.group or (ref.kind and ref.kind != "Secret"):
            work.invalid.append(f"{where}.secretRef: credential kind {ref.group}/{ref.kind} is not supported")
        elif secret is None:
            work.invalid.append(f"{where}.secretRef: Secret {work.namespace}/{ref.name} not found")
        else:
            try:
                text = secretdata.text(secret, data_key)
            except secretdata.Unreadable as exc:
                work.invalid.append(f"{where}.secretRef: {exc}")
                text = None
            if text is None:
                work.invalid.append(
                    f"{where}.secretRef: Secret {work.namespace}/{ref.name} has no {data_key}"
                )
            else:
                lines = _htpasswd(text.splitlines(), f"{where}.secretRef", work)
    out.htpasswd = "\n".join(lines) if lines else DENY_ALL_HTPASSWD
    return out


def _htpasswd(lines: Sequence[str], where: str, work: _Work) -> list[str]:
    """The usable `user:hash` lines; others are reported by number and user, never by hash."""
    out: list[str] = []
    users: set[str] = set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            work.invalid.append(f"{where}: line {number}: expected user:hash")
        elif not hashed.startswith(HTPASSWD_SCHEMES):
            work.invalid.append(
                f"{where}: line {number} (user {user}): unsupported hash; "
                "use bcrypt (htpasswd -B), apr1 or {SHA}"
            )
        elif user in users:
            work.invalid.append(f"{where}: line {number}: user {user} appears twice")
        else:
            users.add(user)
            out.append(line)
    return out


# --------------------------------------------------------------------------------------------
# Authorization, external authorization


def _authorization(a: agwpolicy.Authorization, where: str, work: _Work) -> pb.Authorization:
    out = pb.Authorization()
    for i, expression in enumerate(a.policy.match_expressions):
        _check_cel(expression, f"{where}.policy.matchExpressions[{i}]", work)
        out.rules.append(pb.AuthorizationRule(kind=_ACTIONS[a.action], expression=expression))
    return out


def _ext_auth(e: agwpolicy.ExtAuth, where: str, work: _Work) -> pb.ExtAuthz:
    out = pb.ExtAuthz(fail_open=e.failure_mode == "FailOpen")
    url_path = ""
    if e.backend_ref is not None:
        out.target.CopyFrom(_endpoint_ref(_endpoint(e.backend_ref, f"{where}.backendRef", work)))
    else:
        assert e.url is not None  # the model requires exactly one
        target, url_path = _url_endpoint(e.url)
        out.target.CopyFrom(pb.BackendRef(host=target))
    if e.grpc is not None:
        out.grpc.SetInParent()
        out.grpc.context.update(e.grpc.context_extensions or {})
        for name, expression in sorted((e.grpc.request_metadata or {}).items()):
            _check_cel(expression, f"{where}.grpc.requestMetadata[{name}]", work)
            out.grpc.metadata[name] = expression
    elif e.http is not None:
        h = e.http
        out.http.SetInParent()
        if url_path:
            out.http.path = json.dumps(url_path)
        for field, value in (("path", h.path), ("redirect", h.redirect)):
            if value is not None:
                _check_cel(value, f"{where}.http.{field}", work)
                setattr(out.http, field, value)
        out.http.include_response_headers.extend(h.allowed_response_headers or ())
        for name, expression in sorted((h.add_request_headers or {}).items()):
            _check_cel(expression, f"{where}.http.addRequestHeaders[{name}]", work)
            out.http.add_request_headers[name] = expression
        out.include_request_headers.extend(h.allowed_request_headers or ())
    if e.forward_body is not None:
        out.include_request_body.CopyFrom(
            pb.ExtAuthzBody(max_request_bytes=byte_count(e.forward_body.max_size), allow_partial_message=True)
        )
    return out


# --------------------------------------------------------------------------------------------
# Rate limits


def _rate_limits(r: agwpolicy.RateLimits, out: pb.TrafficPolicy, where: str, work: _Work) -> None:
    if r.local is not None:
        out.local_rate_limit.SetInParent()
        for limit in r.local:
            out.local_rate_limit.limits.append(
                pb.LocalRateLimit(
                    max_tokens=(limit.requests or limit.tokens or 0) + (limit.burst or 0),
                    tokens_per_fill=limit.requests or limit.tokens or 0,
                    fill_interval=duration_pb2.Duration(seconds=_UNIT_SECONDS[limit.unit]),
                    unit=pb.RATE_LIMIT_REQUESTS if limit.requests is not None else pb.RATE_LIMIT_TOKENS,
                )
            )
    g = r.global_
    if g is not None:
        remote = out.remote_rate_limit
        remote.domain = g.domain
        remote.fail_open = g.failure_mode == "FailOpen"
        if g.backend_ref is not None:
            remote.target.CopyFrom(
                _endpoint_ref(_endpoint(g.backend_ref, f"{where}.global.backendRef", work))
            )
        else:
            assert g.url is not None  # the model requires exactly one
            remote.target.CopyFrom(pb.BackendRef(host=_url_endpoint(g.url)[0]))
        for i, d in enumerate(g.descriptors):
            descriptor = remote.descriptors.add()
            descriptor.unit = pb.RATE_LIMIT_REQUESTS
            for j, entry in enumerate(d.entries):
                _check_cel(entry.expression, f"{where}.global.descriptors[{i}].entries[{j}].expression", work)
                descriptor.entries.append(pb.DescriptorEntry(key=entry.name, value=entry.expression))


# --------------------------------------------------------------------------------------------
# Transformations


def _transformations(t: agwpolicy.Transformation, where: str, work: _Work) -> pb.Transformations:
    out = pb.Transformations()
    for field, spec in (("request", t.request), ("response", t.response)):
        if spec is not None:
            getattr(out, field).CopyFrom(_transform(spec, f"{where}.{field}", work))
    return out


def _transform(t: agwpolicy.ResponseTransform, where: str, work: _Work) -> pb.Transform:
    out = pb.Transform(remove=t.remove or ())
    for field in ("set", "add"):
        for h in getattr(t, field) or ():
            _check_cel(h.value, f"{where}.{field}[{h.name}].value", work)
            getattr(out, field).append(pb.HeaderExpression(name=h.name, expression=h.value))
    if isinstance(t, agwpolicy.Transform) and t.body is not None:
        _check_cel(t.body, f"{where}.body", work)
        out.body = t.body
    return out


# --------------------------------------------------------------------------------------------
# Backend section


def _backend(b: backendpolicy.BackendFull, work: _Work) -> pb.BackendPolicy:
    out = pb.BackendPolicy()
    where = "backend"
    if b.tcp is not None:
        if b.tcp.keepalive is not None:
            work.dropped.append(f"{where}.tcp.keepalive is not supported by agentgw yet")
        if b.tcp.connect_timeout is not None:
            out.connect_timeout.CopyFrom(_duration(b.tcp.connect_timeout))
    if b.http is not None and b.http.request_timeout is not None:
        out.request_timeout.CopyFrom(_duration(b.http.request_timeout))
    if b.tls is not None:
        result = tls.backend_tls(work.namespace, b.tls, f"{where}.tls", work.idx)
        out.tls.CopyFrom(result.tls)
        work.invalid.extend(result.unresolved)
    if b.auth is not None:
        if b.auth.passthrough is not None:
            out.auth_passthrough = True
        for name in ("key", "secretRef", "location", "credentials"):
            if getattr(b.auth, _attribute(name)) is not None:
                work.dropped.append(f"{where}.auth.{name} is not supported by agentgw policies yet")
    if b.ai is not None:
        work.dropped.append(f"{where}.ai is not supported by agentgw policies yet")
    return out


def _attribute(json_name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), json_name)


# --------------------------------------------------------------------------------------------
# Endpoints (backendRef or url) and checks


@dataclasses.dataclass(frozen=True)
class _Target:
    host: str
    port: int
    tls: bool
    backend_key: str = ""


def _endpoint(
    ref: agwpolicy.BackendObjectReference, where: str, work: _Work, add_backend: bool = True
) -> _Target:
    """Where a policy's service is; UNAVAILABLE_HOST (and the problem reported) when it is not."""
    view = gw.BackendObjectReference(
        group=ref.group, kind=ref.kind, name=ref.name, namespace=ref.namespace, port=ref.port
    )
    resolution = work.resolver.resolve(view, work.namespace, KIND, from_group=GROUP)
    backend = resolution.backend
    if backend is None or backend.WhichOneof("kind") != "static":
        if resolution.problem is not None:
            message = resolution.problem.message
        elif backend is None:
            message = f"AgentgatewayBackend {ref.namespace or work.namespace}/{ref.name} is not accepted"
        else:
            message = f"{ref.kind} {ref.namespace or work.namespace}/{ref.name} is not a static backend"
        work.invalid.append(f"{where}: {message}")
        return _Target(UNAVAILABLE_HOST, ref.port or 80, False)
    if add_backend:
        work.backends.append(backend)
    return _Target(backend.static.host, backend.static.port, backend.static.tls, backend.key)


def _endpoint_ref(target: _Target) -> pb.BackendRef:
    if target.backend_key:
        return pb.BackendRef(backend_key=target.backend_key)
    return pb.BackendRef(host=pb.StaticBackend(host=target.host, port=target.port, tls=target.tls))


def _url_endpoint(url: str) -> tuple[pb.StaticBackend, str]:
    """An `http(s)://host[:port][/path]` URL (already checked by the model) -> host, path."""
    parts = urlparse.urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    return pb.StaticBackend(host=parts.hostname or "", port=port, tls=secure), parts.path


@functools.cache
def _cel_env() -> Any:
    return cel.NewEnv()


@functools.lru_cache(maxsize=4096)
def cel_syntax_problem(expression: str) -> str | None:
    """Why `expression` does not parse as CEL (syntax only: the proxy checks the rest), or None."""
    try:
        _cel_env().compile(expression, disable_check=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0].split("<input>:", 1)[-1].strip()
        return first.split(" expecting ", 1)[0]
    return None


def _check_cel(expression: str, where: str, work: _Work) -> None:
    problem = cel_syntax_problem(expression)
    if problem is not None:
        work.invalid.append(f"{where}: invalid CEL expression: {problem}")


_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?[0-9]+))?"
)
_QUANTITY_SUFFIX = {
    "": decimal.Decimal(1),
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "k": decimal.Decimal(10**3),
    "M": decimal.Decimal(10**6),
    "G": decimal.Decimal(10**9),
    "T": decimal.Decimal(10**12),
    "P": decimal.Decimal(10**15),
    "E": decimal.Decimal(10**18),
    **{s: decimal.Decimal(2 ** (10 * (i + 1))) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def byte_count(value: int | str) -> int:
    """A `ByteSize` (an integer or a Kubernetes quantity such as `64Ki`) in bytes, rounded up as
    Kubernetes rounds quantities, within 1 and 2**32 - 1."""
    if isinstance(value, str):
        match = _QUANTITY.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a quantity")
        number, suffix, exponent = match.groups()
        scale = decimal.Decimal(10) ** int(exponent) if exponent else _QUANTITY_SUFFIX[suffix or ""]
        amount = int((decimal.Decimal(number) * scale).to_integral_value(rounding=decimal.ROUND_CEILING))
    else:
        amount = value
    return max(1, min(amount, _UINT32_MAX))
