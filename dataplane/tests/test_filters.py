"""Pure filter functions: prefix replacement, redirects, authority rewrites, CORS headers."""

from __future__ import annotations

import re

import pytest

from dataplane import tables
from dataplane.policies import filters


@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        ("/prefix/one/two", "/prefix/one", "/one", "/one/two"),
        ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
        ("/strip-prefix", "/strip-prefix", "/", "/"),
        ("/prefix/one/", "/prefix/one", "/one", "/one/"),
        ("/bar", "/", "/foo", "/foo/bar"),
        ("/bar", "/", "/foo/", "/foo/bar"),
        ("/api", "/api/", "/v1", "/v1"),
    ],
)
def test_replace_prefix_keeps_the_rest_of_the_path(
    path: str, prefix: str, replacement: str, expected: str
) -> None:
    assert filters.replace_prefix(path, prefix, replacement) == expected


def test_full_path_rewrite_replaces_the_whole_path() -> None:
    assert filters.new_path(tables.PathChange(full="/x"), "/a/b", "prefix", "/a") == "/x"


def test_prefix_rewrite_is_ignored_for_exact_matches() -> None:
    assert filters.new_path(tables.PathChange(prefix="/x"), "/a", "exact", "/a") == "/a"


def _redirect(**kw: object) -> tables.Redirect:
    base: dict[str, object] = {"scheme": None, "authority": None, "path": None, "status": 302}
    base.update(kw)
    return tables.Redirect(**base)  # type: ignore[arg-type]


def test_redirect_keeps_scheme_host_port_path_and_query_by_default() -> None:
    loc = filters.redirect_location(_redirect(), "http", "example.com:8080", "/a", "q=1", "prefix", "/")
    assert loc == "http://example.com:8080/a?q=1"


def test_redirect_to_https_drops_the_old_port() -> None:
    loc = filters.redirect_location(
        _redirect(scheme="https"), "http", "example.com:8080", "/a", "", "prefix", "/"
    )
    assert loc == "https://example.com/a"


def test_redirect_keeps_an_explicit_port_from_a_full_authority() -> None:
    r = _redirect(scheme="https", authority=tables.Authority(full="example.org:8443"))
    assert filters.redirect_location(r, "http", "x", "/p", "", "prefix", "/") == "https://example.org:8443/p"


def test_redirect_omits_the_default_port_of_the_scheme() -> None:
    r = _redirect(authority=tables.Authority(port=80))
    assert (
        filters.redirect_location(r, "http", "example.com:8080", "/p", "", "prefix", "/")
        == "http://example.com/p"
    )


def test_authority_rewrite_host_keeps_the_port() -> None:
    assert (
        filters.rewrite_authority(tables.Authority(host="b.example"), "a.example:81", None) == "b.example:81"
    )


def test_authority_rewrite_auto_uses_the_backend_address() -> None:
    target = tables.Target(name="t", host="10.0.0.1", port=8080)
    assert filters.rewrite_authority(tables.Authority(auto=True), "a.example", target) == "10.0.0.1:8080"


def _cors(**kw: object) -> tables.Cors:
    base: dict[str, object] = {
        "allow_any_origin": False,
        "allow_origins": frozenset({"https://a.example"}),
        "origin_patterns": (re.compile(r"https://[^/]*\.b\.example"),),
        "allow_credentials": False,
        "allow_methods": b"GET",
        "allow_headers": b"",
        "expose_headers": b"",
        "max_age": b"",
    }
    base.update(kw)
    return tables.Cors(**base)  # type: ignore[arg-type]


def test_cors_allows_listed_and_wildcard_pattern_origins_only() -> None:
    c = _cors()
    assert c.allows("https://a.example")
    assert c.allows("https://x.b.example")
    assert not c.allows("https://evil.example")


def test_cors_with_credentials_echoes_the_origin_instead_of_a_star() -> None:
    c = _cors(allow_any_origin=True, allow_credentials=True)
    headers = dict(filters.cors_response_headers(c, "https://z.example"))
    assert headers[b"access-control-allow-origin"] == b"https://z.example"
    assert headers[b"access-control-allow-credentials"] == b"true"
