"""Route rule filters, timeouts and retry -> the Route's TrafficPolicy; backendRef filters ->
the RouteBackend's BackendPolicy; matches -> RouteMatch.

In: one rule of an `api.gateway.v1.HTTPRoute` (or its filters, header matches and backendRefs,
which GRPCRoute shares: `controller.translate.grpcroutes`), where it is (`spec.rules[i]`, for
messages) and a function that resolves a mirror's backendRef. Out: protobuf messages of
`api/proto/agentgw/v1/resource.proto`, plus the mirror resolutions (their Backend resources go
in the snapshot, their problems in the route's `ResolvedRefs`).

A value agentgw cannot carry raises `Unsupported` naming the field; the caller drops the rule
and says so in the route's status (`PartiallyInvalid`, or `Accepted=False` when every rule is
dropped). Mappings that are not one-to-one:

- `timeouts.request`/`backendRequest` of `0s` disable the timeout: left out (the proxy has none
  by default);
- `retry.attempts` counts retries, the proxy's `Retry.attempts` counts tries: attempts + 1
  (at most 255); without `attempts` one retry; `attempts: 0` means no retry;
- `requestMirror.percent` / `fraction` become a fraction of 1; neither means every request;
- `urlRewrite.hostname` replaces the whole Host header (port included), as the spec says;
- `CORS.maxAge` is seconds (default 5).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from google.protobuf import duration_pb2

from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.v1alpha1 import common
from controller.translate import backends

T = TypeVar("T")

RefResolver = Callable[[gw.BackendObjectReference], backends.Resolution]
"""Resolves a backendRef or a mirror's backendRef of the rule's route (its namespace and kind bound)."""

MAX_ATTEMPTS = 255
"""The largest `Retry.attempts` the proxy takes (agentgateway stores it in a u8)."""

DEFAULT_RETRIES = 1
"""Retries when `retry` gives no `attempts`: the spec leaves it to the implementation."""


HTTP_ROUTE_FILTERS = frozenset(
    {
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
        "CORS",
    }
)
"""The HTTPRoute rule filter types agentgw carries (`ExtensionRef` and `ExternalAuth` are not)."""


class Unsupported(Exception):
    """A rule uses a value agentgw cannot carry; the message starts with the field path."""


# --------------------------------------------------------------------------------------------
# Matches


def match(m: gw.HTTPRouteMatch, where: str) -> pb.RouteMatch:
    return pb.RouteMatch(
        path=_path_match(m.path, f"{where}.path"),
        method=(m.method or "").upper(),
        headers=header_matches(m.headers, where),
        query=[
            pb.QueryMatch(name=q.name, value=_string_match(q.type, q.value, f"{where}.queryParams[{i}]"))
            for i, q in enumerate(m.query_params)
        ],
    )


def _path_match(p: gw.HTTPPathMatch, where: str) -> pb.PathMatch:
    if p.type == "Exact":
        return pb.PathMatch(exact=p.value)
    if p.type == "PathPrefix":
        return pb.PathMatch(prefix=p.value)
    if p.type == "RegularExpression":
        return pb.PathMatch(regex=regex(p.value, where))
    raise Unsupported(f"{where}.type: unsupported value {p.type!r}")


def header_matches(headers: Sequence[gw.HTTPHeaderMatch], where: str) -> list[pb.HeaderMatch]:
    """Header matches (HTTPRoute and GRPCRoute): names lower-cased; of entries naming the same
    header only the first counts, as the spec requires."""
    out: dict[str, pb.HeaderMatch] = {}
    for i, h in enumerate(headers):
        name = h.name.lower()
        if name not in out:
            value = _string_match(h.type, h.value, f"{where}.headers[{i}]")
            out[name] = pb.HeaderMatch(name=name, value=value)
    return list(out.values())


def _string_match(kind: str, value: str, where: str) -> pb.StringMatch:
    if kind == "Exact":
        return pb.StringMatch(exact=value)
    if kind == "RegularExpression":
        return pb.StringMatch(regex=regex(value, where))
    raise Unsupported(f"{where}.type: unsupported value {kind!r}")


def regex(pattern: str, where: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Unsupported(f"{where}.value: invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


# --------------------------------------------------------------------------------------------
# Rule filters, timeouts, retry


def traffic_policy(
    rule: gw.HTTPRouteRule, where: str, resolve: RefResolver
) -> tuple[pb.TrafficPolicy | None, list[backends.Resolution]]:
    """The rule's TrafficPolicy (None when empty) and the resolutions of its mirror refs."""
    out, mirrors = rule_filters(rule.filters, where, resolve, HTTP_ROUTE_FILTERS)
    if rule.timeouts is not None:
        _timeouts(rule.timeouts, out, f"{where}.timeouts")
    if rule.retry is not None:
        retry(rule.retry, out, f"{where}.retry")
    if rule.session_persistence is not None:
        raise Unsupported(f"{where}.sessionPersistence: not supported by agentgw yet")
    return (out if out.ListFields() else None), mirrors


