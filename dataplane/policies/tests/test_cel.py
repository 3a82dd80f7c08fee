"""Tests of the CEL engine (dataplane.policies.cel): variables, functions, default(), errors,
lazy building of roots, and that compile only ever fails with ConfigError."""

from __future__ import annotations

import datetime
import hashlib
import json
import time
import types
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from api import errors as api_errors
from dataplane.policies import cel, context

HEADERS = [
    (b"host", b"api.example.com:8080"),
    (b"user-agent", b"curl/8.5"),
    (b"x-team", b"a"),
    (b"x-multi", b"one"),
    (b"x-multi", b"two"),
]


def make_ctx(
    *,
    method: str = "GET",
    path: str = "/api/items",
    query: str = "page=2",
    authority: str = "api.example.com:8080",
    headers: list[tuple[bytes, bytes]] | None = None,
    **attrs: Any,
) -> context.RequestContext:
    """A real RequestContext over a minimal stand-in for http1.Exchange."""
    hs = list(HEADERS if headers is None else headers)
    ex = types.SimpleNamespace(
        method=method,
        path=path,
        query=query,
        authority=authority,
        version=b"1.1",
        headers=hs,
        client_addr="192.0.2.7",
        client_port=40123,
        conn=None,
        started=time.monotonic(),
        port=3000,
    )
    ctx = context.RequestContext(ex, None, list(hs), path)  # type: ignore[arg-type]
    for name, value in attrs.items():
        setattr(ctx, name, value)
    return ctx


def ev(source: str, ctx: context.RequestContext | None = None) -> Any:
    return cel.compile(source, "test").eval(ctx or make_ctx())


