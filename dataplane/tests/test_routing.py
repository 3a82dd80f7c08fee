"""Route selection precedence beyond the conformance data: one rule at a time, named as sentences.

Routes are written in the standalone format, loaded and compiled as in production, and looked up
the way the proxy does (split the Host, pick the listener, normalise the path, match). Each
route is named after what it is, and a lookup returns the selected route's name, or None for a
404.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import routing, tables
from dataplane.config import compile as config_compile
from dataplane.config import local

PORT = 8080


def compile_listeners(*listeners: dict[str, Any]) -> tables.Tables:
    """Compile listeners (each with routes given without backends) on one bind."""
    for listener in listeners:
        for i, route in enumerate(listener.get("routes", [])):
            route.setdefault("backends", [{"host": f"127.0.0.1:{9000 + i}"}])
    text = yaml.safe_dump({"binds": [{"port": PORT, "listeners": list(listeners)}]})
    compiled = config_compile.compile_resources(local.parse(text, env={}).resources)
    assert compiled.problems == {}
    return compiled.tables


def compile_routes(*routes: dict[str, Any]) -> tables.Tables:
    return compile_listeners({"routes": list(routes)})


def lookup(
    t: tables.Tables,
    path: str,
    *,
    host: str = "example.com",
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> routing.Match | None:
    host = routing.split_host(host)
    listener = t.binds[PORT].listeners.first(host)
    if listener is None:
        return None
    path, _, query = path.partition("?")
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    return listener.routes.lookup(host, method, routing.normalize_path(path), query, lower.get)


def pick(t: tables.Tables, path: str, **kwargs: Any) -> str | None:
    match = lookup(t, path, **kwargs)
    return match.route.name if match is not None else None


def exact(path: str) -> dict[str, Any]:
    return {"path": {"exact": path}}


def prefix(path: str) -> dict[str, Any]:
    return {"path": {"pathPrefix": path}}


def regex(pattern: str) -> dict[str, Any]:
    return {"path": {"regex": pattern}}


def header(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": {"exact": value}}


# --------------------------------------------------------------------------------------------
# Path kinds


def test_exact_path_beats_prefix_of_the_same_path() -> None:
    t = compile_routes(
        {"name": "prefix", "matches": [prefix("/foo")]},
        {"name": "exact", "matches": [exact("/foo")]},
    )
    assert pick(t, "/foo") == "exact"
    assert pick(t, "/foo/bar") == "prefix"


def test_exact_path_beats_longer_prefix() -> None:
    t = compile_routes(
        {"name": "long-prefix", "matches": [prefix("/api/v1/users")]},
        {"name": "exact", "matches": [exact("/api/v1/users")]},
    )
    assert pick(t, "/api/v1/users") == "exact"


def test_exact_path_does_not_match_a_trailing_slash_or_another_case() -> None:
    t = compile_routes({"name": "exact", "matches": [exact("/foo")]})
    assert pick(t, "/foo/") is None
    assert pick(t, "/Foo") is None


def test_longer_prefix_beats_shorter_prefix() -> None:
    t = compile_routes(
        {"name": "short", "matches": [prefix("/a")]},
        {"name": "long", "matches": [prefix("/a/b")]},
    )
    assert pick(t, "/a/b/c") == "long"
    assert pick(t, "/a/c") == "short"


def test_regex_sits_between_exact_and_prefix() -> None:
    t = compile_routes(
        {"name": "prefix", "matches": [prefix("/items/42")]},
        {"name": "regex", "matches": [regex("/items/[0-9]+")]},
        {"name": "exact", "matches": [exact("/items/7")]},
    )
    assert pick(t, "/items/7") == "exact"
    assert pick(t, "/items/42") == "regex"
    assert pick(t, "/items/42/detail") == "prefix"


def test_regex_must_match_the_whole_path() -> None:
    t = compile_routes({"name": "regex", "matches": [regex("/v[0-9]")]})
    assert pick(t, "/v1") == "regex"
    assert pick(t, "/v1/more") is None
    assert pick(t, "/api/v1") is None


def test_longer_regex_pattern_is_tried_first() -> None:
    t = compile_routes(
        {"name": "short", "matches": [regex("/.*")]},
        {"name": "long", "matches": [regex("/users/[a-z]+")]},
    )
    assert pick(t, "/users/alice") == "long"
    assert pick(t, "/other") == "short"


# --------------------------------------------------------------------------------------------
# PathPrefix by segments


def test_prefix_with_trailing_slash_is_the_same_as_without() -> None:
    t = compile_routes({"name": "foo", "matches": [prefix("/foo/")]})
    assert pick(t, "/foo") == "foo"
    assert pick(t, "/foo/") == "foo"
    assert pick(t, "/foo/bar") == "foo"


def test_prefix_does_not_match_a_longer_segment() -> None:
    t = compile_routes({"name": "foo", "matches": [prefix("/foo")]})
    assert pick(t, "/foobar") is None
    assert pick(t, "/foo/bar") == "foo"


def test_slash_prefix_matches_every_path() -> None:
    t = compile_routes({"name": "all", "matches": [prefix("/")]})
    for path in ("/", "/a", "/a/b/", "/a//b"):
        assert pick(t, path) == "all"


def test_a_route_without_matches_matches_every_path() -> None:
    t = compile_routes({"name": "all"})
    assert pick(t, "/anything/at/all") == "all"


# --------------------------------------------------------------------------------------------
# Method, headers, query


def test_method_match_beats_no_method_on_the_same_path() -> None:
    t = compile_routes(
        {"name": "any", "matches": [prefix("/x")]},
        {"name": "post", "matches": [{**prefix("/x"), "method": "POST"}]},
    )
    assert pick(t, "/x", method="POST") == "post"
    assert pick(t, "/x", method="GET") == "any"


def test_method_match_beats_more_header_matches() -> None:
    t = compile_routes(
        {"name": "headers", "matches": [{"headers": [header("a", "1"), header("b", "2")]}]},
        {"name": "method", "matches": [{"method": "GET"}]},
    )
    assert pick(t, "/", headers={"a": "1", "b": "2"}) == "method"


def test_more_header_matches_beat_fewer() -> None:
    t = compile_routes(
        {"name": "one", "matches": [{"headers": [header("a", "1")]}]},
        {"name": "two", "matches": [{"headers": [header("a", "1"), header("b", "2")]}]},
    )
    assert pick(t, "/", headers={"a": "1", "b": "2"}) == "two"
    assert pick(t, "/", headers={"a": "1"}) == "one"


def test_header_names_match_case_insensitively() -> None:
    t = compile_routes({"name": "h", "matches": [{"headers": [header("X-Version", "one")]}]})
    assert pick(t, "/", headers={"x-version": "one"}) == "h"
    assert pick(t, "/", headers={"X-VERSION": "one"}) == "h"
    assert pick(t, "/", headers={"x-version": "ONE"}) is None


def test_header_regex_must_match_the_whole_value() -> None:
    t = compile_routes({"name": "h", "matches": [{"headers": [{"name": "v", "value": {"regex": "v[0-9]"}}]}]})
    assert pick(t, "/", headers={"v": "v2"}) == "h"
    assert pick(t, "/", headers={"v": "v2-beta"}) is None


def test_more_header_matches_beat_more_query_matches() -> None:
    t = compile_routes(
        {"name": "query", "matches": [{"query": [header("a", "1"), header("b", "2")]}]},
        {"name": "header", "matches": [{"headers": [header("h", "1")]}]},
    )
    assert pick(t, "/?a=1&b=2", headers={"h": "1"}) == "header"


def test_more_query_matches_beat_fewer() -> None:
    t = compile_routes(
        {"name": "one", "matches": [{"query": [header("a", "1")]}]},
        {"name": "two", "matches": [{"query": [header("a", "1"), header("b", "2")]}]},
    )
    assert pick(t, "/?a=1&b=2") == "two"
    assert pick(t, "/?b=2&a=1") == "two"
    assert pick(t, "/?a=1") == "one"


def test_only_the_first_value_of_a_repeated_query_parameter_counts() -> None:
    t = compile_routes({"name": "q", "matches": [{"query": [header("a", "2")]}]})
    assert pick(t, "/?a=2&a=1") == "q"
    assert pick(t, "/?a=1&a=2") is None


def test_path_specificity_beats_method_headers_and_query() -> None:
    t = compile_routes(
        {
            "name": "short-but-detailed",
            "matches": [
                {**prefix("/a"), "method": "GET", "headers": [header("h", "1")], "query": [header("q", "1")]}
            ],
        },
        {"name": "long", "matches": [prefix("/a/b")]},
    )
    assert pick(t, "/a/b?q=1", headers={"h": "1"}) == "long"


# --------------------------------------------------------------------------------------------
# Ties


def test_the_earlier_route_wins_a_full_tie() -> None:
    t = compile_routes(
        {"name": "zz-first", "matches": [prefix("/x")]},
        {"name": "aa-second", "matches": [prefix("/x")]},
    )
    assert pick(t, "/x") == "zz-first"


def _tables_from(resources: list[pb.Resource]) -> tables.Tables:
    compiled = config_compile.compile_resources(resources)
    assert compiled.problems == {}
    return compiled.tables


def test_with_equal_creation_time_the_alphabetically_first_route_wins() -> None:
    text = yaml.safe_dump(
        {
            "binds": [
                {
                    "port": PORT,
                    "listeners": [
                        {
                            "routes": [
                                {"name": "bbb", "namespace": "ns", "backends": [{"host": "127.0.0.1:9000"}]},
                                {"name": "aaa", "namespace": "ns", "backends": [{"host": "127.0.0.1:9001"}]},
                            ]
                        }
                    ],
                }
            ]
        }
    )
    resources = local.parse(text, env={}).resources
    for r in resources:
        if r.WhichOneof("kind") == "route":
            r.route.creation_unix_seconds = 1700000000
    assert pick(_tables_from(resources), "/") == "aaa"


def test_with_equal_creation_time_and_name_the_lower_rule_index_wins() -> None:
    text = yaml.safe_dump(
        {
            "binds": [
                {
                    "port": PORT,
                    "listeners": [
                        {
                            "routes": [
                                {"name": "r", "ruleName": "second", "backends": [{"host": "127.0.0.1:9000"}]},
                                {"name": "r", "ruleName": "first", "backends": [{"host": "127.0.0.1:9001"}]},
                            ]
                        }
                    ],
                }
            ]
        }
    )
    resources = local.parse(text, env={}).resources
    routes = [r.route for r in resources if r.WhichOneof("kind") == "route"]
    for rule_index, route in zip((1, 0), routes, strict=True):
        route.creation_unix_seconds = 1700000000
        route.rule_index = rule_index
    match = lookup(_tables_from(resources), "/")
    assert match is not None and match.route.rule_name == "first"


def test_the_first_of_equally_specific_matches_in_a_route_is_reported() -> None:
    t = compile_routes(
        {"name": "r", "matches": [{"headers": [header("a", "1")]}, {"headers": [header("b", "1")]}]}
    )
    match = lookup(t, "/", headers={"a": "1", "b": "1"})
    assert match is not None and match.index == 0


def test_a_more_specific_later_match_in_a_route_beats_an_earlier_route() -> None:
    t = compile_routes(
        {"name": "early", "matches": [prefix("/a")]},
        {"name": "late", "matches": [prefix("/z"), prefix("/a/b")]},
    )
    match = lookup(t, "/a/b")
    assert match is not None and (match.route.name, match.index) == ("late", 1)


# --------------------------------------------------------------------------------------------
# Hostnames


def test_exact_route_hostname_beats_wildcard_and_catch_all() -> None:
    t = compile_routes(
        {"name": "any"},
        {"name": "wildcard", "hostnames": ["*.example.com"]},
        {"name": "exact", "hostnames": ["api.example.com"]},
    )
    assert pick(t, "/", host="api.example.com") == "exact"
    assert pick(t, "/", host="www.example.com") == "wildcard"
    assert pick(t, "/", host="other.org") == "any"


def test_longer_wildcard_beats_shorter_wildcard() -> None:
    t = compile_routes(
        {"name": "short", "hostnames": ["*.example.com"]},
        {"name": "long", "hostnames": ["*.api.example.com"]},
    )
    assert pick(t, "/", host="v1.api.example.com") == "long"
    assert pick(t, "/", host="v1.www.example.com") == "short"


def test_hostname_tier_beats_path_specificity() -> None:
    t = compile_routes(
        {"name": "any-long-path", "matches": [exact("/a/b")]},
        {"name": "exact-host", "hostnames": ["api.example.com"], "matches": [prefix("/")]},
    )
    assert pick(t, "/a/b", host="api.example.com") == "exact-host"


def test_a_tier_without_a_matching_rule_falls_through_to_the_next() -> None:
    t = compile_routes(
        {"name": "any", "matches": [prefix("/")]},
        {"name": "wildcard", "hostnames": ["*.example.com"], "matches": [prefix("/w")]},
        {"name": "exact", "hostnames": ["api.example.com"], "matches": [prefix("/e")]},
    )
    assert pick(t, "/e", host="api.example.com") == "exact"
    assert pick(t, "/w", host="api.example.com") == "wildcard"
    assert pick(t, "/other", host="api.example.com") == "any"


def test_wildcard_hostname_does_not_match_the_bare_domain() -> None:
    t = compile_routes({"name": "wildcard", "hostnames": ["*.example.com"]})
    assert pick(t, "/", host="example.com") is None
    assert pick(t, "/", host="a.b.example.com") == "wildcard"
    assert pick(t, "/", host="badexample.com") is None


def test_hostnames_match_case_insensitively_and_ignore_the_port() -> None:
    t = compile_routes({"name": "exact", "hostnames": ["api.example.com"]})
    assert pick(t, "/", host="API.Example.COM:8443") == "exact"
    assert pick(t, "/", host="api.example.com.") == "exact"


def test_listener_exact_hostname_beats_wildcard_beats_catch_all() -> None:
    t = compile_listeners(
        {"name": "any", "routes": [{"name": "from-any"}]},
        {"name": "wild", "hostname": "*.example.com", "routes": [{"name": "from-wild"}]},
        {"name": "exact", "hostname": "api.example.com", "routes": [{"name": "from-exact"}]},
    )
    assert pick(t, "/", host="api.example.com") == "from-exact"
    assert pick(t, "/", host="www.example.com") == "from-wild"
    assert pick(t, "/", host="example.com") == "from-any"


def test_the_most_specific_listener_is_final_even_without_a_matching_route() -> None:
    t = compile_listeners(
        {"name": "any", "routes": [{"name": "from-any"}]},
        {
            "name": "exact",
            "hostname": "api.example.com",
            "routes": [{"name": "only-x", "matches": [prefix("/x")]}],
        },
    )
    assert pick(t, "/y", host="api.example.com") is None


# --------------------------------------------------------------------------------------------
# normalize_path and split_host


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/public/../admin", "/admin"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/../", "/a/"),
        ("/a/.hidden/..b", "/a/.hidden/..b"),
        ("/...", "/..."),
    ],
)
def test_normalize_path_removes_dot_segments(raw: str, normal: str) -> None:
    assert routing.normalize_path(raw) == normal


def test_a_dot_segment_cannot_dodge_an_exact_route() -> None:
    t = compile_routes(
        {"name": "admin", "matches": [exact("/admin")]},
        {"name": "public", "matches": [prefix("/public")]},
    )
    assert pick(t, "/public/../admin") == "admin"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/a/%2e/b", "/a/b"),
    ],
)
def test_normalize_path_removes_percent_encoded_dot_segments(raw: str, normal: str) -> None:
    # RFC 3986 6.2.2.2: %2E is an unreserved character and the same as "."; backends that
    # decode it would otherwise serve /admin for a request routed under /public.
    assert routing.normalize_path(raw) == normal


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("example.com", "example.com"),
        ("Example.COM:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:80", "example.com"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("", ""),
    ],
)
def test_split_host_drops_the_port_and_lowercases(authority: str, host: str) -> None:
    assert routing.split_host(authority) == host


def test_prefix_candidates_are_listed_longest_first() -> None:
    assert routing.prefix_candidates("/a/b/c") == ["/a/b/c", "/a/b", "/a", "/"]
    assert routing.prefix_candidates("/a/b/") == ["/a/b", "/a", "/"]
    assert routing.prefix_candidates("/") == ["/"]


def test_memoised_lookups_give_the_same_answers_as_fresh_ones() -> None:
    from dataplane.config import compile as compiler
    from dataplane.config import local

    cfg = local.parse(
        "binds:\n- port: 9000\n  listeners:\n  - routes:\n"
        "    - name: a\n      matches: [{path: {pathPrefix: /a}}]\n      backends: [{host: 'h:1'}]\n"
        "    - name: root\n      backends: [{host: 'h:2'}]\n"
    )
    listener = compiler.compile_resources(cfg.resources).tables.binds[9000].listeners.first("x")
    assert listener is not None
    for _ in range(2):  # the second round is served from the memo
        for path, expected in [("/a/b", "a"), ("/ab", "root"), ("/", "root")]:
            found = listener.routes.lookup("x", "GET", path, "", lambda _: None)
            assert found is not None and found.route.name == expected


def test_lookups_are_not_memoised_when_a_rule_matches_headers() -> None:
    from dataplane.config import compile as compiler
    from dataplane.config import local

    cfg = local.parse(
        "binds:\n- port: 9000\n  listeners:\n  - routes:\n"
        "    - name: v2\n      matches: [{headers: [{name: v, value: {exact: '2'}}]}]\n"
        "      backends: [{host: 'h:1'}]\n"
        "    - name: v1\n      backends: [{host: 'h:2'}]\n"
    )
    listener = compiler.compile_resources(cfg.resources).tables.binds[9000].listeners.first("x")
    assert listener is not None
    two = listener.routes.lookup("x", "GET", "/", "", lambda n: "2" if n == "v" else None)
    one = listener.routes.lookup("x", "GET", "/", "", lambda _: None)
    assert two is not None and two.route.name == "v2"
    assert one is not None and one.route.name == "v1"


@pytest.mark.parametrize(
    ("path", "winner"),
    [
        ("/pkg.Svc/Get", "service-and-method"),
        # the service's characters outrank the method's, though the method's pattern is longer
        ("/pkg.Svc/ListEverything", "service"),
        ("/other.Svc/ListEverything", "method"),
        ("/pkg.Svcs/ListEverything", "long-service"),
        ("/pkg.Svcs/Put", "long-service"),  # more service characters win
        ("/x.Y/Z", None),
    ],
)
def test_the_proxy_ranks_grpc_rules_by_service_then_method_characters(path: str, winner: str | None) -> None:
    """GRPCRoute precedence: the matches the controller makes of GRPCRoute method matches
    (controller/translate/grpcroutes.py; its tests check it makes these), compiled and looked up,
    all rules in one table, declared in the worst order."""
    rules = [
        ("method", pb.RouteMatch(path=pb.PathMatch(regex="/[^/]+/ListEverything"), precedence=14)),
        ("service", pb.RouteMatch(path=pb.PathMatch(regex=r"/pkg\.Svc/[^/]+"), precedence=7 << 16)),
        ("long-service", pb.RouteMatch(path=pb.PathMatch(regex=r"/pkg\.Svcs/[^/]+"), precedence=8 << 16)),
        ("service-and-method", pb.RouteMatch(path=pb.PathMatch(exact="/pkg.Svc/Get"))),
    ]
    resources = [pb.Resource(listener=pb.Listener(key="l", bind_key="b", name="l"))]
    resources.append(pb.Resource(bind=pb.Bind(key="b", port=8080)))
    for i, (name, match) in enumerate(rules):
        resources.append(
            pb.Resource(
                route=pb.Route(
                    key=f"r{i}",
                    listener_key="l",
                    name=name,
                    matches=[match],
                    backends=[pb.RouteBackend(ref=pb.BackendRef(host=pb.StaticBackend(host="h", port=1)))],
                    rule_index=i,
                )
            )
        )
    compiled = config_compile.compile_resources(resources)
    assert not compiled.problems
    table = compiled.tables.binds[8080].listeners.first("h")
    assert table is not None
    found = table.routes.lookup("h", "POST", path, "", lambda name: None)
    assert (found.route.name if found else None) == winner
