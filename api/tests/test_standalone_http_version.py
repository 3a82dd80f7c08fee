"""Standalone backend policy `http.version`: agentgateway's spellings lower to
`BackendPolicy.http_version`; anything else is an error naming the field path."""

from __future__ import annotations

import pytest

from api import errors, standalone
from api.proto.agentgw.v1 import resource_pb2 as pb

BACKEND = "binds[0].listeners[0].routes[0].backends[0].policies.http.version"


def file_with(version: str) -> str:
    return (
        "binds:\n- port: 8080\n  listeners:\n  - routes:\n"
        f'    - backends: [{{host: "127.0.0.1:9000", policies: {{http: {{version: {version}}}}}}}]\n'
    )


def lowered_version(version: str) -> int:
    resources = standalone.lower(standalone.load(file_with(version), env={}))
    routes = [r.route for r in resources if r.HasField("route")]
    assert len(routes) == 1
    return routes[0].backends[0].policies.http_version


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ('"2"', pb.HTTP_VERSION_HTTP2),
        ("2", pb.HTTP_VERSION_HTTP2),
        ('"HTTP/2"', pb.HTTP_VERSION_HTTP2),
        ('"HTTP/2.0"', pb.HTTP_VERSION_HTTP2),
        ('"1.1"', pb.HTTP_VERSION_HTTP1),
        ("1.1", pb.HTTP_VERSION_HTTP1),
        ('"HTTP/1.1"', pb.HTTP_VERSION_HTTP1),
    ],
)
def test_each_agentgateway_spelling_of_the_http_version_lowers_to_the_backend_policy(
    spelling: str, expected: int
) -> None:
    assert lowered_version(spelling) == expected


def test_a_backend_without_a_version_speaks_the_default() -> None:
    text = 'binds:\n- port: 8080\n  listeners:\n  - routes:\n    - backends: [{host: "127.0.0.1:9000"}]\n'
    resources = standalone.lower(standalone.load(text, env={}))
    route = next(r.route for r in resources if r.HasField("route"))
    assert route.backends[0].policies.http_version == pb.HTTP_VERSION_UNSPECIFIED


@pytest.mark.parametrize("spelling", ['"3"', '"h2c"', "true", '"HTTP/1.0"'])
def test_an_unknown_http_version_is_an_error_naming_the_field(spelling: str) -> None:
    with pytest.raises(errors.ConfigError) as info:
        standalone.load(file_with(spelling), env={})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{BACKEND}: unknown HTTP version")