# -- variables ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("request.method", "GET"),
        ("request.uri", "http://api.example.com:8080/api/items?page=2"),
        ("request.host", "api.example.com"),
        ("request.scheme", "http"),
        ("request.path", "/api/items"),
        ("request.pathAndQuery", "/api/items?page=2"),
        ("request.version", "HTTP/1.1"),
        ('request.headers["x-team"]', "a"),
        ("request.headers.`user-agent`", "curl/8.5"),
        ('request["headers"]["x-team"]', "a"),
    ],
)
def test_request_fields_come_from_the_exchange_and_the_context(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_request_path_is_the_context_path_and_a_missing_query_adds_no_question_mark() -> None:
    ctx = make_ctx(path="/a/b", query="")
    ctx.path = "/a/normalised"
    assert ev("[request.path, request.pathAndQuery, request.uri]", ctx) == [
        "/a/normalised",
        "/a/normalised",
        "http://api.example.com:8080/a/normalised",
    ]


def test_request_host_drops_the_port_also_for_ipv6_literals() -> None:
    assert ev("request.host", make_ctx(authority="[::1]:8080")) == "[::1]"
    assert ev("request.host", make_ctx(authority="example.com")) == "example.com"


def test_request_start_time_is_a_timestamp_near_now() -> None:
    value = ev("request.startTime")
    assert isinstance(value, datetime.datetime)
    assert abs(value.timestamp() - time.time()) < 5
    assert ev('request.startTime > timestamp("2020-01-01T00:00:00Z")') is True


def test_repeated_request_headers_are_joined_with_commas() -> None:
    assert ev('request.headers["x-multi"]') == "one,two"
    assert ev("request.headers")["x-multi"] == "one,two"


def test_request_headers_come_from_the_current_upstream_header_list() -> None:
    ctx = make_ctx()
    ctx.set_header(b"x-team", b"b")
    assert ev('request.headers["x-team"]', ctx) == "b"


def test_request_body_is_available_once_a_step_read_all_of_it() -> None:
    expr = cel.compile("json(request.body).model", "test")
    assert expr.needs_body
    ctx = make_ctx()
    with pytest.raises(cel.CelError):
        expr.eval(ctx)
    ctx.body, ctx.body_complete = b'{"model": "gpt-4o"}', True
    assert expr.eval(ctx) == "gpt-4o"
    assert not cel.compile("request.method", "test").needs_body


def test_response_has_code_and_headers_once_the_response_is_set() -> None:
    ctx = make_ctx()
    assert ev("response", ctx) == {}
    assert ev("has(response.code)", ctx) is False
    ctx.response = (503, [(b"retry-after", b"3"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert ev("response.code", ctx) == 503
    assert ev('response.headers["retry-after"]', ctx) == "3"
    assert ev("response.headers", ctx) == {"retry-after": "3", "x-a": "1,2"}


def test_source_has_the_client_address_and_port() -> None:
    assert ev("source") == {"address": "192.0.2.7", "port": 40123}


def test_source_port_is_zero_when_the_exchange_does_not_know_it() -> None:
    ctx = make_ctx()
    del ctx.ex.client_port
    assert ev("source.port", ctx) == 0


@pytest.mark.parametrize(
    ("root", "attribute", "value"),
    [
        ("jwt", "jwt", {"sub": "alice", "groups": ["eng"]}),
        ("apiKey", "api_key", {"key": "<redacted>", "team": "blue"}),
        ("basicAuth", "basic_auth", {"username": "bob"}),
        ("backend", "backend", {"name": "openai", "type": "ai", "protocol": "llm"}),
        ("extauthz", "extauthz", {"tenant": "t1"}),
        ("metadata", "metadata", {"tier": "gold"}),
    ],
)
def test_identity_and_metadata_roots_are_the_context_dicts(root: str, attribute: str, value: Any) -> None:
    ctx = make_ctx(**{attribute: value})
    assert ev(root, ctx) == value
    first = next(iter(value))
    assert ev(f"{root}.{first}", ctx) == value[first]


@pytest.mark.parametrize(
    "root", ["jwt", "apiKey", "basicAuth", "backend", "extauthz", "metadata", "mcp", "llm"]
)
def test_an_absent_root_is_an_empty_map_so_has_is_false_and_selection_fails(root: str) -> None:
    ctx = make_ctx()
    assert ev(root, ctx) == {}
    assert ev(f"has({root}.sub)", ctx) is False
    with pytest.raises(cel.CelError, match="sub"):
        ev(f"{root}.sub", ctx)


@pytest.mark.parametrize(
    "source",
    [
        'request.method == "GET"',
        'request.headers["x-team"] in ["a","b"]',
        'jwt.sub == "alice"',
        "size(jwt.groups) > 0",
        '"admin" in jwt.roles',
    ],
)
def test_the_usual_rule_shapes_type_check_and_hold(source: str) -> None:
    ctx = make_ctx(jwt={"sub": "alice", "groups": ["eng"], "roles": ["admin"]})
    expr = cel.compile(source, "test")
    assert expr.result_type == "bool"
    assert expr.eval_bool(ctx) is True


# -- functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # strings extension
        ('"AbC".lowerAscii()', "abc"),
        ('"AbC".upperAscii()', "ABC"),
        ('"a-b-c".replace("-", "+")', "a+b+c"),
        ('"a,b,c".split(",")', ["a", "b", "c"]),
        ('"hello".substring(1, 3)', "el"),
        ('"  x  ".trim()', "x"),
        ('["a", "b"].join("/")', "a/b"),
        ('"abcabc".indexOf("c")', 2),
        ('"abcabc".lastIndexOf("c")', 5),
        ('"abc".charAt(1)', "b"),
        ('"prefix-x".stripPrefix("prefix-")', "x"),
        ('"x.json".stripSuffix(".json")', "x"),
        # standard library
        ('"/api/x".startsWith("/api")', True),
        ('"abc".matches("^a.c$")', True),
        ("[1, 2, 3].filter(x, x > 1).map(x, x * 10)", [20, 30]),
        ('timestamp("2024-03-05T10:00:00Z").getFullYear()', 2024),
        ('duration("90s")', datetime.timedelta(seconds=90)),
        # math extension
        ("math.greatest(1, 5, 3)", 5),
        ("math.least([4, 2])", 2),
        ("math.ceil(1.2)", 2.0),
        ("math.abs(-3)", 3),
        # base64 (strings and bytes in, like agentgateway)
        ('base64.encode("hello")', "aGVsbG8="),
        ('base64.encode(b"hello")', "aGVsbG8="),
        ('base64.decode("aGVsbG8=")', b"hello"),
        ('base64.decode("aGVsbG8")', b"hello"),
        ('string(base64.decode("aGVsbG8K"))', "hello\n"),
        # json / toJson
        ('json("{\\"a\\": [1, 2.5, null, true, \\"s\\"]}")', {"a": [1, 2.5, None, True, "s"]}),
        ('json(b"[1]")', [1]),
        ('json("{\\"u\\": {\\"v\\": 7}}").u.v', 7),
        ('toJson({"a": [1, "x", true, null]})', '{"a":[1,"x",true,null]}'),
        ('toJson({"b": 1, "a": 2, "c": {"z": 0, "y": 1}})', '{"a":2,"b":1,"c":{"y":1,"z":0}}'),
        ('toJson({1: "int key", "s": "string key"})', None),
        ('toJson("s")', '"s"'),
        ("toJson(1.5)", "1.5"),
        ("toJson(2u)", "2"),
        ('toJson(b"hi")', '"aGk="'),
        ('toJson(timestamp("2024-03-05T10:00:00Z"))', '"2024-03-05T10:00:00Z"'),
        ('toJson(duration("1.5s"))', '"1.5s"'),
        ('toJson({"é": "ü"})', '{"é":"ü"}'),
        # url
        ('url.encode("a b/c?d=é")', "a%20b%2Fc%3Fd%3D%C3%A9"),
        ('url.decode("a%20b%2Fc")', "a b/c"),
        ('url.decode(url.encode("x y~_.-"))', "x y~_.-"),
        # regexReplace: global and method forms, Rust-style group references
        ('regexReplace("/id/1234/data", "/id/[0-9]*/", "/id/{id}/")', "/id/{id}/data"),
        ('"/id/1234/data".regexReplace("/id/[0-9]*/", "/id/{id}/")', "/id/{id}/data"),
        ('"a1b22".regexReplace("([a-z])([0-9]+)", "$2$1")', "1a22b"),
        ('"k=v".regexReplace("(?P<key>\\\\w+)=(?P<val>\\\\w+)", "${val}=${key}")', "v=k"),
        ('"price 5".regexReplace("[0-9]", "$$")', "price $"),
        ('"ab".regexReplace("(a)", "[$9]")', "[]b"),
        # sha256
        ('sha256.encode("abc")', hashlib.sha256(b"abc").hexdigest()),
        ('sha256.encode(b"abc")', hashlib.sha256(b"abc").hexdigest()),
    ],
)
def test_functions_give_agentgateway_results(source: str, expected: Any) -> None:
    if expected is None:  # unordered output: compare as JSON
        assert json.loads(ev(source)) == {"1": "int key", "s": "string key"}
        return
    assert ev(source) == expected


def test_a_function_that_fails_is_a_cel_error_not_a_crash() -> None:
    for source in ['json("{not json")', 'regexReplace("a", "(", "")', 'base64.decode("*")']:
        with pytest.raises(cel.CelError):
            ev(source)


def test_regex_patterns_are_compiled_once_and_reused() -> None:
    expr = cel.compile('request.path.regexReplace("/items/[0-9]+", "/items/{id}")', "test")
    assert expr.eval(make_ctx(path="/items/42")) == "/items/{id}"
    compiled = cel._PATTERNS["/items/[0-9]+"]
    assert expr.eval(make_ctx(path="/items/43")) == "/items/{id}"
    assert cel._PATTERNS["/items/[0-9]+"] is compiled


# -- default() ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('default(request.headers["x-user"], "anonymous")', "anonymous"),
        ('default(request.headers["x-team"], "anonymous")', "a"),
        ('default(request.headers.`x-team`, "none")', "a"),
        ('default(jwt.role, "user")', "user"),
        ("default(jwt.a.b.c, 3)", 3),
        ('default(jwt.groups[5], "none")', "none"),
        ('default(jwt.groups[0], "none")', "eng"),
        ('default(json("{\\"user\\": {}}").user.preferences.theme, "light")', "light"),
        ('default(json("{\\"user\\": {\\"theme\\": \\"dark\\"}}").user.theme, "light")', "dark"),
        ('default(request.path.split("/")[9], "none")', "none"),
        ('default(jwt.x, default(jwt.y, "second"))', "second"),
        ('default(default(jwt.x, {"k": "v"}).k, "z")', "v"),
        ('default(jwt.missing, ["a", "b"])', ["a", "b"]),
        ("default( jwt . missing , ( 1 + 2 ) )", 3),
        ('"default(x)" + default(jwt.y, "!")', "default(x)!"),
        ('default(.jwt.sub, "root")', "root"),
        ("default(jwt[?'sub'], 'already optional')", "already optional"),
    ],
)
def test_default_falls_back_when_a_selected_field_key_or_index_is_missing(source: str, expected: Any) -> None:
    assert ev(source, make_ctx(jwt={"groups": ["eng"]})) == expected


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("default(jwt.sub)", "takes 2 arguments"),
        ("default(jwt.sub, 1, 2)", "takes 2 arguments"),
        ("default()", "takes 2 arguments"),
        ("default(, 1)", "needs an expression"),
        ("default(jwt, 1)", "must end in a field selection or an index"),
        ("default(jwt.a + 1, 2)", "must be a field or index chain"),
        ('default(request.headers["x"].lowerAscii(), "")', "must end in a field selection or an index"),
        ("default(-jwt.a, 1)", "must be a field or index chain"),
    ],
)
def test_default_rejects_shapes_it_cannot_rewrite_with_a_config_error(source: str, reason: str) -> None:
    with pytest.raises(api_errors.ConfigError) as raised:
        cel.compile(source, "policies[2].transformation.set.x-user")
    message = raised.value.problems[0]
    assert message.startswith("policies[2].transformation.set.x-user: invalid CEL expression ")
    assert reason in message


