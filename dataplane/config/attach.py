"""Policy attachment: merge traffic policies by precedence and compile security policies to steps.

Pure (no I/O, no asyncio), part of `config.compile`.

Precedence, field by field (Gateway API policy attachment, agentgateway's order): a field set
at a more specific level wins — gateway < listener < route < rule. A level's sources are its inline
policies (a listener's or route's own `policies`) and the Policy resources targeting it;
between sources of one level the inline policy wins, then the older Policy (creation time,
then key). A Policy with `override` wins over more specific levels for the fields it sets
(`strategy.inheritance: Override`); between several overrides the least specific wins.

Security fields (authentication, ext_authz, authorization, rate limits, transformations,
CSRF) compile to `context.Step`s once per *source*: every route that inherits a listener's
rate limit shares its token buckets, and a thousand routes under one JWT policy share one
verifier. Steps are also reused from the previous compilation when their source and settings
are unchanged, so a reload does not reset rate-limit buckets or refetch JWKS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.policies import apikey, authz, basicauth, cel, context, csrf, extauthz, jwt, ratelimit
from dataplane.policies import transform as transform_policy

FIELDS = tuple(f.name for f in pb.TrafficPolicy.DESCRIPTOR.fields)
REPEATED = frozenset(f.name for f in pb.TrafficPolicy.DESCRIPTOR.fields if f.is_repeated)

SECURITY_ORDER = (
    "csrf",
    "jwt_auth",
    "api_key",
    "basic_auth",
    "ext_authz",
    "authorization",
    "local_rate_limit",
    "remote_rate_limit",
    "transformations",
)
"""The order security steps run in, after CORS (agentgateway's order, CSRF first)."""

Resolve = Callable[[pb.BackendRef], tuple[str, int, bool]]
"""(host, port, tls) of a policy's service (ext_authz, rate limit service)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """One place policies come from: an inline `policies` or a Policy resource."""

    key: str
    policy: pb.TrafficPolicy
    override: bool = False
    order: tuple[int, int, str] = (0, 0, "")
    """Sort key within a level: inline first, then older Policies, then by key."""


def has(p: pb.TrafficPolicy, field: str) -> bool:
    if field in REPEATED:
        return len(getattr(p, field)) > 0
    return p.HasField(field)


def merge(levels: Sequence[Sequence[Source]]) -> dict[str, Source]:
    """For each field set anywhere, the source whose value applies (see the module docstring)."""
    ordered = [sorted(level, key=lambda s: s.order) for level in levels]
    out: dict[str, Source] = {}
    for field in FIELDS:
        chosen: Source | None = None
        for level in ordered:  # least specific first: the first override wins
            chosen = next((s for s in level if s.override and has(s.policy, field)), None)
            if chosen is not None:
                break
        if chosen is None:
            for level in reversed(ordered):  # most specific first
                chosen = next((s for s in level if has(s.policy, field)), None)
                if chosen is not None:
                    break
        if chosen is not None:
            out[field] = chosen
    return out


def merged_policy(chosen: dict[str, Source]) -> pb.TrafficPolicy:
    """A TrafficPolicy with each chosen field copied from its source."""
    out = pb.TrafficPolicy()
    for field, source in chosen.items():
        value = getattr(source.policy, field)
        if field in REPEATED:
            getattr(out, field).extend(value)
        else:
            getattr(out, field).CopyFrom(value)
    return out


class StepCache:
    """Compiled steps by (source key, field); survives one compilation into the next when the
    field's settings are unchanged."""

    def __init__(self, previous: StepCache | None, resolve: Resolve, max_body: int) -> None:
        self._previous = previous._all if previous is not None else {}
        self._all: dict[tuple[str, str], tuple[bytes, Any]] = {}
        self._resolve = resolve
        self._max_body = max_body

    def get(self, source: Source, field: str, where: str) -> Any:
        """The compiled form of one security field of a source; raises ConfigError."""
        key = (source.key, field)
        found = self._all.get(key)
        if found is not None:
            return found[1]
        msg = getattr(source.policy, field)
        wire = msg.SerializeToString(deterministic=True)
        old = self._previous.get(key)
        if old is not None and old[0] == wire:
            compiled = old[1]
        else:
            compiled = self._compile(field, msg, f"{where}.{field}")
        self._all[key] = (wire, compiled)
        return compiled

    def _compile(self, field: str, msg: Any, where: str) -> Any:
        if field == "csrf":
            return csrf.compile(msg, where)
        if field == "jwt_auth":
            return jwt.compile(msg, where)
        if field == "api_key":
            return apikey.compile(msg, where)
        if field == "basic_auth":
            return basicauth.compile(msg, where)
        if field == "ext_authz":
            return extauthz.compile(msg, where, cel.compile, self._target(msg.target, where))
        if field == "authorization":
            return authz.compile(msg, where, cel.compile)
        if field == "local_rate_limit":
            return ratelimit.compile_local(msg, where, cel.compile)
        if field == "remote_rate_limit":
            return ratelimit.compile_remote(msg, where, cel.compile, self._target(msg.target, where))
        if field == "transformations":
            request = (
                transform_policy.compile_request(msg.request, f"{where}.request", cel.compile, self._max_body)
                if msg.HasField("request")
                else None
            )
            response = (
                transform_policy.ResponseTransform(msg.response, f"{where}.response", cel.compile)
                if msg.HasField("response")
                else None
            )
            return (request, response)
        raise AssertionError(field)

    def _target(self, ref: pb.BackendRef, where: str) -> tuple[str, int, bool]:
        try:
            return self._resolve(ref)
        except LookupError as exc:
            raise api_errors.ConfigError([f"{where}.target: {exc}"]) from exc

    def check(self, source: Source, where: str) -> None:
        """Compile every security field of a source now, so a bad one is reported against it."""
        for field in SECURITY_ORDER:
            if has(source.policy, field):
                self.get(source, field, where)


@dataclasses.dataclass(frozen=True, slots=True)
class Security:
    steps: tuple[context.Step, ...]
    response: transform_policy.ResponseTransform | None


NO_SECURITY = Security((), None)


def security(chosen: dict[str, Source], cache: StepCache, where: str) -> Security:
    steps: list[context.Step] = []
    response = None
    for field in SECURITY_ORDER:
        source = chosen.get(field)
        if source is None:
            continue
        compiled = cache.get(source, field, where)
        if field == "transformations":
            request, response = compiled
            if request is not None:
                steps.append(request)
        else:
            steps.append(compiled)
    if not steps and response is None:
        return NO_SECURITY
    return Security(tuple(steps), response)


TARGET_PREFIX = {
    "gateway": "gateway",
    "listener_key": "listener",
    "route_key": "route",
    "rule_key": "rule",
    "backend_key": "backend",
}
"""PolicyTarget kind -> the level name in "<level>:<key>" lookups."""


def policy_sources(policies: Iterable[pb.Policy]) -> dict[str, list[Source]]:
    """Policy resources by target: "gateway:<name>", "listener:<key>", "route:<key>", "rule:<key>",
    "backend:<key>"."""
    out: dict[str, list[Source]] = {}
    for p in policies:
        kind = p.target.WhichOneof("kind")
        if kind is None:
            continue
        value = getattr(p.target, kind)
        out.setdefault(f"{TARGET_PREFIX[kind]}:{value}", []).append(
            Source(
                key=p.key, policy=p.traffic, override=p.override, order=(1, p.creation_unix_seconds, p.key)
            )
        )
    return out
