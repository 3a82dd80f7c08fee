"""A fast path for the simplest CEL expressions: plain Python closures, exact CEL semantics.

Most authorization rules and rate-limit keys are comparisons of request fields, headers and
claims with string literals, joined by `&&`, `||` and `!` (`request.method == "GET"`,
`request.headers["x-team"] in ["a", "b"]`, `jwt.sub == "alice"`,
`request.path.startsWith("/api")`). For those, handing a dict to cel-cpp costs more than the
decision itself. `compile` parses such an expression into closures; anything outside this
small grammar returns None and the expression runs on cel-cpp only.

    expr    := or
    or      := and ("||" and)*
    and     := unary ("&&" unary)*
    unary   := "!" unary | compare
    compare := operand (("==" | "!=") operand | "in" operand)?
    operand := "(" expr ")" | STRING | "true" | "false" | "[" STRING ("," STRING)* "]"
             | select ("." ("startsWith" | "endsWith" | "contains") "(" STRING ")")?
    select  := ROOT ("." NAME | "[" STRING "]")*

Semantics follow CEL: a missing map key or field is an error; `&&` and `||` absorb an error
when the other side decides (`false && error` is false, `true || error` is true); any other
operation on an error is an error; logical operators on non-bools are errors. Whenever a value
is of a type whose CEL semantics this module does not model (numbers, maps, lists of non-
strings, ...), the closure raises `Fallback` and the caller evaluates with cel-cpp instead, so
the fast path never answers differently from the engine (a differential test checks this).
The expression was already type-checked by cel-cpp when this runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dataplane.policies import context


class Fallback(Exception):
    """The values met are outside the fast path's model: evaluate with cel-cpp."""


class _Error:
    """CEL's error value."""

    __slots__ = ()


ERROR = _Error()

Fn = Callable[[context.RequestContext], Any]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"[^"\\\n]*"|'[^'\\\n]*')
    | (?P<op>&&|\|\||==|!=|[!()\[\],.])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)

ROOTS: dict[str, str] = {
    "jwt": "jwt",
    "apiKey": "api_key",
    "basicAuth": "basic_auth",
    "backend": "backend",
    "extauthz": "extauthz",
    "metadata": "metadata",
}
"""CEL roots read from a RequestContext attribute holding a dict (None: an empty map)."""

REQUEST_FIELDS: dict[str, Fn] = {
    "method": lambda ctx: ctx.ex.method,
    "path": lambda ctx: ctx.path,
}
"""`request` fields the fast path reads directly; other request fields fall back."""


def _tokens(src: str) -> list[tuple[str, str]] | None:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Unsupported(Exception):
    pass


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (text is not None and tok[1] != text) or (kind is not None and tok[0] != kind):
            raise _Unsupported
        self.i += 1
        return tok[1]

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == text and tok[0] == "op"

    def expr(self) -> Fn:
        left = self.conj()
        while self.at("||"):
            self.i += 1
            left = _or(left, self.conj())
        return left

    def conj(self) -> Fn:
        left = self.unary()
        while self.at("&&"):
            self.i += 1
            left = _and(left, self.unary())
        return left

    def unary(self) -> Fn:
        if self.at("!"):
            self.i += 1
            return _not(self.unary())
        return self.compare()

    def compare(self) -> Fn:
        left = self.operand()
        if self.at("=="):
            self.i += 1
            return _eq(left, self.operand(), False)
        if self.at("!="):
            self.i += 1
            return _eq(left, self.operand(), True)
        tok = self.peek()
        if tok == ("name", "in"):
            self.i += 1
            return _in(left, self.operand())
        return left

    def operand(self) -> Fn:
        tok = self.peek()
        if tok is None:
            raise _Unsupported
        kind, text = tok
        if kind == "op" and text == "(":
            self.i += 1
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "str":
            self.i += 1
            return _const(text[1:-1])
        if kind == "op" and text == "[":
            self.i += 1
            items = [self.take(kind="str")[1:-1]]
            while self.at(","):
                self.i += 1
                items.append(self.take(kind="str")[1:-1])
            self.take("]")
            return _const(tuple(items))
        if kind == "name" and text in ("true", "false"):
            self.i += 1
            return _const(text == "true")
        if kind == "name":
            return self.select()
        raise _Unsupported

    def select(self) -> Fn:
        root = self.take(kind="name")
        path: list[str] = []
        while True:
            if self.at("."):
                name = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
                if name is None or name[0] != "name":
                    raise _Unsupported
                if name[1] in ("startsWith", "endsWith", "contains"):
                    self.i += 2
                    self.take("(")
                    arg = self.take(kind="str")[1:-1]
                    self.take(")")
                    return _method(_selector(root, path), name[1], arg)
                self.i += 2
                path.append(name[1])
            elif self.at("["):
                self.i += 1
                path.append(self.take(kind="str")[1:-1])
                self.take("]")
            else:
                return _selector(root, path)


