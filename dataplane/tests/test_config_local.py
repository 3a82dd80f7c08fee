"""The standalone loader: invalid files are rejected by field path, valid ones lower to resources.

Every rejection must say where (`binds[0].listeners[0].routes[0]...`) and what is wrong. A valid
file lowers to one resource per bind, listener, route and named backend, and those resources
compile without problems.
"""

from __future__ import annotations

import textwrap

import pytest

from dataplane import errors
from dataplane.config import compile as config_compile
from dataplane.config import local

ROUTE = "binds[0].listeners[0].routes[0]"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(errors.ConfigError) as info:
        local.parse(textwrap.dedent(text), env=env or {})
    return info.value.problems


def one_route(route_body: str) -> str:
    """A file with one bind, one listener and the given route (YAML lines at route level)."""
    body = textwrap.indent(textwrap.dedent(route_body).strip(), " " * 6)
    return f"binds:\n- port: 8080\n  listeners:\n  - routes:\n    - {body.lstrip()}\n"


# --------------------------------------------------------------------------------------------
# Rejections name the field path


def test_invalid_path_regex_names_the_field_path() -> None:
    got = problems(one_route('matches: [{path: {regex: "(unclosed"}}]\nbackends: [{host: "127.0.0.1:9000"}]'))
    assert len(got) == 1
    assert got[0].startswith(f"{ROUTE}.matches[0].path.regex: invalid regular expression '(unclosed'")


def test_invalid_header_regex_names_the_field_path() -> None:
    got = problems(
        one_route(
            'matches: [{headers: [{name: x, value: {regex: "[a-"}}]}]\nbackends: [{host: "127.0.0.1:9000"}]'
        )
    )
    assert got[0].startswith(f"{ROUTE}.matches[0].headers[0].value.regex: invalid regular expression")


def test_unknown_route_field_is_named() -> None:
    got = problems(one_route('matchez: []\nbackends: [{host: "127.0.0.1:9000"}]'))
    assert got == [f"{ROUTE}.matchez: unknown field"]


def test_unknown_top_level_field_is_named() -> None:
    assert problems("bindz: []\n") == ["bindz: unknown field"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            one_route('policies: {extProc: {host: "a:1"}}\nbackends: [{host: "127.0.0.1:9000"}]'),
            f"{ROUTE}.policies.extProc",
        ),
        (
            one_route('policies: {oidc: {}}\nbackends: [{host: "127.0.0.1:9000"}]'),
            f"{ROUTE}.policies.oidc",
        ),
        (
            one_route('backends: [{host: "127.0.0.1:9000", policies: {backendTLS: {spiffe: {}}}}]'),
            f"{ROUTE}.backends[0].policies.backendTLS.spiffe",
        ),
        ("llm: {models: []}\n", "llm"),
        ("frontendPolicies: {tracing: {}}\n", "frontendPolicies.tracing"),
    ],
)
def test_unsupported_agentgateway_field_is_named_as_not_supported(text: str, path: str) -> None:
    assert problems(text) == [f"{path}: not supported by agentgw yet"]


@pytest.mark.parametrize("host", ["localhost", "localhost:99999", "localhost:0", ":8080", "localhost:http"])
def test_backend_host_without_a_valid_port_is_rejected(host: str) -> None:
    got = problems(one_route(f'backends: [{{host: "{host}"}}]'))
    assert got == [
        f"{ROUTE}.backends[0].host: invalid host {host!r}: expected 'host:port', e.g. 'localhost:8080'"
    ]


def test_invalid_listener_hostname_names_the_field_path() -> None:
    got = problems("binds:\n- port: 8080\n  listeners:\n  - hostname: 'bad_host!'\n")
    assert got[0].startswith("binds[0].listeners[0].hostname: invalid hostname 'bad_host!'")


def test_bad_duration_names_the_field_path() -> None:
    got = problems(
        one_route('policies: {timeout: {requestTimeout: 10 seconds}}\nbackends: [{host: "127.0.0.1:9000"}]')
    )
    expected = "invalid duration '10 seconds': expected e.g. '500ms', '10s', '1m30s'"
    assert got == [f"{ROUTE}.policies.timeout.requestTimeout: {expected}"]


def test_bad_duration_in_global_config_names_the_field_path() -> None:
    got = problems("config: {connectionTerminationDeadline: 5 minutes}\n")
    assert got[0].startswith("config.connectionTerminationDeadline: invalid duration '5 minutes'")


def test_missing_environment_variable_names_the_field_path_and_the_variable() -> None:
    got = problems(one_route('backends: [{host: "127.0.0.1:$MISSING_PORT"}]'))
    assert got == [f"{ROUTE}.backends[0].host: environment variable MISSING_PORT is not set"]


def test_duplicate_bind_port_is_rejected() -> None:
    got = problems("binds:\n- port: 8080\n  listeners: []\n- port: 8080\n  listeners: []\n")
    assert got == ["binds: port 8080 is bound twice"]


def test_reference_to_an_undefined_named_backend_names_the_field_path() -> None:
    got = problems(one_route("backends: [{backend: nope}]"))
    assert got == [f"{ROUTE}.backends[0].backend: no backend named 'nope' in top-level backends"]