def test_a_compile_error_inside_a_rewritten_default_shows_the_rewritten_text() -> None:
    with pytest.raises(api_errors.ConfigError, match=r"undeclared reference to 'nope'.*orValue"):
        cel.compile("default(jwt.sub, nope)", "here")


# -- compile errors -----------------------------------------------------------------------------


def test_a_syntax_error_names_where_the_expression_and_the_position() -> None:
    with pytest.raises(api_errors.ConfigError) as raised:
        cel.compile('request.method ==\n  == "GET"', "policies[0].authorization.rules[1]")
    (problem,) = raised.value.problems
    assert problem.startswith("policies[0].authorization.rules[1]: invalid CEL expression 'request.method ==")
    assert "line 2, column 3" in problem


def test_an_unknown_variable_is_a_compile_error_with_its_position() -> None:
    with pytest.raises(
        api_errors.ConfigError, match=r"line 1, column 27: undeclared reference to 'requests.method'"
    ):
        cel.compile('jwt.sub == "x" && requests.method == "GET"', "x")
    with pytest.raises(api_errors.ConfigError, match="undeclared reference to 'foo'"):
        cel.compile("foo == 1", "x")


def test_a_type_error_is_a_compile_error() -> None:
    with pytest.raises(
        api_errors.ConfigError, match=r"line 1, column 3: found no matching overload for '_\+_'"
    ):
        cel.compile('1 + "a"', "x")


