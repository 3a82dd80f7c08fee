"""Hostname intersection between listeners and routes (Gateway API HTTPRoute `hostnames`)."""

from __future__ import annotations

import pytest

from controller.translate import hostnames


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        ("foo.example.com", "foo.example.com", "foo.example.com"),
        ("foo.example.com", "bar.example.com", None),
        ("*.example.com", "foo.example.com", "foo.example.com"),
        ("*.example.com", "foo.bar.example.com", "foo.bar.example.com"),
        ("*.example.com", "example.com", None),
        ("*.example.com", "fooexample.com", None),
        ("foo.example.com", "*.example.com", "foo.example.com"),
        ("example.com", "*.example.com", None),
        ("*.example.com", "*.example.com", "*.example.com"),
        ("*.example.com", "*.foo.example.com", "*.foo.example.com"),
        ("*.foo.example.com", "*.example.com", "*.foo.example.com"),
        ("*.example.com", "*.example.org", None),
        ("Foo.Example.COM", "foo.example.com", "foo.example.com"),
    ],
)
def test_two_hostnames_intersect_in_the_more_specific_one(
    listener: str, route: str, expected: str | None
) -> None:
    assert hostnames.pair(listener, route) == expected


def test_a_route_without_hostnames_takes_the_listeners() -> None:
    assert hostnames.intersect("*.example.com", []) == ()
    assert hostnames.intersect(None, []) == ()


def test_a_listener_without_hostname_takes_the_routes_names_lowercased_once_each() -> None:
    assert hostnames.intersect(None, ["A.example.com", "a.example.com", "*.b.org"]) == (
        "a.example.com",
        "*.b.org",
    )


def test_only_the_intersecting_route_hostnames_are_kept() -> None:
    route = ["api.example.com", "example.com", "unrelated.org", "*.v2.example.com"]
    assert hostnames.intersect("*.example.com", route) == ("api.example.com", "*.v2.example.com")


def test_an_exact_listener_under_several_route_wildcards_appears_once() -> None:
    assert hostnames.intersect("a.b.example.com", ["*.example.com", "*.b.example.com"]) == (
        "a.b.example.com",
    )


def test_nothing_intersecting_is_none_not_empty() -> None:
    assert hostnames.intersect("foo.example.com", ["bar.example.com"]) is None
