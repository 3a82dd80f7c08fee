"""Route selection with Gateway API HTTPRoute precedence. Pure: no I/O, no asyncio.

Built once per configuration by `config.compile`, read per request by `proxy`.

Selection order (Gateway API spec, HTTPRoute and Listener hostname rules):

1. Listener on the bind by request host: exact hostname, then the longest matching wildcard
   (`*.example.com` matches any deeper name, never `example.com`), then a listener without one.
2. Among the listener's routes, hostname tiers in the same order: routes naming the exact host,
   then the longest matching wildcard, then routes without hostnames. A tier with no matching
   rule falls through to the next.
3. Inside a tier, across all rules: Exact path > RegularExpression path (a higher `precedence`
   first, which GRPCRoute service/method matches carry; then the longer pattern: the spec leaves
   regex precedence to implementations) > PathPrefix (longest first, matched by
   whole path segments, trailing `/` ignored); then a method match; then more header matches;
   then more query matches; then the oldest route, then "namespace/name", then rule order.

Lookups are dictionary hits on the exact path and on each segment prefix of the request path,
so cost grows with path depth and with rules sharing a path, not with the number of routes.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from dataplane import tables

HeaderGetter = Callable[[str], str | None]
"""Returns a request header's value (repeated headers joined with ",") or None."""


@dataclasses.dataclass(frozen=True, slots=True)
class ValueMatch:
    name: str
    exact: str | None
    regex: re.Pattern[str] | None

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        assert self.regex is not None
        return self.regex.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    """One match clause of one route, with everything needed to test and rank it."""

    route: tables.Route
    index: int
    path_kind: str  # "exact" | "prefix" | "regex"
    path: str
    regex: re.Pattern[str] | None
    method: str | None
    headers: tuple[ValueMatch, ...]
    query: tuple[ValueMatch, ...]
    precedence: int = 0
    """Among regex paths, higher first (GRPCRoute: service, then method characters)."""

    def rank(self) -> tuple[int, int, int, tuple[int, str, int], int]:
        """Sort key for matches sharing a path: method, headers, query, then route order."""
        return (
            0 if self.method else 1,
            -len(self.headers),
            -len(self.query),
            self.route.order,
            self.index,
        )

    def matches_rest(self, method: str, headers: HeaderGetter, query: _LazyQuery) -> bool:
        if self.method is not None and method != self.method:
            return False
        for h in self.headers:
            if not h.matches(headers(h.name)):
                return False
        if self.query:
            params = query.get()
            for q in self.query:
                if not q.matches(params.get(q.name)):
                    return False
        return True


class _LazyQuery:
    """Parses the query string only if a candidate rule has query matches."""

    __slots__ = ("_params", "_raw")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        self._params: dict[str, str] | None = None

    def get(self) -> dict[str, str]:
        if self._params is None:
            params: dict[str, str] = {}
            for name, value in urllib.parse.parse_qsl(self._raw, keep_blank_values=True):
                params.setdefault(name, value)  # Gateway API: the first value counts
            self._params = params
        return self._params


class _PathIndex:
    """All matches of one hostname tier, indexed by path kind."""

    __slots__ = ("exact", "prefix", "regex")

    def __init__(self, matches: Iterable[Match]) -> None:
        exact: dict[str, list[Match]] = {}
        prefix: dict[str, list[Match]] = {}
        regex: list[Match] = []
        for m in matches:
            if m.path_kind == "exact":
                exact.setdefault(m.path, []).append(m)
            elif m.path_kind == "prefix":
                prefix.setdefault(normalize_prefix(m.path), []).append(m)
            else:
                regex.append(m)
        self.exact = {k: tuple(sorted(v, key=Match.rank)) for k, v in exact.items()}
        self.prefix = {k: tuple(sorted(v, key=Match.rank)) for k, v in prefix.items()}
        self.regex = tuple(sorted(regex, key=lambda m: (-m.precedence, -len(m.path), m.rank())))

    def lookup(self, method: str, path: str, headers: HeaderGetter, query: _LazyQuery) -> Match | None:
        for m in self.exact.get(path, ()):
            if m.matches_rest(method, headers, query):
                return m
        for m in self.regex:
            assert m.regex is not None
            if m.regex.fullmatch(path) and m.matches_rest(method, headers, query):
                return m
        if self.prefix:
            for candidate in prefix_candidates(path):
                for m in self.prefix.get(candidate, ()):
                    if m.matches_rest(method, headers, query):
                        return m
        return None


def normalize_prefix(prefix: str) -> str:
    """ "/foo/" and "/foo" are the same PathPrefix; "/" stays "/"."""
    stripped = prefix.rstrip("/")
    return stripped or "/"


