"""The CEL fast path answers exactly like cel-cpp: a differential test over generated expressions."""

from __future__ import annotations

import types
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from api import errors as api_errors
from dataplane.policies import cel, celfast, context

WORDS = ["GET", "POST", "a", "b", "/api", "", "alice", "admins"]
SELECTS = [
    "request.method",
    "request.path",
    'request.headers["x-a"]',
    "request.headers.x_b",
    "jwt.sub",
    "jwt.admin",
    "jwt.groups",
    "jwt.n",
    "jwt.nested.k",
    "apiKey.team",
]


def _literal() -> st.SearchStrategy[str]:
    words = st.sampled_from(WORDS).map(lambda w: f'"{w}"')
    lists = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(
        lambda ws: "[" + ", ".join(f'"{w}"' for w in ws) + "]"
    )
    return st.one_of(words, st.sampled_from(["true", "false"]), lists)


def _operand() -> st.SearchStrategy[str]:
    select = st.sampled_from(SELECTS)
    method = st.tuples(
        select, st.sampled_from(["startsWith", "endsWith", "contains"]), st.sampled_from(WORDS)
    ).map(lambda t: f'{t[0]}.{t[1]}("{t[2]}")')
    return st.one_of(select, method, _literal())


def _compare() -> st.SearchStrategy[str]:
    op = st.sampled_from(["==", "!=", "in"])
    return st.one_of(
        _operand(),
        st.tuples(_operand(), op, _operand()).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    )


expressions = st.recursive(
    _compare(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        inner.map(lambda e: f"!({e})"),
    ),
    max_leaves=5,
)

claim_values = st.one_of(
    st.sampled_from(WORDS), st.booleans(), st.integers(-2, 2), st.lists(st.sampled_from(WORDS), max_size=2)
)


@st.composite
def contexts(draw: st.DrawFn) -> context.RequestContext:
    headers: list[tuple[bytes, bytes]] = []
    for name in (b"x-a", b"x_b"):
        for value in draw(st.lists(st.sampled_from(WORDS), max_size=2)):
            headers.append((name, value.encode()))
    ex = types.SimpleNamespace(
        method=draw(st.sampled_from(["GET", "POST"])),
        path=draw(st.sampled_from(["/api", "/api/x", "/", "/admins"])),
        query="",
        authority="gw.test",
        version=b"1.1",
        headers=headers,
        client_addr="127.0.0.1",
        client_port=1,
        conn=None,
    )
    ctx = context.RequestContext(ex, None, headers, ex.path)  # type: ignore[arg-type]
    jwt = draw(
        st.none()
        | st.dictionaries(
            st.sampled_from(["sub", "admin", "groups", "n", "nested"]), claim_values, max_size=4
        )
    )
    if jwt is not None and draw(st.booleans()):
        jwt["nested"] = {"k": draw(claim_values)}
    ctx.jwt = jwt
    ctx.api_key = draw(st.none() | st.fixed_dictionaries({"team": claim_values}))
    return ctx


def _outcome(expr: cel.Expression, ctx: context.RequestContext) -> Any:
    try:
        return ("value", expr.eval(ctx))
    except cel.CelError:
        return ("error", None)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(source=expressions, ctx=contexts())
def test_the_fast_path_agrees_with_cel_cpp(source: str, ctx: context.RequestContext) -> None:
    try:
        expr = cel.compile(source, "x")
    except api_errors.ConfigError:
        assume(False)
        return
    fast = expr._fast
    assume(fast is not None)
    got = _outcome(expr, ctx)
    expr._fast = None
    try:
        ctx.cel_vars = None
        expected = _outcome(expr, ctx)
    finally:
        expr._fast = fast
    assert got == expected, source


@pytest.mark.parametrize(
    "source",
    [
        'request.method == "GET"',
        'request.headers["x-team"] in ["a", "b"]',
        'jwt.sub == "alice" && request.path.startsWith("/api")',
        '!(apiKey.team == "red") || request.method != "POST"',
        "(jwt.admin == true)",
    ],
)
def test_common_rules_take_the_fast_path(source: str) -> None:
    assert celfast.compile(source) is not None


@pytest.mark.parametrize(
    "source",
    [
        "size(request.headers) > 0",
        'request.method.lowerAscii() == "get"',
        "jwt.n > 1",
        'request.headers["X-Team"] == "a"',
        'request.host == "x"',
        r'request.path == "a\"b"',
        'default(jwt.sub, "") == "a"',
        'r"raw" == request.path',
    ],
)
def test_anything_else_is_left_to_cel_cpp(source: str) -> None:
    assert celfast.compile(source) is None