def test_text_that_is_not_unicode_is_a_config_error() -> None:
    with pytest.raises(api_errors.ConfigError, match="not valid Unicode"):
        cel.compile('jwt.sub == "\ud800"', "x")


def test_the_same_source_compiles_once() -> None:
    assert cel.compile('request.method == "PUT"', "a") is cel.compile('request.method == "PUT"', "b")


# -- evaluation errors and results --------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["jwt.sub", "1 / 0", 'int(request.headers["x-team"])', 'request.headers["absent"]', "[1][3]"],
)
def test_a_runtime_error_raises_cel_error_naming_the_expression(source: str) -> None:
    with pytest.raises(cel.CelError) as raised:
        ev(source)
    assert str(raised.value).startswith(source + ": ")


def test_eval_bool_refuses_a_result_that_is_not_a_bool() -> None:
    with pytest.raises(cel.CelError, match="not a bool"):
        cel.compile("request.method", "x").eval_bool(make_ctx())
    with pytest.raises(cel.CelError):
        cel.compile("jwt.admin", "x").eval_bool(make_ctx())
    assert cel.compile("jwt.admin", "x").eval_bool(make_ctx(jwt={"admin": True})) is True


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('"plain"', "plain"),
        ('b"by\\xc3\\xa9"', "byé"),
        ('b"\\xff"', "\ufffd"),
        ("42", "42"),
        ("-7", "-7"),
        ("3u", "3"),
        ("1.0", "1"),
        ("2.5", "2.5"),
        ("true", "true"),
        ("false", "false"),
        ("null", ""),
        ('[1, "a", null]', '[1,"a",null]'),
        ('{"k": [true]}', '{"k":[true]}'),
        ('timestamp("2024-03-05T10:00:00.250Z")', "2024-03-05T10:00:00.25Z"),
        ('duration("1.5s")', "1.5s"),
        ('duration("2m")', "120s"),
        (
            "request.headers",
            '{"host":"api.example.com:8080","user-agent":"curl/8.5","x-multi":"one,two","x-team":"a"}',
        ),
    ],
)
def test_eval_string_renders_every_kind_of_result(source: str, text: str) -> None:
    assert cel.compile(source, "x").eval_string(make_ctx()) == text


