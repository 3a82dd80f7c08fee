"""GRPCRoute method matches as path matches, and the errors that name the field (the golden files
in testdata/grpcroutes cover whole routes)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.gateway import v1 as gw
from controller.translate import filters, grpcroutes


def _match(**method: Any) -> gw.GRPCRouteMatch:
    return gw.parse(gw.GRPCRouteMatch, {"method": method} if method else {})


@pytest.mark.parametrize(
    ("method", "kind", "value", "precedence"),
    [
        ({"service": "a.B", "method": "C"}, "exact", "/a.B/C", 0),
        ({"type": "Exact", "service": "a.B"}, "regex", "/a\\.B/[^/]+", 3 << 16),
        ({"method": "C"}, "regex", "/[^/]+/C", 1),
        (
            {"type": "RegularExpression", "service": "a\\..*", "method": "C|D"},
            "regex",
            "/(?:a\\..*)/(?:C|D)",
            0,
        ),
        ({"type": "RegularExpression", "service": "a\\.B"}, "regex", "/(?:a\\.B)/(?:[^/]+)", 0),
        ({"type": "RegularExpression", "method": "Get.*"}, "regex", "/(?:[^/]+)/(?:Get.*)", 0),
        ({}, "prefix", "/", 0),
    ],
)
def test_each_method_match_becomes_the_documented_path_match(
    method: dict[str, str], kind: str, value: str, precedence: int
) -> None:
    m = grpcroutes.match(_match(**method), "m")
    assert (m.path.WhichOneof("kind"), getattr(m.path, kind), m.precedence) == (kind, value, precedence)


@pytest.mark.parametrize(
    ("path", "matched"),
    [("/a.B/C", True), ("/x.Y/C", True), ("/a.B/CD", False), ("/C", False), ("/a/b/C", False)],
)
def test_a_method_only_match_takes_any_service_but_only_that_method(path: str, matched: bool) -> None:
    pattern = grpcroutes.match(_match(method="C"), "m").path.regex
    assert (re.fullmatch(pattern, path) is not None) is matched


def test_a_bad_service_regular_expression_is_refused_naming_the_field() -> None:
    m = _match(type="RegularExpression", service="a(")
    with pytest.raises(filters.Unsupported, match=r"^spec\.rules\[0\]\.matches\[1\]\.method\.service"):
        grpcroutes.match(m, "spec.rules[0].matches[1]")


def test_headers_match_by_lower_case_name_and_the_first_entry_per_name_counts() -> None:
    m = gw.parse(
        gw.GRPCRouteMatch,
        {"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]},
    )
    headers = grpcroutes.match(m, "m").headers
    assert [(h.name, h.value.exact) for h in headers] == [("x-a", "1")]
