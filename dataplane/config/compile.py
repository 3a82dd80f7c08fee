"""Compile xDS resources into immutable runtime tables. Pure: no I/O, no asyncio.

In: a list of `resource_pb2.Resource` (from the standalone loader or the xDS client). Out: a
`Compiled` holding `tables.Tables` and the problems found, keyed by resource key. A resource
with a problem is left out and the rest still compile, so the xDS client can NACK one resource
and keep the others; the standalone loader rejects the whole file when any problem exists.

Regular expressions are compiled here, weights summed, policies merged (listener CORS applies
to routes without their own) — nothing of this is left for the request path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Iterable

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import routing, tables, tls
from dataplane.config import attach


@dataclasses.dataclass(frozen=True)
class Compiled:
    tables: tables.Tables
    problems: dict[str, str]
    """Resource key -> what is wrong with it. Those resources are not in `tables`."""


class _Invalid(Exception):
    pass


def resource_key(r: pb.Resource) -> str:
    kind = r.WhichOneof("kind")
    return getattr(r, kind).key if kind else ""


def version_of(resources: Iterable[pb.Resource]) -> str:
    """Content hash of a resource set, independent of order."""
    digests = sorted(hashlib.sha256(r.SerializeToString(deterministic=True)).digest() for r in resources)
    return hashlib.sha256(b"".join(digests)).hexdigest()[:16]


_last_steps: attach.StepCache | None = None
"""The previous compilation's security steps, reused when unchanged (rate-limit buckets and
JWKS caches survive a reload)."""

MAX_BODY = 2 * 1024 * 1024
"""Largest request body a transformation reads (frontendPolicies.http.maxBufferSize default)."""


def compile_resources(resources: list[pb.Resource]) -> Compiled:
    global _last_steps
    problems: dict[str, str] = {}
    policies: dict[str, pb.Policy] = {}
    binds: dict[str, pb.Bind] = {}
    listeners: dict[str, pb.Listener] = {}
    routes: list[pb.Route] = []
    backends: dict[str, pb.Backend] = {}
    seen: set[str] = set()
    for r in resources:
        kind = r.WhichOneof("kind")
        key = resource_key(r)
        if not key:
            problems[f"<{kind or 'empty'} without key>"] = "resource has no key"
            continue
        if key in seen:
            problems[key] = "duplicate resource key"
            continue
        seen.add(key)
        if kind == "bind":
            binds[key] = r.bind
        elif kind == "listener":
            listeners[key] = r.listener
        elif kind == "route":
            routes.append(r.route)
        elif kind == "backend":
            backends[key] = r.backend
        elif kind == "policy":
            policies[key] = r.policy
        else:
            problems[key] = "unknown resource kind"

    targets: dict[str, tables.Target] = {}

    def resolve(ref: pb.BackendRef) -> tuple[str, int, bool]:
        if ref.WhichOneof("kind") == "host":
            return ref.host.host, ref.host.port, ref.host.tls
        found = backends.get(ref.backend_key)
        if found is None:
            raise LookupError(f"backend {ref.backend_key!r} does not exist")
        if found.WhichOneof("kind") != "static":
            raise LookupError(f"backend {ref.backend_key!r} is not a static host")
        return found.static.host, found.static.port, found.static.tls

    cache = attach.StepCache(_last_steps, resolve, MAX_BODY)
    good_policies = _checked_policies(policies, cache, problems)
    by_target = attach.policy_sources(good_policies)
    for key, b in backends.items():
        try:
            policy = _backend_policy(b, [p for p in good_policies if p.target.backend_key == key])
            if b.WhichOneof("kind") == "ai":
                targets[key] = _ai_target(b.name, b.ai, policy, cache, key)
            else:
                targets[key] = _target(b.name, b.static, policy, cache, key)
        except (_Invalid, api_errors.ConfigError) as exc:
            problems[key] = _message(exc)

    ports: dict[int, str] = {}
    for key, bind in list(binds.items()):
        if not 0 < bind.port < 65536:
            problems[key] = f"invalid port {bind.port}"
            del binds[key]
        elif bind.port in ports:
            problems[key] = f"port {bind.port} is already bound by {ports[bind.port]}"
            del binds[key]
        else:
            ports[bind.port] = key

    listener_levels: dict[str, list[list[attach.Source]]] = {}
    for key, listener in list(listeners.items()):
        inline = [attach.Source(key=key, policy=listener.policies)] if listener.HasField("policies") else []
        try:
            for source in inline:
                cache.check(source, "policies")
        except api_errors.ConfigError as exc:
            problems[key] = _message(exc)
            del listeners[key]
            continue
        listener_levels[key] = [
            by_target.get(f"gateway:{listener.gateway_name}", []),
            inline + by_target.get(f"listener:{key}", []),
        ]

    compiled_routes: dict[str, list[tables.Route]] = {}
    matches: dict[str, list[routing.Match]] = {}
    backend_defaults = _backend_defaults(good_policies)
    for route in routes:
        owner = listeners.get(route.listener_key)
        if owner is None or owner.bind_key not in binds:
            problems[route.key] = f"listener {route.listener_key!r} does not exist"
            continue
        listener = owner
        try:
            inline = (
                [attach.Source(key=route.key, policy=route.policies)] if route.HasField("policies") else []
            )
            levels = [
                *listener_levels[listener.key],
                by_target.get(f"route:{route.key}", []),
                inline + by_target.get(f"rule:{route.key}", []),
            ]
            inherited = _inherited_backend_policy(
                backend_defaults,
                (
                    f"gateway:{listener.gateway_name}",
                    f"listener:{listener.key}",
                    f"route:{route.key}",
                    f"rule:{route.key}",
                ),
            )
            rt, ms = _route(route, listener, targets, levels, cache, inherited)
        except (_Invalid, api_errors.ConfigError) as exc:
            problems[route.key] = _message(exc)
            continue
        compiled_routes.setdefault(listener.key, []).append(rt)
        matches.setdefault(listener.key, []).extend(ms)

    by_bind: dict[str, list[tables.Listener]] = {}
    for key, listener in listeners.items():
        if listener.bind_key not in binds:
            problems[key] = f"bind {listener.bind_key!r} does not exist"
            continue
        cert = None
        if listener.protocol == pb.HTTPS:
            try:
                cert = tls.server_cert(listener.tls, "tls")
            except api_errors.ConfigError as exc:
                problems[key] = _message(exc)
                continue
        by_bind.setdefault(listener.bind_key, []).append(
            tables.Listener(
                key=key,
                name=listener.name,
                gateway=listener.gateway_name,
                hostname=listener.hostname,
                routes=routing.RouteIndex(matches.get(key, [])),
                cert=cert,
                client_auth=listener.protocol == pb.HTTPS
                and bool(listener.tls.root_file or listener.tls.root_pem),
            )
        )
    out_binds: dict[int, tables.Bind] = {}
    for key, bind in binds.items():
        ls = by_bind.get(key, [])
        secure = [lis for lis in ls if lis.cert is not None]
        if secure and len(secure) != len(ls):
            for lis in ls:
                problems[lis.key] = f"port {bind.port} mixes HTTP and HTTPS listeners"
            problems[key] = f"port {bind.port} mixes HTTP and HTTPS listeners"
            continue
        out_binds[bind.port] = tables.Bind(
            key=key,
            port=bind.port,
            listeners=routing.HostIndex(([lis.hostname] if lis.hostname else [], lis) for lis in ls),
            tls=tls.ServerTls([(lis.hostname, lis.cert) for lis in secure if lis.cert is not None])
            if secure
            else None,
        )
    good = [r for r in resources if resource_key(r) not in problems]
    _last_steps = cache
    return Compiled(
        tables=tables.Tables(
            binds=out_binds,
            version=version_of(good),
            route_count=sum(len(v) for v in compiled_routes.values()),
        ),
        problems=problems,
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, api_errors.ConfigError):
        return "; ".join(exc.problems)
    return str(exc)


BACKEND_TRAFFIC_FIELDS = frozenset({"authorization"})
"""TrafficPolicy fields a Policy targeting a backend may set (the rest are route-level)."""


def _checked_policies(
    policies: dict[str, pb.Policy], cache: attach.StepCache, problems: dict[str, str]
) -> list[pb.Policy]:
    """Policies whose target is set and whose security fields compile; the others are problems."""
    good = []
    for key, p in policies.items():
        kind = p.target.WhichOneof("kind")
        if kind is None:
            problems[key] = "policy has no target"
            continue
        if kind == "backend_key":
            extra = [f for f in attach.FIELDS if attach.has(p.traffic, f) and f not in BACKEND_TRAFFIC_FIELDS]
            if extra:
                problems[key] = f"traffic.{extra[0]} cannot target a backend (only authorization can)"
                continue
        try:
            cache.check(attach.Source(key=key, policy=p.traffic), "traffic")
        except api_errors.ConfigError as exc:
            problems[key] = _message(exc)
            continue
        good.append(p)
    return good


def _overlay(out: pb.BackendPolicy, top: pb.BackendPolicy) -> None:
    """Copy every field set in `top` over `out`."""
    for field, value in top.ListFields():
        if field.is_repeated:
            getattr(out, field.name)[:] = value
        elif field.message_type is not None:
            getattr(out, field.name).CopyFrom(value)
        else:
            setattr(out, field.name, value)


def _backend_defaults(policies: list[pb.Policy]) -> dict[str, list[pb.Policy]]:
    """Policies with a `backend` section on a gateway, listener, route or rule target."""
    out: dict[str, list[pb.Policy]] = {}
    for p in policies:
        kind = p.target.WhichOneof("kind")
        if p.HasField("backend") and kind is not None and kind != "backend_key":
            out.setdefault(f"{attach.TARGET_PREFIX[kind]}:{getattr(p.target, kind)}", []).append(p)
    return out


def _inherited_backend_policy(
    defaults: dict[str, list[pb.Policy]], levels: tuple[str, ...]
) -> pb.BackendPolicy | None:
    """The backend defaults a route's backends inherit: field by field, the most specific level
    wins, and within a level the oldest policy."""
    if not defaults:
        return None
    found = [defaults.get(level, []) for level in levels]
    if not any(found):
        return None
    out = pb.BackendPolicy()
    for level in found:  # least specific first, so more specific levels overwrite
        for p in sorted(level, key=lambda p: (p.creation_unix_seconds, p.key), reverse=True):
            _overlay(out, p.backend)
    return out


def _backend_policy(b: pb.Backend, targeted: list[pb.Policy]) -> pb.BackendPolicy | None:
    """A backend's own policies with the Policy resources targeting it merged over them, field
    by field; between Policies the oldest wins a field (Gateway API's conflict rule)."""
    if not targeted:
        return b.policies if b.HasField("policies") else None
    out = pb.BackendPolicy()
    if b.HasField("policies"):
        out.CopyFrom(b.policies)
    for p in sorted(targeted, key=lambda p: (p.creation_unix_seconds, p.key), reverse=True):
        _overlay(out, p.backend)
        if p.traffic.HasField("authorization"):
            out.authorization.CopyFrom(p.traffic.authorization)
    return out


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _Invalid(f"{where}: invalid regular expression {pattern!r}: {exc}") from exc


def _header_ops(m: pb.HeaderModifier) -> tables.HeaderOps:
    return tables.HeaderOps(
        add=tuple((h.name.lower().encode(), h.value.encode()) for h in m.add),
        set=tuple((h.name.lower().encode(), h.value.encode()) for h in m.set),
        remove=frozenset(n.lower().encode() for n in m.remove),
    )


def _authority(a: pb.AuthorityRewrite) -> tables.Authority | None:
    kind = a.WhichOneof("kind")
    if kind == "full":
        return tables.Authority(full=a.full)
    if kind == "host":
        return tables.Authority(host=a.host)
    if kind == "port":
        return tables.Authority(port=a.port)
    if kind == "auto":
        return tables.Authority(auto=True)
    return None


def _path_change(p: pb.PathRewrite) -> tables.PathChange | None:
    kind = p.WhichOneof("kind")
    if kind == "full":
        return tables.PathChange(full=p.full)
    if kind == "prefix":
        return tables.PathChange(prefix=p.prefix)
    return None


def _redirect(r: pb.RequestRedirect) -> tables.Redirect:
    return tables.Redirect(
        scheme=r.scheme or None,
        authority=_authority(r.authority) if r.HasField("authority") else None,
        path=_path_change(r.path) if r.HasField("path") else None,
        status=r.status or 302,
    )


def _seconds(d: object) -> float:
    return d.ToNanoseconds() / 1e9  # type: ignore[attr-defined, no-any-return]


def _backend_steps(
    policy: pb.BackendPolicy, cache: attach.StepCache | None, key: str
) -> tuple[tables.Step, ...]:
    if cache is None or not policy.HasField("authorization"):
        return ()
    source = attach.Source(key=f"backend:{key}", policy=pb.TrafficPolicy(authorization=policy.authorization))
    return (cache.get(source, "authorization", "policies"),)


def _target(
    name: str,
    static: pb.StaticBackend,
    policy: pb.BackendPolicy | None,
    cache: attach.StepCache | None = None,
    key: str = "",
) -> tables.Target:
    if not static.host or not 0 < static.port < 65536:
        raise _Invalid(f"backend {name!r}: needs a host and a port in 1..65535")
    if policy is None:
        return tables.Target(
            name=name,
            host=static.host,
            port=static.port,
            tls=tls.client_tls(None, static.host, f"backend {name!r}") if static.tls else None,
        )
    client_tls = None
    if static.tls or policy.HasField("tls"):
        client_tls = tls.client_tls(
            policy.tls if policy.HasField("tls") else None, static.host, f"backend {name!r}: policies.tls"
        )
    return tables.Target(
        name=name,
        host=static.host,
        port=static.port,
        tls=client_tls,
        request_headers=_header_ops(policy.request_header_modifier)
        if policy.HasField("request_header_modifier")
        else None,
        response_headers=_header_ops(policy.response_header_modifier)
        if policy.HasField("response_header_modifier")
        else None,
        redirect=_redirect(policy.request_redirect) if policy.HasField("request_redirect") else None,
        request_timeout=_seconds(policy.request_timeout) if policy.HasField("request_timeout") else None,
        connect_timeout=_seconds(policy.connect_timeout) if policy.HasField("connect_timeout") else None,
        steps=_backend_steps(policy, cache, key or name),
        auth_passthrough=policy.auth_passthrough,
        http2=policy.http_version == pb.HTTP_VERSION_HTTP2,
    )


OPENAI = ("api.openai.com", 443, "/v1/chat/completions")
"""OpenAI's default host, port (TLS) and chat completions path."""


def _ai_target(
    name: str, ai: pb.AIBackend, policy: pb.BackendPolicy | None, cache: attach.StepCache, key: str
) -> tables.Target:
    """An AI backend: provider defaults, overridden by host/port/path (e.g. a local fake in tests)."""
    if ai.WhichOneof("provider") != "openai":
        raise _Invalid(f"backend {name!r}: AI provider {ai.WhichOneof('provider')!r} is not supported yet")
    host, port, path = OPENAI
    tls = True
    if ai.host:
        host, port, tls = ai.host, ai.port or 443, ai.tls
    elif ai.port:
        port = ai.port
    key = ai.auth.key.strip() if ai.HasField("auth") else ""
    if key.lower().startswith("bearer "):
        key = key[7:].strip()
    provider = tables.AIProvider(
        provider="openai",
        path=ai.path or path,
        model=ai.openai.model,
        authorization=f"Bearer {key}".encode() if key else None,
    )
    base = _target(name, pb.StaticBackend(host=host, port=port, tls=tls), policy, cache, key)
    return dataclasses.replace(base, ai=provider)


def _ref(
    ref: pb.BackendRef,
    targets: dict[str, tables.Target],
    policy: pb.BackendPolicy | None,
    cache: attach.StepCache | None = None,
    key: str = "",
) -> tables.Target:
    kind = ref.WhichOneof("kind")
    if kind == "host":
        return _target(f"{ref.host.host}:{ref.host.port}", ref.host, policy, cache, key)
    if kind == "backend_key":
        base = targets.get(ref.backend_key)
        if base is None:
            raise _Invalid(f"backend {ref.backend_key!r} does not exist")
        if policy is None:
            return base
        own = _target(
            base.name,
            pb.StaticBackend(host=base.host, port=base.port, tls=base.tls is not None),
            policy,
            cache,
            key,
        )
        return dataclasses.replace(
            own,
            request_headers=own.request_headers or base.request_headers,
            response_headers=own.response_headers or base.response_headers,
            redirect=own.redirect or base.redirect,
            request_timeout=own.request_timeout or base.request_timeout,
            connect_timeout=own.connect_timeout or base.connect_timeout,
            tls=own.tls or base.tls,
            ai=base.ai,
            steps=base.steps + own.steps,
            auth_passthrough=own.auth_passthrough or base.auth_passthrough,
            http2=own.http2 if policy.http_version != pb.HTTP_VERSION_UNSPECIFIED else base.http2,
        )
    raise _Invalid("backend reference is empty")


def _inherit(
    target: tables.Target, inherited: pb.BackendPolicy, cache: attach.StepCache, key: str
) -> tables.Target:
    """A backend with the defaults of the policies above it; its own settings win."""
    extra = _target(
        target.name,
        pb.StaticBackend(host=target.host, port=target.port, tls=target.tls is not None),
        inherited,
        cache,
        key,
    )
    return dataclasses.replace(
        target,
        request_headers=target.request_headers or extra.request_headers,
        response_headers=target.response_headers or extra.response_headers,
        redirect=target.redirect or extra.redirect,
        request_timeout=target.request_timeout or extra.request_timeout,
        connect_timeout=target.connect_timeout or extra.connect_timeout,
        tls=target.tls if target.tls is not None else extra.tls,
        steps=extra.steps + target.steps,
        auth_passthrough=target.auth_passthrough or extra.auth_passthrough,
        http2=target.http2 or extra.http2,
    )


def _cors(c: pb.Cors) -> tables.Cors:
    patterns = []
    exact = set()
    for origin in c.allow_origins:
        if origin != "*" and "*" in origin:
            patterns.append(re.compile(re.escape(origin).replace(r"\*", "[^/]*")))
        else:
            exact.add(origin)
    return tables.Cors(
        allow_any_origin="*" in exact,
        allow_origins=frozenset(exact),
        origin_patterns=tuple(patterns),
        allow_credentials=c.allow_credentials,
        allow_methods=", ".join(c.allow_methods).encode(),
        allow_headers=", ".join(c.allow_headers).encode(),
        expose_headers=", ".join(c.expose_headers).encode(),
        max_age=str(int(_seconds(c.max_age))).encode() if c.HasField("max_age") else b"",
    )


def _policy(
    p: pb.TrafficPolicy, targets: dict[str, tables.Target], secured: attach.Security
) -> tables.RoutePolicy:
    timeouts = tables.Timeouts()
    if p.HasField("timeout"):
        t = p.timeout
        timeouts = tables.Timeouts(
            request=_seconds(t.request_timeout) if t.HasField("request_timeout") else None,
            backend=_seconds(t.backend_request_timeout) if t.HasField("backend_request_timeout") else None,
        )
    retry = None
    if p.HasField("retry") and p.retry.attempts > 1:
        retry = tables.Retry(
            attempts=p.retry.attempts,
            backoff=_seconds(p.retry.backoff) if p.retry.HasField("backoff") else 0.0,
            codes=frozenset(p.retry.codes),
        )
    cors = p.cors if p.HasField("cors") else None
    return tables.RoutePolicy(
        request_headers=_header_ops(p.request_header_modifier)
        if p.HasField("request_header_modifier")
        else None,
        response_headers=_header_ops(p.response_header_modifier)
        if p.HasField("response_header_modifier")
        else None,
        redirect=_redirect(p.request_redirect) if p.HasField("request_redirect") else None,
        rewrite=tables.Rewrite(
            authority=_authority(p.url_rewrite.authority) if p.url_rewrite.HasField("authority") else None,
            path=_path_change(p.url_rewrite.path) if p.url_rewrite.HasField("path") else None,
        )
        if p.HasField("url_rewrite")
        else None,
        mirrors=tuple(
            tables.Mirror(target=_ref(m.backend, targets, None), percentage=m.percentage)
            for m in p.request_mirrors
        ),
        direct_status=p.direct_response.status if p.HasField("direct_response") else None,
        direct_body=p.direct_response.body if p.HasField("direct_response") else b"",
        timeouts=timeouts,
        retry=retry,
        cors=_cors(cors) if cors is not None else None,
        steps=secured.steps,
        response_transform=secured.response,
    )


def _route(
    route: pb.Route,
    listener: pb.Listener,
    targets: dict[str, tables.Target],
    levels: list[list[attach.Source]],
    cache: attach.StepCache,
    inherited: pb.BackendPolicy | None = None,
) -> tuple[tables.Route, list[routing.Match]]:
    targets_out = tuple(
        _ref(b.ref, targets, b.policies if b.HasField("policies") else None, cache, f"{route.key}#{i}")
        for i, b in enumerate(route.backends)
    )
    if inherited is not None:
        targets_out = tuple(_inherit(t, inherited, cache, f"{route.key}#inherited") for t in targets_out)
    if not any(levels[:-1]) and len(levels[-1]) <= 1:
        merged = levels[-1][0].policy if levels[-1] else None  # the common case: one source
        secured = (
            attach.security(
                {f: levels[-1][0] for f in attach.SECURITY_ORDER if attach.has(merged, f)}, cache, "policies"
            )
            if merged is not None and any(attach.has(merged, f) for f in attach.SECURITY_ORDER)
            else attach.NO_SECURITY
        )
    else:
        chosen = attach.merge(levels)
        merged = attach.merged_policy(chosen)
        secured = attach.security(chosen, cache, "policies")
    weights = tuple(itertools.accumulate(b.weight for b in route.backends))
    rt = tables.Route(
        key=route.key,
        name=route.name,
        namespace=route.namespace,
        rule_name=route.rule_name,
        gateway=listener.gateway_name,
        listener=listener.name,
        hostnames=tuple(h.lower() for h in route.hostnames),
        policy=_policy(merged, targets, secured) if merged is not None else tables.EMPTY_POLICY,
        targets=targets_out,
        cumulative_weights=weights,
        order=(route.creation_unix_seconds, f"{route.namespace}/{route.name}", route.rule_index),
    )
    matches: list[routing.Match] = []
    for i, m in enumerate(route.matches or [pb.RouteMatch(path=pb.PathMatch(prefix="/"))]):
        kind = m.path.WhichOneof("kind") or "prefix"
        value = getattr(m.path, kind) if m.path.WhichOneof("kind") else "/"
        matches.append(
            routing.Match(
                route=rt,
                index=i,
                path_kind=kind,
                path=value,
                regex=_regex(value, f"matches[{i}].path.regex") if kind == "regex" else None,
                method=m.method or None,
                headers=tuple(
                    _value_match(h.name.lower(), h.value, f"matches[{i}].headers") for h in m.headers
                ),
                query=tuple(_value_match(q.name, q.value, f"matches[{i}].query") for q in m.query),
                precedence=m.precedence,
            )
        )
    return rt, matches


def _value_match(name: str, v: pb.StringMatch, where: str) -> routing.ValueMatch:
    if v.WhichOneof("kind") == "regex":
        return routing.ValueMatch(name=name, exact=None, regex=_regex(v.regex, where))
    return routing.ValueMatch(name=name, exact=v.exact, regex=None)