def test_eval_string_raises_cel_error_when_evaluation_fails() -> None:
    with pytest.raises(cel.CelError):
        cel.compile("jwt.sub", "x").eval_string(make_ctx())


def test_results_are_plain_python_values() -> None:
    value = ev(
        '{"b": b"x", "l": [b"y", {"t": timestamp("2024-01-01T00:00:00Z")}], "n": null, "u": 1u, "d": 0.5}'
    )
    assert value == {
        "b": b"x",
        "l": [b"y", {"t": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)}],
        "n": None,
        "u": 1,
        "d": 0.5,
    }
    assert type(value["b"]) is bytes
    assert type(value["l"][0]) is bytes


def test_a_result_with_no_python_form_is_a_cel_error() -> None:
    with pytest.raises(cel.CelError):
        ev("optional.of(1)")


def test_a_context_value_cel_cannot_take_is_a_cel_error() -> None:
    with pytest.raises(cel.CelError):
        ev("jwt.sub", make_ctx(jwt={"sub": ("a", "tuple")}))


# -- roots and lazy building --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "roots"),
    [
        ('request.method == "GET" && jwt.sub == "x"', {"request", "jwt"}),
        ("[1, 2].exists(x, x > 1)", set()),
        ('"request.method" == "jwt.sub"', set()),
        ('json("{}").request == 1', set()),
        ("{'source': 1}.source == 1", set()),
        ("source.address", {"source"}),
        ('.request.method == "GET"', {"request"}),
        ("response.code >= 500 || has(backend.name)", {"response", "backend"}),
        (
            "apiKey.team == basicAuth.username && extauthz.x == metadata.y",
            {"apiKey", "basicAuth", "extauthz", "metadata"},
        ),
        ('default(request.headers["x"], jwt.sub)', {"request", "jwt"}),
        ("true // request.method\n", set()),
    ],
)
def test_roots_are_the_variables_the_expression_references(source: str, roots: set[str]) -> None:
    assert cel.compile(source, "x").roots == frozenset(roots)


