"""Policy attachment: field-by-field precedence across gateway, listener and route, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.config import attach


def _src(
    key: str, *, override: bool = False, order: tuple[int, int, str] | None = None, **fields: str
) -> attach.Source:
    """A source whose fields are CSRF origins or authorization rules tagged with `key`."""
    p = pb.TrafficPolicy()
    for field in fields:
        if field == "csrf":
            p.csrf.additional_origins.append(key)
        elif field == "authorization":
            p.authorization.rules.append(pb.AuthorizationRule(expression=key))
        elif field == "cors":
            p.cors.allow_origins.append(key)
    return attach.Source(key=key, policy=p, override=override, order=order or (1, 0, key))


CASES = [
    (
        "the route's value wins over the listener's and the gateway's",
        [[_src("gw", csrf="")], [_src("lis", csrf="")], [_src("route", csrf="")]],
        {"csrf": "route"},
    ),
    (
        "a field only the listener sets is inherited by the route",
        [[], [_src("lis", cors="")], [_src("route", csrf="")]],
        {"cors": "lis", "csrf": "route"},
    ),
    (
        "a field only the gateway sets is inherited",
        [[_src("gw", authorization="")], [], []],
        {"authorization": "gw"},
    ),
    (
        "an Override policy at the gateway wins over the route",
        [[_src("gw", override=True, csrf="")], [], [_src("route", csrf="")]],
        {"csrf": "gw"},
    ),
    (
        "the least specific Override wins over a more specific Override",
        [[_src("gw", override=True, csrf="")], [_src("lis", override=True, csrf="")], []],
        {"csrf": "gw"},
    ),
    (
        "an Override only takes the fields it sets",
        [[_src("gw", override=True, csrf="")], [], [_src("route", csrf="", cors="")]],
        {"csrf": "gw", "cors": "route"},
    ),
    (
        "at one level an inline policy wins over a Policy resource",
        [
            [],
            [_src("targeted", order=(1, 0, "targeted"), csrf=""), _src("inline", order=(0, 0, ""), csrf="")],
            [],
        ],
        {"csrf": "inline"},
    ),
    (
        "at one level the older Policy wins",
        [[], [], [_src("new", order=(1, 20, "new"), csrf=""), _src("old", order=(1, 10, "old"), csrf="")]],
        {"csrf": "old"},
    ),
    (
        "fields combine from every level",
        [[_src("gw", authorization="")], [_src("lis", cors="")], [_src("route", csrf="")]],
        {"authorization": "gw", "cors": "lis", "csrf": "route"},
    ),
    ("nothing set gives nothing", [[], [], []], {}),
]


@pytest.mark.parametrize(("name", "levels", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_precedence_follows_the_table(
    name: str, levels: list[list[attach.Source]], expected: dict[str, str]
) -> None:
    chosen = attach.merge(levels)
    assert {field: source.key for field, source in chosen.items()} == expected


def test_the_merged_policy_copies_each_chosen_field() -> None:
    chosen = attach.merge([[_src("gw", authorization="")], [], [_src("route", csrf="")]])
    merged = attach.merged_policy(chosen)
    assert list(merged.csrf.additional_origins) == ["route"]
    assert merged.authorization.rules[0].expression == "gw"
    assert not merged.HasField("cors")


def _compile(text: str) -> Any:
    from api import standalone
    from dataplane.config import compile as compiler

    return compiler.compile_resources(standalone.lower(standalone.load(text)))


LISTENER_POLICY = """
binds:
- port: 3000
  listeners:
  - name: main
    policies:
      authorization: {rules: ['request.method == "GET"']}
    routes:
    - name: a
      matches: [{path: {pathPrefix: /a}}]
      backends: [{host: "127.0.0.1:9"}]
    - name: b
      matches: [{path: {pathPrefix: /b}}]
      policies:
        authorization: {rules: ['request.method == "POST"']}
        localRateLimit: [{maxTokens: 1, tokensPerFill: 1, fillInterval: 1s}]
      backends: [{host: "127.0.0.1:9"}]
    - name: c
      backends: [{host: "127.0.0.1:9"}]
policies:
- name: gw
  target: {gateway: {gatewayName: default, gatewayNamespace: default}}
  policy: {csrf: {}}
