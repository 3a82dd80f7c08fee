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

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import routing, tables


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


def compile_resources(resources: list[pb.Resource]) -> Compiled:
    problems: dict[str, str] = {}
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
            problems[key] = "targeted policies are not supported by this proxy version"
        else:
            problems[key] = "unknown resource kind"

    targets: dict[str, tables.Target] = {}
    for key, b in backends.items():
        try:
            policy = b.policies if b.HasField("policies") else None
            if b.WhichOneof("kind") == "ai":
                targets[key] = _ai_target(b.name, b.ai, policy)
            else:
                targets[key] = _target(b.name, b.static, policy)
        except _Invalid as exc:
            problems[key] = str(exc)

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

    compiled_routes: dict[str, list[tables.Route]] = {}
    matches: dict[str, list[routing.Match]] = {}
    for route in routes:
        listener = listeners.get(route.listener_key)
        if listener is None or listener.bind_key not in binds:
            problems[route.key] = f"listener {route.listener_key!r} does not exist"
            continue
        try:
            rt, ms = _route(route, listener, targets)
        except _Invalid as exc:
            problems[route.key] = str(exc)
            continue
        compiled_routes.setdefault(listener.key, []).append(rt)
        matches.setdefault(listener.key, []).extend(ms)

    by_bind: dict[str, list[tables.Listener]] = {}
    for key, listener in listeners.items():
        if listener.bind_key not in binds:
            problems[key] = f"bind {listener.bind_key!r} does not exist"
            continue
        by_bind.setdefault(listener.bind_key, []).append(
            tables.Listener(
                key=key,
                name=listener.name,
                gateway=listener.gateway_name,
                hostname=listener.hostname,
                routes=routing.RouteIndex(matches.get(key, [])),
            )
        )
    out_binds: dict[int, tables.Bind] = {}
    for key, bind in binds.items():
        ls = by_bind.get(key, [])
        out_binds[bind.port] = tables.Bind(
            key=key,
            port=bind.port,
            listeners=routing.HostIndex(([lis.hostname] if lis.hostname else [], lis) for lis in ls),
        )
    good = [r for r in resources if resource_key(r) not in problems]
    return Compiled(
        tables=tables.Tables(
            binds=out_binds,
            version=version_of(good),
            route_count=sum(len(v) for v in compiled_routes.values()),
        ),
        problems=problems,
    )


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


def _target(name: str, static: pb.StaticBackend, policy: pb.BackendPolicy | None) -> tables.Target:
    if not static.host or not 0 < static.port < 65536:
        raise _Invalid(f"backend {name!r}: needs a host and a port in 1..65535")
    if policy is None:
        return tables.Target(name=name, host=static.host, port=static.port, tls=static.tls)
    return tables.Target(
        name=name,
        host=static.host,
        port=static.port,
        tls=static.tls,
        request_headers=_header_ops(policy.request_header_modifier)
        if policy.HasField("request_header_modifier")
        else None,
        response_headers=_header_ops(policy.response_header_modifier)
        if policy.HasField("response_header_modifier")
        else None,
        redirect=_redirect(policy.request_redirect) if policy.HasField("request_redirect") else None,
        request_timeout=_seconds(policy.request_timeout) if policy.HasField("request_timeout") else None,
        connect_timeout=_seconds(policy.connect_timeout) if policy.HasField("connect_timeout") else None,
    )


OPENAI = ("api.openai.com", 443, "/v1/chat/completions")
"""OpenAI's default host, port (TLS) and chat completions path."""


def _ai_target(name: str, ai: pb.AIBackend, policy: pb.BackendPolicy | None) -> tables.Target:
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
    base = _target(name, pb.StaticBackend(host=host, port=port, tls=tls), policy)
    return dataclasses.replace(base, ai=provider)


def _ref(
    ref: pb.BackendRef, targets: dict[str, tables.Target], policy: pb.BackendPolicy | None
) -> tables.Target:
    kind = ref.WhichOneof("kind")
    if kind == "host":
        return _target(f"{ref.host.host}:{ref.host.port}", ref.host, policy)
    if kind == "backend_key":
        base = targets.get(ref.backend_key)
        if base is None:
            raise _Invalid(f"backend {ref.backend_key!r} does not exist")
        if policy is None:
            return base
        own = _target(base.name, pb.StaticBackend(host=base.host, port=base.port), policy)
        return dataclasses.replace(
            own,
            request_headers=own.request_headers or base.request_headers,
            response_headers=own.response_headers or base.response_headers,
            redirect=own.redirect or base.redirect,
            request_timeout=own.request_timeout or base.request_timeout,
            connect_timeout=own.connect_timeout or base.connect_timeout,
        )
    raise _Invalid("backend reference is empty")


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
    p: pb.TrafficPolicy, listener_policy: pb.TrafficPolicy, targets: dict[str, tables.Target]
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
    cors = (
        p.cors if p.HasField("cors") else listener_policy.cors if listener_policy.HasField("cors") else None
    )
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
    )


def _route(
    route: pb.Route, listener: pb.Listener, targets: dict[str, tables.Target]
) -> tuple[tables.Route, list[routing.Match]]:
    targets_out = tuple(
        _ref(b.ref, targets, b.policies if b.HasField("policies") else None) for b in route.backends
    )
    weights = tuple(itertools.accumulate(b.weight for b in route.backends))
    rt = tables.Route(
        key=route.key,
        name=route.name,
        namespace=route.namespace,
        rule_name=route.rule_name,
        gateway=listener.gateway_name,
        listener=listener.name,
        hostnames=tuple(h.lower() for h in route.hostnames),
        policy=_policy(route.policies, listener.policies, targets)
        if route.HasField("policies") or listener.HasField("policies")
        else tables.EMPTY_POLICY,
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
            )
        )
    return rt, matches


def _value_match(name: str, v: pb.StringMatch, where: str) -> routing.ValueMatch:
    if v.WhichOneof("kind") == "regex":
        return routing.ValueMatch(name=name, exact=None, regex=_regex(v.regex, where))
    return routing.ValueMatch(name=name, exact=v.exact, regex=None)