def test_a_header_looked_up_by_name_builds_only_that_header() -> None:
    ctx = make_ctx(jwt={"sub": "alice"})
    assert cel.compile('request.headers["x-team"] == "a" && has(jwt.sub)', "x").eval_bool(ctx)
    assert ctx.cel_vars is not None
    assert ctx.cel_vars["request"] == {"headers": {"x-team": "a"}}
    assert cel.compile('has(request.headers.nope) || request.method == "GET" && has(jwt.sub)', "x").eval_bool(
        ctx
    )
    assert ctx.cel_vars["request"] == {"headers": {"x-team": "a"}, "method": "GET"}


def test_an_expression_reading_only_named_request_fields_builds_them_directly_without_the_cache() -> None:
    ctx = make_ctx()
    assert cel.compile('request.headers["x-team"] == "a" && request.method == "GET"', "x").eval_bool(ctx)
    assert ctx.cel_vars is None
    assert not cel.compile('has(request.headers.nope) || request.path == "/nope"', "x").eval_bool(ctx)


def test_a_header_map_used_whole_holds_every_header() -> None:
    ctx = make_ctx()
    assert cel.compile('request.headers["x-team"] == "a"', "x").eval_bool(ctx)
    assert cel.compile("size(request.headers) == 4", "x").eval_bool(ctx)
    assert cel.compile('"user-agent" in request.headers', "x").eval_bool(ctx)


def test_roots_an_expression_does_not_reference_are_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in list(cel._REQUEST_FIELDS):
        original = cel._REQUEST_FIELDS[name]
        monkeypatch.setitem(
            cel._REQUEST_FIELDS, name, lambda ctx, _n=name, _f=original: calls.append(_n) or _f(ctx)
        )
    header_map = cel._header_map
    monkeypatch.setattr(cel, "_header_map", lambda hs: calls.append("headers") or header_map(hs))
    ctx = make_ctx(jwt={"sub": "alice"})
    assert cel.compile('jwt.sub.lowerAscii() == "alice"', "x").eval_bool(ctx)
    assert calls == []
    assert ctx.cel_vars == {}
    assert cel.compile('request.method.lowerAscii() == "get" && jwt.sub != "x"', "x").eval_bool(ctx)
    assert calls == ["method"]
    assert set(ctx.cel_vars) == {"request"}


def test_expressions_on_one_request_build_each_field_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    method = cel._REQUEST_FIELDS["method"]
    monkeypatch.setitem(cel._REQUEST_FIELDS, "method", lambda ctx: calls.append("method") or method(ctx))
    header_map = cel._header_map
    monkeypatch.setattr(cel, "_header_map", lambda hs: calls.append("headers") or header_map(hs))
    ctx = make_ctx()
    for source in [
        'request.method.lowerAscii() == "get" && size(request.headers) > 0',
        'request.method.lowerAscii() != "put" && size(request.headers) > 0',
        "size(request.headers) > 0",
        "request.headers != {}",
    ]:
        assert cel.compile(source, "x").eval_bool(ctx)
    assert calls == ["method", "headers"]


def test_a_whole_request_is_built_once_with_every_field() -> None:
    ctx = make_ctx()
    value = ev("request", ctx)
    assert set(value) == {
        "method",
        "uri",
        "host",
        "scheme",
        "path",
        "pathAndQuery",
        "version",
        "headers",
        "startTime",
    }
    assert ctx.cel_vars is not None
    assert ctx.cel_vars["request"]["headers"]["x-multi"] == "one,two"