"""


def _routes(compiled: Any) -> dict[str, Any]:
    listener = compiled.tables.binds[3000].listeners.first("any")
    out = {}
    for name in ("a", "b", "c"):
        match = listener.routes.lookup("any", "GET", f"/{name}", "", lambda _: None)
        out[match.route.name] = match.route
    return out


def test_listener_and_gateway_policies_reach_every_route_and_share_one_compiled_step() -> None:
    compiled = _compile(LISTENER_POLICY)
    assert compiled.problems == {}
    routes = _routes(compiled)
    a, b, c = routes["a"].policy.steps, routes["b"].policy.steps, routes["c"].policy.steps
    assert len(a) == 2 and len(c) == 2  # csrf (gateway) + authorization (listener)
    assert a[0] is c[0] and a[1] is c[1]  # one compiled step per source, shared
    assert len(b) == 3  # csrf, the route's own authorization, its rate limit
    assert b[0] is a[0] and b[1] is not a[1]


def test_an_unchanged_policy_keeps_its_compiled_step_across_a_reload() -> None:
    first = _routes(_compile(LISTENER_POLICY))["b"].policy.steps
    second = _routes(_compile(LISTENER_POLICY))["b"].policy.steps
    assert first[2] is second[2]  # the rate limit keeps its buckets


def test_a_bad_cel_rule_is_a_problem_of_the_resource_that_carries_it() -> None:
    compiled = _compile(LISTENER_POLICY.replace('request.method == "POST"', "request.method =="))
    assert list(compiled.problems) == ["bind/3000/main/b/1"]
    assert "invalid CEL expression" in compiled.problems["bind/3000/main/b/1"]
    broken_policy = _compile(
        LISTENER_POLICY.replace("policy: {csrf: {}}", "policy: {authorization: {rules: ['nope(']}}")
    )
    assert list(broken_policy.problems) == ["policy/gw"]


RULES = """
binds:
- port: 3000
  listeners:
  - name: main
    routes:
    - name: a
      ruleName: first
      matches: [{path: {pathPrefix: /a}}]
      backends: [{host: "127.0.0.1:9"}]
    - name: a
      ruleName: second
      matches: [{path: {pathPrefix: /b}}]
      backends: [{backend: own}]
    - name: c
      backends: [{host: "127.0.0.1:9"}]
backends:
- name: own
  host: 127.0.0.1:10
  policies: {http: {requestTimeout: 7s}}
policies:
- name: whole-route
  target: {route: {name: a, namespace: default}}
  policy: {csrf: {additionalOrigins: [https://route.example]}}
- name: one-rule
  target: {route: {name: a, namespace: default, ruleName: first}}
  policy: {csrf: {additionalOrigins: [https://rule.example]}}
"""


def _steps_csrf_origins(route: Any) -> frozenset[str]:
    (step,) = route.policy.steps
    return step.trusted  # type: ignore[no-any-return]


def test_a_policy_on_one_rule_wins_over_one_on_the_whole_route_even_when_older() -> None:
    from api import standalone
    from dataplane.config import compile as compiler

    resources = standalone.lower(standalone.load(RULES))
    # Make the whole-route policy the older one: the rule level must still win.
    for r in resources:
        if r.WhichOneof("kind") == "policy":
            r.policy.creation_unix_seconds = 0 if r.policy.name == "whole-route" else 100
    compiled = compiler.compile_resources(resources)
    assert compiled.problems == {}
    listener = compiled.tables.binds[3000].listeners.first("x")
    first = listener.routes.lookup("x", "GET", "/a", "", lambda _: None).route
    second = listener.routes.lookup("x", "GET", "/b", "", lambda _: None).route
    assert _steps_csrf_origins(first) == {"https://rule.example"}
    assert _steps_csrf_origins(second) == {"https://route.example"}


def test_backend_defaults_from_a_listener_policy_reach_every_backend_but_a_backends_own_settings_win() -> (
    None
):
    from api import standalone
    from dataplane.config import compile as compiler

    resources = standalone.lower(standalone.load(RULES))
    resources.append(
        pb.Resource(
            policy=pb.Policy(
                key="policy/defaults",
                name="defaults",
                target=pb.PolicyTarget(listener_key="bind/3000/main"),
                backend=pb.BackendPolicy(
                    request_timeout={"seconds": 3},
                    request_header_modifier=pb.HeaderModifier(set=[pb.HeaderPair(name="x-gw", value="1")]),
                ),
            )
        )
    )
    compiled = compiler.compile_resources(resources)
    assert compiled.problems == {}
    listener = compiled.tables.binds[3000].listeners.first("x")
    plain = listener.routes.lookup("x", "GET", "/a", "", lambda _: None).route.targets[0]
    own = listener.routes.lookup("x", "GET", "/b", "", lambda _: None).route.targets[0]
    assert plain.request_timeout == 3.0
    assert plain.request_headers is not None and plain.request_headers.set == ((b"x-gw", b"1"),)
    assert own.request_timeout == 7.0  # the backend's own setting wins
    assert own.request_headers is not None  # the default fills what the backend does not set