def rule_filters(
    found: Sequence[gw.HTTPRouteFilter], where: str, resolve: RefResolver, supported: Collection[str]
) -> tuple[pb.TrafficPolicy, list[backends.Resolution]]:
    """A rule's `filters` of the `supported` types (others raise `Unsupported`) -> a TrafficPolicy
    (maybe empty) and the resolutions of its mirror refs."""
    out = pb.TrafficPolicy()
    mirrors: list[backends.Resolution] = []
    for i, f in enumerate(found):
        at = f"{where}.filters[{i}]"
        if f.type not in supported:
            raise Unsupported(f"{at}.type: filter {f.type} is not supported by agentgw")
        _apply(f, out, at, resolve, mirrors)
    return out, mirrors


def _apply(
    f: gw.HTTPRouteFilter,
    out: pb.TrafficPolicy,
    where: str,
    resolve: RefResolver,
    mirrors: list[backends.Resolution],
) -> None:
    if f.type == "RequestHeaderModifier":
        out.request_header_modifier.CopyFrom(header_modifier(_need(f.request_header_modifier, where)))
    elif f.type == "ResponseHeaderModifier":
        out.response_header_modifier.CopyFrom(header_modifier(_need(f.response_header_modifier, where)))
    elif f.type == "RequestRedirect":
        out.request_redirect.CopyFrom(redirect(_need(f.request_redirect, where), f"{where}.requestRedirect"))
    elif f.type == "URLRewrite":
        out.url_rewrite.CopyFrom(_rewrite(_need(f.url_rewrite, where), f"{where}.urlRewrite"))
    elif f.type == "RequestMirror":
        mirror = _need(f.request_mirror, where)
        resolution = resolve(mirror.backend_ref)
        mirrors.append(resolution)
        if resolution.backend is not None:
            ref = pb.BackendRef(backend_key=resolution.backend.key)
            out.request_mirrors.append(pb.RequestMirror(backend=ref, percentage=_fraction(mirror)))
    elif f.type == "CORS":
        out.cors.CopyFrom(_cors(_need(f.cors, where)))
    else:
        raise Unsupported(f"{where}.type: filter {f.type} is not supported by agentgw")


def _need(value: T | None, where: str) -> T:
    if value is None:
        raise Unsupported(f"{where}: the filter's configuration is missing")
    return value


def header_modifier(h: gw.HTTPHeaderFilter) -> pb.HeaderModifier:
    return pb.HeaderModifier(
        add=[pb.HeaderPair(name=x.name, value=x.value) for x in h.add],
        set=[pb.HeaderPair(name=x.name, value=x.value) for x in h.set],
        remove=list(h.remove),
    )


def redirect(r: gw.HTTPRequestRedirectFilter, where: str) -> pb.RequestRedirect:
    out = pb.RequestRedirect(scheme=r.scheme or "", status=r.status_code)
    if r.hostname is not None and r.port is not None:
        out.authority.full = f"{r.hostname}:{r.port}"
    elif r.hostname is not None:
        out.authority.host = r.hostname
    elif r.port is not None:
        out.authority.port = r.port
    if r.path is not None:
        out.path.CopyFrom(_path_modifier(r.path, f"{where}.path"))
    return out