def test_the_cached_request_follows_header_path_and_body_changes() -> None:
    ctx = make_ctx()
    headers = cel.compile('request.headers["x-team"]', "x")
    path = cel.compile("request.path", "x")
    assert headers.eval(ctx) == "a"
    assert path.eval(ctx) == "/api/items"
    ctx.set_header(b"x-team", b"b")  # replaces the header list
    assert headers.eval(ctx) == "b"
    ctx.path = "/rewritten"
    assert path.eval(ctx) == "/rewritten"
    ctx.headers.append((b"x-late", b"1"))  # an in-place change needs invalidate()
    ctx.invalidate("request")
    assert ev('request.headers["x-late"]', ctx) == "1"


def test_the_cached_response_follows_a_new_response() -> None:
    ctx = make_ctx()
    code = cel.compile("response.code", "x")
    ctx.response = (200, [])
    assert code.eval(ctx) == 200
    ctx.response = (404, [])
    assert code.eval(ctx) == 404


def test_identity_roots_set_after_a_first_evaluation_are_seen() -> None:
    ctx = make_ctx()
    expr = cel.compile("has(jwt.sub)", "x")
    assert expr.eval_bool(ctx) is False
    ctx.jwt = {"sub": "alice"}
    assert expr.eval_bool(ctx) is True


def test_one_expression_evaluates_on_many_requests() -> None:
    expr = cel.compile('request.headers["x-team"] in ["a", "b"]', "x")
    results = [expr.eval_bool(make_ctx(headers=[(b"x-team", team.encode())])) for team in "abcab"]
    assert results == [True, True, False, True, True]


# -- robustness ---------------------------------------------------------------------------------


def _compile_or_config_error(source: str) -> None:
    try:
        expr = cel.compile(source, "fuzz")
    except api_errors.ConfigError as exc:
        assert exc.problems and exc.problems[0].startswith("fuzz: invalid CEL expression ")
        return
    assert isinstance(expr.roots, frozenset)
    assert expr.roots <= cel.VARIABLES


@hypothesis.settings(max_examples=600, deadline=None)
@hypothesis.given(st.text(max_size=60))
def test_random_text_never_crashes_compile_with_anything_but_config_error(source: str) -> None:
    _compile_or_config_error(source)


_PIECES = [
    "default(",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    ".?",
    "[?",
    "?",
    ":",
    "!",
    "-",
    "+",
    "==",
    "&&",
    "||",
    " in ",
    "request",
    "headers",
    "jwt",
    "sub",
    "source",
    "x",
    '"x-team"',
    "'a'",
    'r"\\d"',
    "b'\\x00'",
    '"""',
    "`x-y`",
    "1",
    "2.5",
    "3u",
    "true",
    "null",
    "json(",
    "toJson(",
    "size(",
    "has(",
    "// c\n",
    " ",
    "\n",
    "\\",
]