def compile(source: str) -> Fn | None:
    """Closures for `source` when it is in the fast grammar; None otherwise."""
    tokens = _tokens(source)
    if not tokens:
        return None
    parser = _Parser(tokens)
    try:
        fn = parser.expr()
    except (_Unsupported, IndexError):
        return None
    if parser.i != len(tokens):
        return None
    return fn


# --------------------------------------------------------------------------------------------
# Building blocks


def _const(value: Any) -> Fn:
    return lambda ctx: value


def _header(name: str) -> Fn:
    raw = name.encode("latin-1")

    def get(ctx: context.RequestContext) -> Any:
        value = ctx.header(raw)
        return ERROR if value is None else value.decode("utf-8", "replace")

    return get


def _selector(root: str, path: list[str]) -> Fn:
    if root == "request":
        if len(path) == 2 and path[0] == "headers" and path[1] == path[1].lower():
            return _header(path[1])
        if len(path) == 1 and path[0] in REQUEST_FIELDS:
            return REQUEST_FIELDS[path[0]]
        raise _Unsupported
    attr = ROOTS.get(root)
    if attr is None or not path:
        raise _Unsupported
    keys = tuple(path)

    def get(ctx: context.RequestContext) -> Any:
        node: Any = getattr(ctx, attr) or {}
        for key in keys:
            if node.__class__ is not dict:
                raise Fallback
            if key not in node:
                return ERROR
            node = node[key]
        return node

    return get


def _method(target: Fn, name: str, arg: str) -> Fn:
    def call(ctx: context.RequestContext) -> Any:
        value = target(ctx)
        if value is ERROR:
            return ERROR
        if value.__class__ is not str:
            raise Fallback
        if name == "startsWith":
            return value.startswith(arg)
        if name == "endsWith":
            return value.endswith(arg)
        return arg in value

    return call


def _eq(left: Fn, right: Fn, negate: bool) -> Fn:
    def eq(ctx: context.RequestContext) -> Any:
        a = left(ctx)
        if a is ERROR:
            return ERROR
        b = right(ctx)
        if b is ERROR:
            return ERROR
        if a.__class__ is not b.__class__ or a.__class__ not in (str, bool):
            raise Fallback
        return (a != b) if negate else (a == b)

    return eq


def _in(left: Fn, right: Fn) -> Fn:
    def member(ctx: context.RequestContext) -> Any:
        a = left(ctx)
        if a is ERROR:
            return ERROR
        b = right(ctx)
        if b is ERROR:
            return ERROR
        if a.__class__ is not str or b.__class__ not in (tuple, list):
            raise Fallback
        for item in b:
            if item.__class__ is not str:
                raise Fallback
        return a in b

    return member


def _not(inner: Fn) -> Fn:
    def negation(ctx: context.RequestContext) -> Any:
        value = inner(ctx)
        if value.__class__ is not bool:
            return ERROR
        return not value

    return negation


def _and(left: Fn, right: Fn) -> Fn:
    def conjunction(ctx: context.RequestContext) -> Any:
        a = left(ctx)
        if a is False:
            return False
        b = right(ctx)
        if b is False:
            return False
        if a is True and b is True:
            return True
        return ERROR  # an error, or a non-bool operand

    return conjunction


def _or(left: Fn, right: Fn) -> Fn:
    def disjunction(ctx: context.RequestContext) -> Any:
        a = left(ctx)
        if a is True:
            return True
        b = right(ctx)
        if b is True:
            return True
        if a is False and b is False:
            return False
        return ERROR

    return disjunction