def _rewrite(r: gw.HTTPURLRewriteFilter, where: str) -> pb.UrlRewrite:
    out = pb.UrlRewrite()
    if r.hostname is not None:
        out.authority.full = r.hostname
    if r.path is not None:
        out.path.CopyFrom(_path_modifier(r.path, f"{where}.path"))
    return out


def _path_modifier(p: gw.HTTPPathModifier, where: str) -> pb.PathRewrite:
    if p.type == "ReplaceFullPath":
        return pb.PathRewrite(full=p.replace_full_path or "/")
    if p.type == "ReplacePrefixMatch":
        return pb.PathRewrite(prefix=p.replace_prefix_match or "")
    raise Unsupported(f"{where}.type: unsupported value {p.type!r}")


def _fraction(m: gw.HTTPRequestMirrorFilter) -> float:
    if m.percent is not None:
        return m.percent / 100
    if m.fraction is not None and m.fraction.denominator > 0:
        return m.fraction.numerator / m.fraction.denominator
    return 1.0


def _cors(c: gw.HTTPCORSFilter) -> pb.Cors:
    return pb.Cors(
        allow_credentials=c.allow_credentials,
        allow_headers=c.allow_headers,
        allow_methods=c.allow_methods,
        allow_origins=c.allow_origins,
        expose_headers=c.expose_headers,
        max_age=duration_pb2.Duration(seconds=c.max_age),
    )


def _timeouts(t: gw.HTTPRouteTimeouts, out: pb.TrafficPolicy, where: str) -> None:
    request = duration(t.request, f"{where}.request")
    backend_request = duration(t.backend_request, f"{where}.backendRequest")
    if request is not None:
        out.timeout.request_timeout.CopyFrom(request)
    if backend_request is not None:
        out.timeout.backend_request_timeout.CopyFrom(backend_request)


def retry(r: gw.HTTPRouteRetry, out: pb.TrafficPolicy, where: str) -> None:
    """A retry policy (Gateway API `HTTPRouteRetry`, also AgentgatewayPolicy `traffic.retry`)."""
    retries = DEFAULT_RETRIES if r.attempts is None else r.attempts
    if retries <= 0:
        return
    out.retry.attempts = min(retries + 1, MAX_ATTEMPTS)
    out.retry.codes.extend(r.codes)
    backoff = duration(r.backoff, f"{where}.backoff")
    if backoff is not None:
        out.retry.backoff.CopyFrom(backoff)


def duration(text: str | None, where: str) -> duration_pb2.Duration | None:
    """A GEP-2257 duration (`10s`, `1m30s`, `250ms`); None when absent or zero."""
    if text is None:
        return None
    if not re.fullmatch(common.DURATION_PATTERN, text):
        raise Unsupported(f"{where}: invalid duration {text!r}")
    ms = common.duration_ms(text)
    if ms == 0:
        return None
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


# --------------------------------------------------------------------------------------------
# backendRef filters


def backend_policy(ref: gw.HTTPBackendRef, where: str) -> pb.BackendPolicy | None:
    """A backendRef's own filters: header modifiers and redirects (the proxy's BackendPolicy)."""
    if not ref.filters:
        return None
    out = pb.BackendPolicy()
    for i, f in enumerate(ref.filters):
        at = f"{where}.filters[{i}]"
        if f.type == "RequestHeaderModifier":
            out.request_header_modifier.CopyFrom(header_modifier(_need(f.request_header_modifier, at)))
        elif f.type == "ResponseHeaderModifier":
            out.response_header_modifier.CopyFrom(header_modifier(_need(f.response_header_modifier, at)))
        elif f.type == "RequestRedirect":
            out.request_redirect.CopyFrom(redirect(_need(f.request_redirect, at), f"{at}.requestRedirect"))
        else:
            raise Unsupported(f"{at}.type: filter {f.type} is not supported on a backendRef by agentgw")
    return out
