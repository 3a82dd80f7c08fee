"""AgentgatewayBackend -> one `Backend` resource (or a reason it cannot be one).

In: the raw AgentgatewayBackend objects and the Secrets of the `Index`. Out: per backend a
`Result`: the Backend resource (key `backend/<namespace>/<name>`) and the `Accepted` problem, if
any. Routes point at the resource by key (`controller.translate.backends`); a backend that did
not translate is left out of every gateway, so routes to it answer 500, and its own status says
why (`Accepted=False`, reason `TranslationError`, as agentgateway words it).

What translates today, and what the proxy can run:

- `static` -> StaticBackend (`tls` on when `policies.tls` is set, its options in the
  BackendPolicy's BackendTls: CA bundle, client certificate, SNI, SANs, verification, ALPN;
  a CA or certificate reference that does not resolve is a TranslationError);
- `ai.provider.openai` -> AIBackend: `model`; `host`/`port` override the provider's address
  (TLS then only with `policies.tls`); `path`, or `pathPrefix` + `/chat/completions`;
  `policies.auth.key` or `policies.auth.secretRef` (default key `Authorization`, a leading
  `Bearer ` stripped) as the provider key;
- `policies.tcp.connectTimeout` and `policies.http.requestTimeout` -> BackendPolicy.

Everything else (`mcp`, `a2a`, `ai.groups`, other providers, auth
`passthrough`/`location`/`credentials`, `policies.ai`, keepalives) is a `TranslationError` that
names the field: never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pydantic
from google.protobuf import duration_pb2

from api import errors
from api.gateway import conditions
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.v1alpha1 import backend as agw
from api.v1alpha1 import backendpolicy, base, common, validation
from controller.translate import index, model, secretdata, status, tls

DEFAULT_SECRET_KEY = "Authorization"
"""The Secret key a `secretRef` reads when it names none (agentgateway's default)."""

OPENAI_CHAT_SUFFIX = "/chat/completions"
"""Appended to `pathPrefix`, which replaces OpenAI's `/v1`."""

ACCEPTED_MESSAGE = "Backend successfully accepted"

_OTHER_PROVIDERS = ("azureopenai", "azure", "anthropic", "gemini", "vertexai", "bedrock", "custom")
"""The `ai.provider` kinds the proxy cannot speak yet (the model allows exactly one kind)."""


class Untranslatable(Exception):
    """The backend uses something agentgw cannot translate; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Result:
    backend: pb.Backend | None
    """None when the backend did not translate."""
    problem: status.Problem | None


def key(namespace: str, name: str) -> str:
    return f"backend/{namespace}/{name}"


def translate_all(idx: index.Index) -> dict[index.NamespacedName, Result]:
    return {ref: translate(obj, idx) for ref, obj in sorted(idx.backends.items())}


def translate(obj: model.Object, idx: index.Index) -> Result:
    namespace, name = index.namespace_of(obj), index.name_of(obj)
    try:
        parsed = validation.parse({k: v for k, v in obj.items() if k != "status"})
    except errors.ConfigError as exc:
        return _failed("invalid backend: " + "; ".join(exc.problems))
    assert isinstance(parsed, agw.AgentgatewayBackend)
    try:
        backend = _backend(namespace, name, parsed.spec, idx)
    except Untranslatable as exc:
        return _failed(f"failed to translate backend: {exc}")
    return Result(backend=backend, problem=None)


def _failed(message: str) -> Result:
    return Result(backend=None, problem=status.Problem(conditions.TRANSLATION_ERROR, message))


def _backend(
    namespace: str,
    name: str,
    spec: agw.AgentgatewayBackendSpec,
    idx: index.Index,
) -> pb.Backend:
    policies = spec.policies
    out = pb.Backend(key=key(namespace, name), name=f"{namespace}/{name}")
    tls = _tls_on(policies)
    if spec.static is not None:
        _no_auth(policies, "static")
        out.static.CopyFrom(pb.StaticBackend(host=spec.static.host, port=spec.static.port, tls=tls))
    elif spec.ai is not None:
        out.ai.CopyFrom(_ai(namespace, spec.ai, policies, idx.secrets))
    else:
        kind = next(n for n in ("mcp", "a2a") if getattr(spec, n) is not None)
        raise Untranslatable(f"spec.{kind} is not supported by agentgw yet")
    connection = _connection_policy(namespace, policies, idx)
    if connection is not None:
        out.policies.CopyFrom(connection)
    return out


# --------------------------------------------------------------------------------------------
# AI


def _ai(
    namespace: str,
    ai: agw.AIBackend,
    policies: backendpolicy.BackendFull | None,
    secrets: Mapping[index.NamespacedName, model.Object],
) -> pb.AIBackend:
    if ai.provider is None:
        raise Untranslatable("spec.ai.groups is not supported by agentgw yet")
    provider = ai.provider
    if provider.openai is None:
        chosen = next(n for n in _OTHER_PROVIDERS if getattr(provider, n) is not None)
        raise Untranslatable(f"spec.ai.provider.{chosen} is not supported by agentgw yet")
    out = pb.AIBackend(openai=pb.OpenAIProvider(model=provider.openai.model or ""))
    if provider.host is not None:
        out.host, out.port, out.tls = provider.host, provider.port or 0, _tls_on(policies)
    if provider.path is not None:
        out.path = provider.path
    elif provider.path_prefix is not None:
        out.path = provider.path_prefix.rstrip("/") + OPENAI_CHAT_SUFFIX
    auth = policies.auth if policies is not None else None
    if auth is not None:
        out.auth.key = _auth_key(namespace, auth, secrets)
    if policies is not None and policies.ai is not None:
        raise Untranslatable(f"spec.policies.ai.{_first_set(policies.ai)} is not supported by agentgw yet")
    return out


def _auth_key(
    namespace: str, auth: backendpolicy.BackendAuth, secrets: Mapping[index.NamespacedName, model.Object]
) -> str:
    for unsupported in ("passthrough", "location", "credentials"):
        if base.present(auth, unsupported):
            raise Untranslatable(f"spec.policies.auth.{unsupported} is not supported by agentgw yet")
    if auth.key is not None:
        return auth.key
    assert auth.secret_ref is not None  # the model requires one kind
    return secret_value(namespace, auth.secret_ref, secrets)


def secret_value(
    namespace: str, ref: common.LocalSecretKeyRef, secrets: Mapping[index.NamespacedName, model.Object]
) -> str:
    """The credential a `secretRef` names; under the default key a leading `Bearer ` is stripped."""
    if ref.group or (ref.kind and ref.kind != "Secret"):
        raise Untranslatable(f"credential kind {ref.group}/{ref.kind} is not supported by agentgw yet")
    secret = secrets.get((namespace, ref.name))
    if secret is None:
        raise Untranslatable(f"secret {namespace}/{ref.name} not found")
    data_key = ref.key or DEFAULT_SECRET_KEY
    try:
        value = secretdata.text(secret, data_key)
    except secretdata.Unreadable as exc:
        raise Untranslatable(str(exc)) from exc
    if value is None:
        raise Untranslatable(f"secret {namespace}/{ref.name} missing {data_key} value")
    value = value.strip()
    if ref.key is None and value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


# --------------------------------------------------------------------------------------------
# Connection policies


def _tls_on(policies: backendpolicy.BackendFull | None) -> bool:
    """`policies.tls` (even `{}`) turns TLS on; its options go in the BackendPolicy."""
    return policies is not None and policies.tls is not None


def _no_auth(policies: backendpolicy.BackendFull | None, kind: str) -> None:
    if policies is not None and policies.auth is not None:
        raise Untranslatable(f"spec.policies.auth is supported on ai backends only, not {kind}")


def _connection_policy(
    namespace: str, policies: backendpolicy.BackendFull | None, idx: index.Index
) -> pb.BackendPolicy | None:
    if policies is None:
        return None
    out = pb.BackendPolicy()
    if policies.tcp is not None:
        if policies.tcp.keepalive is not None:
            raise Untranslatable("spec.policies.tcp.keepalive is not supported by agentgw yet")
        if policies.tcp.connect_timeout is not None:
            out.connect_timeout.CopyFrom(_duration(policies.tcp.connect_timeout))
    if policies.http is not None and policies.http.request_timeout is not None:
        out.request_timeout.CopyFrom(_duration(policies.http.request_timeout))
    if policies.tls is not None and policies.tls.model_fields_set:
        result = tls.backend_tls(namespace, policies.tls, "spec.policies.tls", idx)
        if result.unresolved:
            raise Untranslatable("; ".join(result.unresolved))
        out.tls.CopyFrom(result.tls)
    return out if out.ListFields() else None


def _duration(text: str) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(common.duration_ms(text))
    return d


def _first_set(obj: pydantic.BaseModel) -> str:
    """The JSON name of the first field set on `obj` (for messages)."""
    return base.camel(sorted(obj.model_fields_set)[0])
