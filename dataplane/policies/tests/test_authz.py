"""CEL authorization rules: allow, deny, require, and how evaluation errors count."""

from __future__ import annotations

import time
from typing import Any

import pytest

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import authz, cel, context

ALLOW, DENY, REQUIRE = pb.AuthorizationRule.ALLOW, pb.AuthorizationRule.DENY, pb.AuthorizationRule.REQUIRE


class _Conn:
    scheme = "http"


class _Exchange:
    def __init__(self, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None) -> None:
        self.method = method
        self.path = path
        self.query = ""
        self.authority = "gw.test"
        self.version = b"1.1"
        self.client_addr = "127.0.0.1"
        self.client_port = 1
        self.conn = _Conn()
        self.started = time.monotonic()
        self.headers = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]


def _allowed(rules: list[tuple[int, str]], jwt: dict[str, Any] | None = None, **request: Any) -> bool:
    step = authz.compile(
        pb.Authorization(rules=[pb.AuthorizationRule(kind=k, expression=e) for k, e in rules]),
        "authz",
        cel.compile,
    )
    ex = _Exchange(**request)
    ctx = context.RequestContext(ex, None, ex.headers, ex.path)  # type: ignore[arg-type]
    ctx.jwt = jwt
    try:
        assert context.run([step], ctx) is None
    except errors.Forbidden:
        return False
    return True


CASES = [
    ("one true allow rule allows", [(ALLOW, "true")], {}, True),
    ("allow rules that are all false deny", [(ALLOW, "false"), (ALLOW, "1 == 2")], {}, False),
    ("any true allow rule is enough", [(ALLOW, "false"), (ALLOW, 'request.method == "GET"')], {}, True),
    ("a true deny rule denies even when an allow rule is true", [(ALLOW, "true"), (DENY, "true")], {}, False),
    ("a false deny rule alone allows", [(DENY, "false")], {}, True),
    ("every require rule must be true", [(REQUIRE, "true"), (REQUIRE, "false")], {}, False),
    ("require rules that are all true allow", [(REQUIRE, "true"), (REQUIRE, "1 == 1")], {}, True),
    ("an allow rule that fails to evaluate does not allow", [(ALLOW, 'jwt.sub == "a"')], {}, False),
    (
        "a failing allow rule is skipped when another allows",
        [(ALLOW, 'jwt.sub == "a"'), (ALLOW, "true")],
        {},
        True,
    ),
    ("a require rule that fails to evaluate denies", [(REQUIRE, 'jwt.sub == "a"')], {}, False),
    (
        "a failing require denies even when the others are false",
        [(REQUIRE, 'jwt.sub == "a"'), (REQUIRE, "false")],
        {},
        False,
    ),
    ("a deny rule that fails to evaluate does not deny", [(DENY, 'jwt.sub == "a"')], {}, True),
    (
        "a failing deny next to a true deny still denies",
        [(DENY, 'jwt.sub == "a"'), (DENY, "true")],
        {},
        False,
    ),
    ("claims reach the rules", [(REQUIRE, '"admins" in jwt.groups')], {"jwt": {"groups": ["admins"]}}, True),
    ("a non-bool result counts as not true", [(ALLOW, "jwt.name")], {"jwt": {"name": "x"}}, False),
    (
        "request fields reach the rules",
        [(REQUIRE, 'request.headers["x-team"] in ["a", "b"]'), (ALLOW, 'request.path.startsWith("/api")')],
        {"headers": {"x-team": "a"}, "path": "/api/x"},
        True,
    ),
]


@pytest.mark.parametrize(("name", "rules", "kwargs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_authorization_rules_decide_as_the_table_says(
    name: str, rules: list[tuple[int, str]], kwargs: dict[str, Any], expected: bool
) -> None:
    assert _allowed(rules, **kwargs) is expected


def test_a_bad_rule_is_a_config_error_naming_the_rule() -> None:
    msg = pb.Authorization(
        rules=[pb.AuthorizationRule(expression="true"), pb.AuthorizationRule(expression="(")]
    )
    with pytest.raises(api_errors.ConfigError) as info:
        authz.compile(msg, "policies.authorization", cel.compile)
    assert info.value.problems[0].startswith("policies.authorization.rules[1]: invalid CEL expression")