@hypothesis.settings(max_examples=600, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_random_token_soup_with_default_never_crashes_compile(source: str) -> None:
    _compile_or_config_error(source)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_whatever_compiles_evaluates_or_raises_cel_error(source: str) -> None:
    try:
        expr = cel.compile(source, "fuzz")
    except api_errors.ConfigError:
        return
    ctx = make_ctx(jwt={"sub": "alice"})
    for method in (expr.eval, expr.eval_bool, expr.eval_string):
        try:
            method(ctx)
        except cel.CelError:
            pass


_CLAIMS = {"a": {"b": ["x", {"c": "deep"}], "s": "text"}, "n": 1}
_ERROR = object()
_NAMES = [
    ("field", "a"),
    ("field", "b"),
    ("field", "c"),
    ("field", "s"),
    ("field", "zz"),
    ("key", "a"),
    ("key", "b"),
]
_SELECTORS = st.sampled_from([*_NAMES, ("index", 0), ("index", 1), ("index", 5)])


def _model(selectors: list[tuple[str, Any]]) -> Any:
    """What default(jwt<selectors>, "FB") must give: the value, "FB", or _ERROR."""
    value: Any = _CLAIMS
    for kind, key in selectors:
        if isinstance(value, dict):
            if key not in value:
                return "FB"
            value = value[key]
        elif isinstance(value, list) and kind == "index":
            if key >= len(value):
                return "FB"
            value = value[key]
        else:
            return _ERROR
    return value


def _select(kind: str, key: Any) -> str:
    return f".{key}" if kind == "field" else f'["{key}"]' if kind == "key" else f"[{key}]"


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.sampled_from(_NAMES), st.lists(_SELECTORS, max_size=5))
def test_default_over_generated_chains_matches_a_model(
    first: tuple[str, Any], rest: list[tuple[str, Any]]
) -> None:
    selectors = [first, *rest]  # jwt is a map(string, dyn): an int index on it is a type error
    source = "default(jwt" + "".join(_select(k, v) for k, v in selectors) + ', "FB")'
    expr = cel.compile(source, "x")
    expected = _model(selectors)
    ctx = make_ctx(jwt=_CLAIMS)
    if expected is _ERROR:
        with pytest.raises(cel.CelError):
            expr.eval(ctx)
    else:
        assert expr.eval(ctx) == expected


def _count_engine_calls(monkeypatch: pytest.MonkeyPatch, expr: cel.Expression) -> list[int]:
    calls = [0]
    program = expr._program

    class Counting:
        def eval(self, **kwargs: Any) -> Any:
            calls[0] += 1
            return program.eval(**kwargs)

    monkeypatch.setattr(expr, "_program", Counting())
    return calls


def test_a_request_only_expression_remembers_its_result_for_the_same_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expr = cel.compile(
        'request.headers["x-memo"].lowerAscii() == "a" && request.path.startsWith("/memo")', "x"
    )
    calls = _count_engine_calls(monkeypatch, expr)
    same = [(b"x-memo", b"a")]
    assert expr.eval_bool(make_ctx(path="/memo/1", headers=same))
    assert expr.eval_bool(make_ctx(path="/memo/1", headers=same))
    assert calls == [1]
    assert not expr.eval_bool(make_ctx(path="/memo/1", headers=[(b"x-memo", b"b")]))
    assert not expr.eval_bool(make_ctx(path="/other", headers=same))
    assert calls == [3]


def test_a_remembered_error_is_raised_again_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    expr = cel.compile('int(request.headers["x-memo-n"]) > 1', "x")
    calls = _count_engine_calls(monkeypatch, expr)
    for _ in range(3):
        with pytest.raises(cel.CelError):
            expr.eval_bool(make_ctx(headers=[(b"x-memo-n", b"not a number")]))
    assert calls == [1]


def test_maps_lists_and_long_inputs_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    as_map = cel.compile('{"m": request.method}', "x")
    calls = _count_engine_calls(monkeypatch, as_map)
    first = as_map.eval(make_ctx())
    first["m"] = "changed"
    assert as_map.eval(make_ctx()) == {"m": "GET"}
    assert calls == [2]
    long_path = cel.compile('request.path.lowerAscii().endsWith("z")', "x")
    calls = _count_engine_calls(monkeypatch, long_path)
    path = "/" + "a" * cel.MEMO_KEY_BYTES + "z"
    assert long_path.eval_bool(make_ctx(path=path)) and long_path.eval_bool(make_ctx(path=path))
    assert calls == [2]


def test_expressions_reading_the_start_time_are_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    expr = cel.compile("request.startTime > timestamp('2000-01-01T00:00:00Z')", "x")
    calls = _count_engine_calls(monkeypatch, expr)
    assert expr.eval_bool(make_ctx()) and expr.eval_bool(make_ctx())
    assert calls == [2]