def test_mirror_to_an_undefined_named_backend_names_the_field_path() -> None:
    got = problems(
        one_route(
            "policies: {requestMirror: {backend: {backend: nope}, percentage: 1.0}}\n"
            'backends: [{host: "127.0.0.1:9000"}]'
        )
    )
    assert len(got) == 1 and got[0].startswith(f"{ROUTE}.policies.requestMirror")
    assert "nope" in got[0]


def test_two_listeners_with_the_same_name_on_one_bind_are_rejected_by_field_path() -> None:
    got = problems(
        """
        binds:
        - port: 8080
          listeners:
          - name: web
          - name: web
            hostname: example.com
        """
    )
    assert len(got) == 1 and got[0].startswith("binds[0].listeners[1].name")


def test_every_problem_is_reported_not_only_the_first() -> None:
    got = problems(one_route('matches: [{path: {regex: "("}}]\nbackends: [{host: "nope"}]'))
    assert [p.split(":")[0] for p in got] == [f"{ROUTE}.matches[0].path.regex", f"{ROUTE}.backends[0].host"]


def test_invalid_yaml_is_reported_as_such() -> None:
    got = problems("binds: [\n")
    assert len(got) == 1 and got[0].startswith("invalid YAML:")


def test_a_file_that_is_not_a_mapping_is_rejected() -> None:
    assert problems("- a\n") == ["the file must be a mapping with keys such as config, binds, backends"]


# --------------------------------------------------------------------------------------------
# Environment substitution


def test_environment_variables_fill_strings_and_numbers() -> None:
    text = one_route('backends: [{host: "${HOST}:$PORT"}]').replace("port: 8080", "port: $BIND")
    cfg = local.parse(text, env={"HOST": "10.0.0.1", "PORT": "9000", "BIND": "8081"})
    (bind,) = [r.bind for r in cfg.resources if r.WhichOneof("kind") == "bind"]
    (route,) = [r.route for r in cfg.resources if r.WhichOneof("kind") == "route"]
    assert bind.port == 8081
    assert (route.backends[0].ref.host.host, route.backends[0].ref.host.port) == ("10.0.0.1", 9000)


def test_a_double_dollar_is_a_literal_dollar() -> None:
    text = one_route(
        'policies: {requestHeaderModifier: {set: {x-price: "$$5"}}}\nbackends: [{host: "127.0.0.1:9000"}]'
    )
    (route,) = [r.route for r in local.parse(text, env={}).resources if r.WhichOneof("kind") == "route"]
    assert route.policies.request_header_modifier.set[0].value == "$5"


# --------------------------------------------------------------------------------------------
# Lowering

VALID = """
config: {gateway: gw}
backends:
- name: echo
  host: 127.0.0.1:9000
binds:
- port: 8080
  listeners:
  - name: web
    hostname: example.com
    routes:
    - name: api
      matches: [{path: {pathPrefix: /api}}]
      backends: [{backend: echo}]
    - backends: [{host: "127.0.0.1:9001", weight: 3}]
  - routes:
    - name: fallback
      backends: [{backend: echo}]
- port: 8081
  listeners:
  - name: admin
"""


def test_a_valid_file_lowers_to_one_resource_per_bind_listener_route_and_named_backend() -> None:
    cfg = local.parse(VALID, env={})
    keys = [(r.WhichOneof("kind"), config_compile.resource_key(r)) for r in cfg.resources]
    assert keys == [
        ("backend", "backend/echo"),
        ("bind", "bind/8080"),
        ("listener", "bind/8080/web"),
        ("route", "bind/8080/web/api/0"),
        ("route", "bind/8080/web/route1/1"),
        ("listener", "bind/8080/listener1"),
        ("route", "bind/8080/listener1/fallback/0"),
        ("bind", "bind/8081"),
        ("listener", "bind/8081/admin"),
    ]


def test_routes_point_to_their_listener_and_listeners_to_their_bind() -> None:
    cfg = local.parse(VALID, env={})
    listeners = {r.listener.key: r.listener for r in cfg.resources if r.WhichOneof("kind") == "listener"}
    routes = [r.route for r in cfg.resources if r.WhichOneof("kind") == "route"]
    assert {lis.bind_key for lis in listeners.values()} == {"bind/8080", "bind/8081"}
    assert all(route.listener_key in listeners for route in routes)
    assert listeners["bind/8080/web"].gateway_name == "gw"
    assert listeners["bind/8080/web"].hostname == "example.com"


def test_file_order_becomes_creation_order() -> None:
    cfg = local.parse(VALID, env={})
    routes = [r.route for r in cfg.resources if r.WhichOneof("kind") == "route"]
    assert [r.creation_unix_seconds for r in routes] == [0, 1, 2]


def test_a_valid_file_compiles_without_problems() -> None:
    compiled = config_compile.compile_resources(local.parse(VALID, env={}).resources)
    assert compiled.problems == {}
    assert compiled.tables.route_count == 3
    assert sorted(compiled.tables.binds) == [8080, 8081]