def prefix_candidates(path: str) -> list[str]:
    """Every PathPrefix value that matches `path`, longest first ("/a/b" -> /a/b, /a, /)."""
    trimmed = path.rstrip("/") or "/"
    out = [trimmed]
    i = trimmed.rfind("/")
    while i > 0:
        trimmed = trimmed[:i]
        out.append(trimmed)
        i = trimmed.rfind("/")
    if out[-1] != "/":
        out.append("/")
    return out


T = TypeVar("T")


class HostIndex(Generic[T]):
    """Items keyed by hostname: exact names, `*.suffix` wildcards, and a catch-all list.

    `candidates(host)` returns the items that apply to a host, most specific first.
    Results are cached per host; the cache is bounded because hosts come from clients.
    """

    _CACHE_MAX = 4096

    def __init__(self, entries: Iterable[tuple[Sequence[str], T]]) -> None:
        exact: dict[str, list[T]] = {}
        wildcard: dict[str, list[T]] = {}
        anyhost: list[T] = []
        for hostnames, item in entries:
            if not hostnames:
                anyhost.append(item)
            for h in hostnames:
                if h.startswith("*."):
                    wildcard.setdefault(h[1:], []).append(item)  # ".example.com"
                else:
                    exact.setdefault(h, []).append(item)
        self._exact = exact
        self._wildcards = sorted(wildcard.items(), key=lambda kv: -len(kv[0]))
        self._any = anyhost
        self._cache: dict[str, tuple[T, ...]] = {}

    def candidates(self, host: str) -> tuple[T, ...]:
        hit = self._cache.get(host)
        if hit is not None:
            return hit
        out: list[T] = list(self._exact.get(host, ()))
        for suffix, items in self._wildcards:
            if host.endswith(suffix) and len(host) > len(suffix):
                out.extend(items)
        out.extend(self._any)
        result = tuple(out)
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[host] = result
        return result

    def first(self, host: str) -> T | None:
        c = self.candidates(host)
        return c[0] if c else None


class RouteIndex:
    """The routes of one listener: hostname tiers, each a path index."""

    def __init__(self, matches: Sequence[Match]) -> None:
        by_tier: dict[tuple[str, ...] | str, list[Match]] = {}
        for m in matches:
            names = m.route.hostnames
            if not names:
                by_tier.setdefault("", []).append(m)
            for h in names:
                by_tier.setdefault(h, []).append(m)
        entries: list[tuple[Sequence[str], _PathIndex]] = []
        for key, ms in by_tier.items():
            assert isinstance(key, str)
            entries.append(([key] if key else [], _PathIndex(ms)))
        self._hosts: HostIndex[_PathIndex] = HostIndex(entries)
        self.size = len(matches)
        self._memo: dict[tuple[str, str, str], Match | None] | None = (
            {} if all(not m.headers and not m.query for m in matches) else None
        )
        """(host, method, path) -> result, when no rule looks at headers or query: then those
        three decide the match. Bounded: hosts and paths come from clients."""

    _MEMO_MAX = 4096

    def lookup(self, host: str, method: str, path: str, query: str, headers: HeaderGetter) -> Match | None:
        memo = self._memo
        if memo is not None:
            key = (host, method, path)
            try:
                return memo[key]
            except KeyError:
                pass
            found = self._lookup(host, method, path, query, headers)
            if len(memo) >= self._MEMO_MAX:
                memo.clear()
            memo[key] = found
            return found
        return self._lookup(host, method, path, query, headers)

    def _lookup(self, host: str, method: str, path: str, query: str, headers: HeaderGetter) -> Match | None:
        lazy = _LazyQuery(query)
        for tier in self._hosts.candidates(host):
            m = tier.lookup(method, path, headers, lazy)
            if m is not None:
                return m
        return None


def normalize_path(path: str) -> str:
    """Remove dot segments (RFC 3986 5.2.4) so `/public/../admin` cannot dodge a route.

    `%2e` is an encoded "." (RFC 3986 6.2.2.2), so `/public/%2e%2e/admin` is normalised too;
    other percent-encodings are left as the client sent them.
    """
    if "%" in path and ("%2e" in path or "%2E" in path):
        path = path.replace("%2e", ".").replace("%2E", ".")
    if "/." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for seg in segments[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/" + "/".join(out)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def split_host(authority: str) -> str:
    """Lower-case host of a Host header, without the port ("[::1]:80" -> "::1")."""
    if authority.startswith("["):
        end = authority.find("]")
        return authority[1:end].lower() if end > 0 else authority.lower()
    host, _, _ = authority.partition(":")
    return host.lower().rstrip(".")
