"""CEL for policies: compile expressions once at config time, evaluate them per request.

The engine is Google's cel-cpp through cel-expr-python. `compile` type-checks an expression
against agentgateway's variables (all declared as `map(string, dyn)`) and functions, and
returns an `Expression`; a bad expression is a `ConfigError` naming where it came from and the
engine's line:column. `Expression.eval*` builds the variables the expression references from
the request's `RequestContext` and evaluates it; any failure (missing key, type error, a
function that raised) is a `CelError`, never a crash.

Variables (agentgateway's names):

- `request`: method, uri, host (without port), scheme, path (the normalised path), pathAndQuery,
  version ("HTTP/1.1"), headers (lower-case name -> value, repeated values joined with ","),
  startTime (timestamp), body (only once a step has read the whole body, see `needs_body`).
- `response`: code, headers — an empty map until `ctx.response` is set.
- `source`: address, port (0 when unknown).
- `jwt`, `apiKey`, `basicAuth`, `backend`, `extauthz`, `metadata`, `mcp`, `llm`: the context's
  dicts; an absent one is an empty map, so `has(jwt.sub)` is false and `jwt.sub` fails.

Per request, only the roots an expression references are built (for `request` and `response`,
only the fields it selects, and only the named headers when it looks headers up by literal
name), and what was built is kept in `ctx.cel_vars` so the expressions of one request share it.
A cached root is rebuilt when what it came from was replaced (`ctx.headers`, `ctx.path`,
`ctx.body`, `ctx.response`) or after `ctx.invalidate(root)`.

Functions: the standard library, the strings, math and optional extensions, and agentgateway's
`json`, `toJson`, `base64.encode/decode`, `url.encode/decode`, `sha256.encode`, `regexReplace`
(global with three arguments, or as a method), `stripPrefix`/`stripSuffix`, and `default`.

`default(expr, fallback)` is a macro in agentgateway; cel-cpp cannot take macros from Python, so
`compile` rewrites it before type-checking into CEL's optional chaining:

    default(request.headers["x-user"], "anon")  ->  (request.?headers[?"x-user"].orValue("anon"))
    default(json(request.body).a.b, 1)          ->  (json(request.body).?a.?b.orValue(1))

The first argument must be a value followed by field selections and/or indexes (`a.b.c`,
`m["k"]`, `l[0]`, `f(x).y`); the fallback is used when any selected field, key or index along
the chain is missing. Errors of the leading value itself (a call that fails, a division by
zero) are not caught, and a present `null` is returned as null. Other shapes are a ConfigError.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from cel_expr_python import cel as _cel  # type: ignore[import-untyped]
from cel_expr_python.ext import ext_math, ext_optional, ext_strings  # type: ignore[import-untyped]
from google.protobuf import timestamp_pb2

from api import errors as api_errors
from dataplane import headerlist
from dataplane.policies import celfast, context


class CelError(Exception):
    """An evaluation failed (missing key, type error, a function that raised, ...).

    The message names the expression and the engine's reason. The reason can quote map keys,
    and a key can come from the request (`m[request.headers["x"]]`): log it at debug level,
    never send it to the client."""


# ----------------------------------------------------------------------------------------------
# Tokens: enough of CEL's lexer to find identifiers, string literals and brackets.

_IDENT = "ident"
_STRING = "string"
_NUMBER = "number"
_PUNCT = "punct"

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?")
_SPACE = re.compile(r"(?:\s+|//[^\n]*)+")
_TWO_CHAR = frozenset({"==", "!=", "<=", ">=", "&&", "||"})
_STRING_PREFIXES = frozenset({"r", "b", "rb", "br"})
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())


@dataclasses.dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int
    value: str | None = None
    """An identifier's name (without backquotes); a string literal's value when it is simple
    (no escapes, not bytes); None otherwise."""
    quoted: bool = False
    """A backquoted identifier (`a.\\`x-y\\``): a field name, never a variable."""


def _tokenize(src: str) -> list[_Tok]:
    """Tokens of `src`, leniently: the engine reports real syntax errors after us."""
    tokens: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        space = _SPACE.match(src, i)
        if space is not None:
            i = space.end()
            continue
        c = src[i]
        word = _WORD.match(src, i)
        if word is not None:
            end = word.end()
            if end < n and src[end] in "'\"" and word.group().lower() in _STRING_PREFIXES:
                tok = _string(src, i, end, word.group().lower())
            else:
                tok = _Tok(_IDENT, word.group(), i, end, word.group())
        elif c in "'\"":
            tok = _string(src, i, i, "")
        elif c == "`":
            close = src.find("`", i + 1)
            end = n if close < 0 else close + 1
            tok = _Tok(_IDENT, src[i:end], i, end, src[i + 1 : close] if close >= 0 else None, quoted=True)
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            number = _NUMBER_RE.match(src, i)
            end = number.end() if number is not None else i + 1
            tok = _Tok(_NUMBER, src[i:end], i, end)
        elif src[i : i + 2] in _TWO_CHAR:
            tok = _Tok(_PUNCT, src[i : i + 2], i, i + 2)
        else:
            tok = _Tok(_PUNCT, c, i, i + 1)
        tokens.append(tok)
        i = tok.end
    return tokens


def _string(src: str, start: int, quote_at: int, prefix: str) -> _Tok:
    """A string literal starting at `start` whose quote is at `quote_at`."""
    n = len(src)
    quote = src[quote_at : quote_at + 3] if src[quote_at : quote_at + 3] in ("'''", '"""') else src[quote_at]
    raw = "r" in prefix
    i = quote_at + len(quote)
    body_start = i
    while i < n:
        if src.startswith(quote, i):
            body = src[body_start:i]
            simple = "b" not in prefix and (raw or "\\" not in body)
            return _Tok(_STRING, src[start : i + len(quote)], start, i + len(quote), body if simple else None)
        if src[i] == "\\" and not raw:
            i += 2
            continue
        if src[i] == "\n" and len(quote) == 1:
            break
        i += 1
    return _Tok(_STRING, src[start:n], start, n)  # unterminated: the engine will say so


def _match(tokens: list[_Tok], i: int) -> int:
    """Index of the bracket closing tokens[i], or -1 when it is unbalanced."""
    stack = [_OPEN[tokens[i].text]]
    for j in range(i + 1, len(tokens)):
        t = tokens[j].text
        if tokens[j].kind != _PUNCT:
            continue
        if t in _OPEN:
            stack.append(_OPEN[t])
        elif t in _CLOSE:
            if stack.pop() != t:
                return -1
            if not stack:
                return j
    return -1


# ----------------------------------------------------------------------------------------------
# default(expr, fallback)


class _Unsupported(Exception):
    """A default() call we cannot rewrite; the message says why."""


_DEFAULT_SHAPES = 'as in a.b.c, m["k"], l[0] or f(x).y'


def _shape_error(value: str) -> _Unsupported:
    return _Unsupported(
        "the first argument of default() must be a field or index chain, "
        f"{_DEFAULT_SHAPES}; got {value.strip()!r}"
    )


def _rewrite_default(src: str) -> str:
    """`src` with every `default(a, b)` call rewritten to optional chaining (module docstring)."""
    if "default" not in src:
        return src
    tokens = _tokenize(src)
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (
            tok.kind == _IDENT
            and not tok.quoted
            and tok.text == "default"
            and i + 1 < len(tokens)
            and tokens[i + 1].text == "("
            and tokens[i + 1].kind == _PUNCT
            and not (i > 0 and tokens[i - 1].text == "." and tokens[i - 1].kind == _PUNCT)
        ):
            close = _match(tokens, i + 1)
            if close < 0:
                break  # unbalanced: leave it to the engine's syntax error
            args = _split_args(src, tokens, i + 1, close)
            if len(args) != 2:
                raise _Unsupported(
                    f"default() takes 2 arguments (an expression and a fallback), got {len(args)}"
                )
            value, fallback = (_rewrite_default(a) for a in args)
            out.append(src[pos : tok.start])
            out.append(_optional_chain(value, fallback))
            pos = tokens[close].end
            i = close + 1
            continue
        i += 1
    out.append(src[pos:])
    return "".join(out)


def _split_args(src: str, tokens: list[_Tok], open_at: int, close_at: int) -> list[str]:
    """The source text of each top-level argument between tokens[open_at] and tokens[close_at]."""
    args: list[str] = []
    start = tokens[open_at].end
    j = open_at + 1
    while j < close_at:
        t = tokens[j]
        if t.kind == _PUNCT and t.text in _OPEN:
            end = _match(tokens, j)
            if end < 0:  # cannot happen inside a matched call; be safe
                break
            j = end + 1
            continue
        if t.kind == _PUNCT and t.text == ",":
            args.append(src[start : t.start])
            start = t.end
        j += 1
    last = src[start : tokens[close_at].start]
    if last.strip() or args:
        args.append(last)
    return args


def _optional_chain(value: str, fallback: str) -> str:
    """`(value-with-optional-selections.orValue(fallback))`; raises _Unsupported."""
    tokens = _tokenize(value)
    # Top-level atoms: (first token index, last token index) of an identifier, a literal, a dot
    # (with a following "?" for an optional selection) or a bracketed group.
    atoms: list[tuple[int, int]] = []
    j = 0
    while j < len(tokens):
        t = tokens[j]
        if t.kind == _PUNCT and t.text in _OPEN:
            end = _match(tokens, j)
            if end < 0:
                raise _Unsupported("unbalanced brackets in default()")
            atoms.append((j, end))
            j = end + 1
        elif t.kind == _PUNCT and t.text == ".":
            optional = j + 1 < len(tokens) and tokens[j + 1].text == "?"
            atoms.append((j, j + 1 if optional else j))
            j += 2 if optional else 1
        elif t.kind in (_IDENT, _STRING, _NUMBER) and (not atoms or t.kind == _IDENT):
            atoms.append((j, j))
            j += 1
        else:
            raise _shape_error(value)
    if not atoms:
        raise _Unsupported("default() needs an expression as its first argument")

    def text(atom: tuple[int, int]) -> str:
        return tokens[atom[0]].text

    # The leading value ends after the last call or construction group, or after a leading
    # list literal; with none, it is the first identifier (".name" for an absolute name).
    primary = 0
    for k, atom in enumerate(atoms):
        if text(atom) in ("(", "{") or (k == 0 and text(atom) == "["):
            primary = k
    if primary == 0 and text(atoms[0]) == "." and len(atoms) > 1:
        primary = 1
    selectors = atoms[primary + 1 :]
    parts: list[str] = []
    k = 0
    while k < len(selectors):
        first, last = selectors[k]
        if tokens[first].text == "." and tokens[first].kind == _PUNCT:
            if k + 1 >= len(selectors) or tokens[selectors[k + 1][0]].kind != _IDENT:
                raise _shape_error(value)
            parts.append(".?" + tokens[selectors[k + 1][0]].text)
            k += 2
        elif tokens[first].text == "[":
            inner = value[tokens[first].end : tokens[last].start]
            parts.append("[" + (inner if inner.lstrip().startswith("?") else "?" + inner) + "]")
            k += 1
        else:
            raise _shape_error(value)
    if not parts:
        raise _Unsupported(
            f"the first argument of default() must end in a field selection or an index, "
            f"{_DEFAULT_SHAPES}; got {value.strip()!r}"
        )
    head = value[tokens[atoms[0][0]].start : tokens[atoms[primary][1]].end]
    return f"({head}{''.join(parts)}.orValue({fallback.strip()}))"


# ----------------------------------------------------------------------------------------------
# What an expression reads: roots, and for request/response the fields and header names.

_ALL = None
"""While collecting references: every field (or every header) of a root."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Need:
    """What an expression reads of one root."""

    whole: bool = True
    """The root is used as a whole (every field)."""
    scalars: tuple[str, ...] = ()
    """`request` fields to build one by one (not headers nor body)."""
    body: bool = False
    headers: bool = False
    """The headers map is read (request and response)."""
    header_names: tuple[tuple[str, bytes], ...] | None = None
    """The header names it looks up by literal (as str and bytes); None for every header."""


def _selection(tokens: list[_Tok], k: int) -> tuple[str, int] | None:
    """The field or literal key selected at tokens[k] (`.name`, `.?name`, `["name"]`,
    `[?"name"]`) and the index after it; None when tokens[k] starts anything else (a method
    call, an index by expression, an operator)."""
    n = len(tokens)
    if k >= n or tokens[k].kind != _PUNCT:
        return None
    if tokens[k].text == ".":
        k += 1
        if k < n and tokens[k].text == "?" and tokens[k].kind == _PUNCT:
            k += 1
        name = tokens[k].value if k < n and tokens[k].kind == _IDENT else None
        if name is None or (k + 1 < n and tokens[k + 1].text == "(" and tokens[k + 1].kind == _PUNCT):
            return None  # not a field name, or a method call on the value
        return name, k + 1
    if tokens[k].text == "[":
        k += 1
        if k < n and tokens[k].text == "?" and tokens[k].kind == _PUNCT:
            k += 1
        key = tokens[k].value if k + 1 < n and tokens[k].kind == _STRING else None
        if key is not None and tokens[k + 1].text == "]":
            return key, k + 2
    return None


_OPERAND_END = frozenset({")", "]", "}"})


def _references(tokens: list[_Tok]) -> dict[str, _Need]:
    """The roots an expression references, with what it selects from request and response.

    Over-approximates (a comprehension variable named like a root counts as the root); never
    under-approximates: a root used in any way other than a selection by literal name needs
    all of it."""
    fields: dict[str, set[str] | None] = {}
    headers: dict[str, set[str] | None] = {}
    for k, tok in enumerate(tokens):
        if tok.kind != _IDENT or tok.quoted or tok.text not in _ROOTS:
            continue
        if k + 1 < len(tokens) and tokens[k + 1].text == "(" and tokens[k + 1].kind == _PUNCT:
            continue  # a function named like a root (none today)
        if k > 0 and tokens[k - 1].text == "." and tokens[k - 1].kind == _PUNCT:
            before = tokens[k - 2] if k > 1 else None
            if before is not None and (before.kind != _PUNCT or before.text in _OPERAND_END):
                continue  # a field named like a root: x.request
        root = tok.text
        selected = _selection(tokens, k + 1)
        if selected is None:
            fields[root] = _ALL
            headers[root] = _ALL
            continue
        name, after = selected
        known = fields.setdefault(root, set())
        if known is not _ALL:
            known.add(name)
        if name == "headers" and root in _HEADER_ROOTS:
            header = _selection(tokens, after)
            if header is None:
                headers[root] = _ALL
            else:
                names = headers.setdefault(root, set())
                if names is not _ALL:
                    names.add(header[0])
    needs: dict[str, _Need] = {}
    for root, chosen in fields.items():
        spec = _ROOTS[root]
        if spec.fields is None:
            needs[root] = _Need()
            continue
        if chosen is _ALL:
            scalars = tuple(f for f in spec.fields if f not in ("headers", "body"))
            needs[root] = _Need(True, scalars, "body" in spec.fields, True, None)
            continue
        names = headers.get(root, set())
        needs[root] = _Need(
            whole=False,
            scalars=tuple(sorted(f for f in chosen & spec.fields if f not in ("headers", "body"))),
            body="body" in chosen and "body" in spec.fields,
            headers="headers" in chosen,
            header_names=None if names is _ALL else tuple((h, h.encode("latin-1")) for h in sorted(names)),
        )
    return needs


# ----------------------------------------------------------------------------------------------
# Building the variables from a RequestContext.

_EMPTY: dict[str, Any] = {}
"""The value of an absent root (shared; CEL never mutates it)."""


class _Built(dict[str, Any]):
    """A built request or response root, remembering what it was built from (identities)."""

    __slots__ = ("all_headers", "from_body", "from_headers", "from_path", "looked_up")

    from_headers: object
    from_path: object
    from_body: object
    all_headers: bool
    looked_up: set[str] | None


def _new_built(from_headers: object, from_path: object = None, from_body: object = None) -> _Built:
    built = _Built()
    built.from_headers = from_headers
    built.from_path = from_path
    built.from_body = from_body
    built.all_headers = False
    built.looked_up = None
    return built


def _joined(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    value = headerlist.get(headers, name)
    return None if value is None else value.decode("utf-8", "replace")


def _header_map(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        name = k.decode("latin-1")
        value = v.decode("utf-8", "replace")
        previous = out.get(name)
        out[name] = value if previous is None else previous + "," + value
    return out


def _fill_headers(
    built: _Built, headers: list[tuple[bytes, bytes]], names: tuple[tuple[str, bytes], ...] | None
) -> None:
    if names is None:
        built["headers"] = _header_map(headers)
        built.all_headers = True
        return
    looked_up = built.looked_up
    if looked_up is None:
        looked_up = built.looked_up = set()
        table = built["headers"] = {}
    else:
        table = built["headers"]
    for name, raw in names:
        if name not in looked_up:
            looked_up.add(name)
            value = _joined(headers, raw)
            if value is not None:
                table[name] = value


def _host(authority: str) -> str:
    if authority.startswith("["):
        close = authority.find("]")
        return authority[: close + 1] if close > 0 else authority
    return authority.partition(":")[0]


def _path_and_query(ctx: context.RequestContext) -> str:
    query = ctx.ex.query
    return f"{ctx.path}?{query}" if query else ctx.path


def _start_time(ctx: context.RequestContext) -> timestamp_pb2.Timestamp:
    started = getattr(ctx.ex, "started", None)
    now = time.time()
    wall = now if started is None else now - (time.monotonic() - started)
    seconds = int(wall)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=int((wall - seconds) * 1e9))


def _scheme(ctx: context.RequestContext) -> str:
    conn = getattr(ctx.ex, "conn", None)
    return str(getattr(conn, "scheme", "http"))


_REQUEST_FIELDS: dict[str, Callable[[context.RequestContext], Any]] = {
    "method": lambda ctx: ctx.ex.method,
    "uri": lambda ctx: f"{_scheme(ctx)}://{ctx.ex.authority}{_path_and_query(ctx)}",
    "host": lambda ctx: _host(ctx.ex.authority),
    "scheme": lambda ctx: _scheme(ctx),
    "path": lambda ctx: ctx.path,
    "pathAndQuery": _path_and_query,
    "version": lambda ctx: "HTTP/" + ctx.ex.version.decode("latin-1"),
    "startTime": _start_time,
}


def _build_request(ctx: context.RequestContext, cache: dict[str, Any], need: _Need) -> Any:
    headers, path, body = ctx.headers, ctx.path, ctx.body
    built = cache.get("request")
    if (
        built is None
        or built.from_headers is not headers
        or built.from_path is not path
        or built.from_body is not body
    ):
        built = cache["request"] = _new_built(headers, path, body)
    for name in need.scalars:
        if name not in built:
            built[name] = _REQUEST_FIELDS[name](ctx)
    if need.body and body is not None and ctx.body_complete:
        built["body"] = body
    if need.headers and not built.all_headers:
        _fill_headers(built, headers, need.header_names)
    return built


def _build_response(ctx: context.RequestContext, cache: dict[str, Any], need: _Need) -> Any:
    response = ctx.response
    if response is None:
        return _EMPTY
    built = cache.get("response")
    if built is None or built.from_headers is not response:
        built = cache["response"] = _new_built(response)
        built["code"] = response[0]
    if need.headers and not built.all_headers:
        _fill_headers(built, response[1], need.header_names)
    if need.body and ctx.response_body is not None:
        built["body"] = ctx.response_body
    return built


def _build_source(ctx: context.RequestContext, cache: dict[str, Any], need: _Need) -> Any:
    built = cache.get("source")
    if built is None:
        ex = ctx.ex
        built = cache["source"] = {"address": ex.client_addr, "port": getattr(ex, "client_port", 0) or 0}
    return built


def _attribute(name: str) -> Callable[[context.RequestContext, dict[str, Any], _Need], Any]:
    def build(ctx: context.RequestContext, cache: dict[str, Any], need: _Need) -> Any:
        value = getattr(ctx, name, None)
        return _EMPTY if value is None else value

    return build


@dataclasses.dataclass(frozen=True, slots=True)
class _Root:
    build: Callable[[context.RequestContext, dict[str, Any], _Need], Any]
    fields: frozenset[str] | None = None
    """The fields built one by one, or None when the root is built (or taken) whole."""


class _Failed:
    """A remembered evaluation error (a fresh CelError is raised each time)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_MISSING = object()
_MEMO_TYPES = frozenset({bool, int, float, str, bytes, type(None), _Failed})
"""Results safe to share between requests: immutable ones."""

MEMO_SIZE = 4096
"""Results remembered per expression (the table is emptied when full)."""
MEMO_KEY_BYTES = 1024
"""Inputs longer than this (long paths, big headers) are evaluated but not remembered."""


def _direct_request(
    needs: dict[str, _Need],
) -> (
    tuple[
        tuple[tuple[str, Callable[[context.RequestContext], Any]], ...], tuple[tuple[str, bytes], ...] | None
    ]
    | None
):
    """(field getters, header names) when an expression reads only named `request` fields and
    literal header names; None otherwise (then the general, cached builders run)."""
    need = needs.get("request")
    if len(needs) != 1 or need is None or need.whole or need.body:
        return None
    if need.headers and need.header_names is None:
        return None
    getters = tuple((name, _REQUEST_FIELDS[name]) for name in need.scalars)
    return getters, need.header_names if need.headers else None


_HEADER_ROOTS = frozenset({"request", "response"})
_ROOTS: dict[str, _Root] = {
    "request": _Root(_build_request, frozenset({*_REQUEST_FIELDS, "headers", "body"})),
    "response": _Root(_build_response, frozenset({"code", "headers", "body"})),
    "source": _Root(_build_source),
    "jwt": _Root(_attribute("jwt")),
    "apiKey": _Root(_attribute("api_key")),
    "basicAuth": _Root(_attribute("basic_auth")),
    "backend": _Root(_attribute("backend")),
    "extauthz": _Root(_attribute("extauthz")),
    "metadata": _Root(_attribute("metadata")),
    "mcp": _Root(_attribute("mcp")),
    "llm": _Root(_attribute("llm")),
}
VARIABLES = frozenset(_ROOTS)
"""The variable roots expressions may use."""


# ----------------------------------------------------------------------------------------------
# Functions (agentgateway's custom ones). Implementations receive CEL bytes as bytearray.


def _text(value: str | bytes | bytearray) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _raw(value: str | bytes | bytearray) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return _rfc3339(value)
    if isinstance(value, datetime.timedelta):
        return _duration(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _to_json(value: Any) -> str:
    """Compact JSON, keys sorted (CEL maps have no order; a stable text makes a good key)."""
    try:
        return json.dumps(
            value,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
            default=_json_default,
        )
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
        )


def _rfc3339(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    text = value.isoformat()
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def _duration(value: datetime.timedelta) -> str:
    seconds = value.days * 86400 + value.seconds
    micros = value.microseconds
    if not micros:
        return f"{seconds}s"
    total = seconds + micros / 1e6
    return f"{total:.6f}".rstrip("0") + "s"


_LIMIT = 256
_PATTERNS: dict[str, re.Pattern[str]] = {}
_TEMPLATES: dict[str, list[str | int]] = {}
_GROUP_REF = re.compile(r"\$(?:\$|\{([^}]*)\}|([A-Za-z0-9_]+))")


def _pattern(source: str) -> re.Pattern[str]:
    found = _PATTERNS.get(source)
    if found is None:
        if len(_PATTERNS) >= _LIMIT:
            _PATTERNS.clear()
        found = _PATTERNS[source] = re.compile(source)
    return found


def _template(replacement: str) -> list[str | int]:
    """A replacement in Rust regex syntax (`$1`, `${name}`, `$$`) as literal parts and group
    references (int or name; a name is kept as a str prefixed with NUL)."""
    found = _TEMPLATES.get(replacement)
    if found is not None:
        return found
    parts: list[str | int] = []
    pos = 0
    for m in _GROUP_REF.finditer(replacement):
        parts.append(replacement[pos : m.start()])
        ref = m.group(1) if m.group(1) is not None else m.group(2)
        if ref is None:
            parts.append("$")
        elif ref.isdigit():
            parts.append(int(ref))
        else:
            parts.append("\0" + ref)
        pos = m.end()
    parts.append(replacement[pos:])
    if len(_TEMPLATES) >= _LIMIT:
        _TEMPLATES.clear()
    _TEMPLATES[replacement] = parts
    return parts


def _regex_replace(value: str, pattern: str, replacement: str) -> str:
    parts = _template(replacement)
    if len(parts) == 1:
        literal = parts[0]
        assert isinstance(literal, str)
        return _pattern(pattern).sub(lambda _m: literal, value)

    def expand(m: re.Match[str]) -> str:
        out: list[str] = []
        for part in parts:
            if isinstance(part, int) or part.startswith("\0"):
                ref: int | str = part if isinstance(part, int) else part[1:]
                try:
                    out.append(m.group(ref) or "")
                except IndexError:  # an unknown group expands to nothing, as in Rust
                    pass
            else:
                out.append(part)
        return "".join(out)

    return _pattern(pattern).sub(expand, value)


def _b64decode(value: str | bytes | bytearray) -> bytes:
    """Standard or URL-safe alphabet, padding optional; anything else is an error."""
    raw = _raw(value)
    padded = raw + b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        return base64.b64decode(padded, altchars=b"-_", validate=True)


def _strip_prefix(value: str, prefix: str) -> str:
    return value.removeprefix(prefix)


def _strip_suffix(value: str, suffix: str) -> str:
    return value.removesuffix(suffix)


_T = _cel.Type
_CONCRETE = {
    "bool": _T.BOOL,
    "int": _T.INT,
    "uint": _T.UINT,
    "double": _T.DOUBLE,
    "string": _T.STRING,
    "bytes": _T.BYTES,
    "null": _T.NULL,
    "list": _T.List(_T.DYN),
    "map": _T.Map(_T.DYN, _T.DYN),
    "timestamp": _T.TIMESTAMP,
    "duration": _T.DURATION,
}
"""cel-expr-python dispatches Python functions on concrete types only: a `dyn` parameter
never matches at run time, so "any value" is one overload per type."""


_Overload = tuple[str, Any, list[Any], Callable[..., Any]]
"""(overload id, result type, parameter types, implementation)."""


def _fn(name: str, *overloads: _Overload, members: tuple[_Overload, ...] = ()) -> Any:
    """One function declaration: global overloads, then receiver-style ones (`x.name(...)`)."""
    decls = [_cel.Overload(oid, result, params, impl=impl) for oid, result, params, impl in overloads]
    decls += [
        _cel.Overload(oid, result, params, is_member=True, impl=impl) for oid, result, params, impl in members
    ]
    return _cel.FunctionDecl(name, decls)


def _functions() -> list[Any]:
    s, b = _T.STRING, _T.BYTES
    return [
        _fn(
            "json", ("agw_json_string", _T.DYN, [s], json.loads), ("agw_json_bytes", _T.DYN, [b], json.loads)
        ),
        _fn("toJson", *((f"agw_toJson_{n}", s, [t], _to_json) for n, t in _CONCRETE.items())),
        _fn(
            "base64.encode",
            ("agw_base64_encode_string", s, [s], lambda v: base64.b64encode(v.encode()).decode("ascii")),
            ("agw_base64_encode_bytes", s, [b], lambda v: base64.b64encode(v).decode("ascii")),
        ),
        _fn(
            "base64.decode",
            ("agw_base64_decode_string", b, [s], _b64decode),
            ("agw_base64_decode_bytes", b, [b], _b64decode),
        ),
        _fn("url.encode", ("agw_url_encode", s, [s], lambda v: urllib.parse.quote(v, safe=""))),
        _fn("url.decode", ("agw_url_decode", s, [s], urllib.parse.unquote)),
        _fn(
            "sha256.encode",
            ("agw_sha256_string", s, [s], lambda v: hashlib.sha256(v.encode()).hexdigest()),
            ("agw_sha256_bytes", s, [b], lambda v: hashlib.sha256(v).hexdigest()),
        ),
        _fn(
            "regexReplace",
            ("agw_regexReplace", s, [s, s, s], _regex_replace),
            members=(("agw_string_regexReplace", s, [s, s, s], _regex_replace),),
        ),
        _fn("stripPrefix", members=(("agw_string_stripPrefix", s, [s, s], _strip_prefix),)),
        _fn("stripSuffix", members=(("agw_string_stripSuffix", s, [s, s], _strip_suffix),)),
    ]


def _new_env() -> Any:
    variables = {name: _T.Map(_T.STRING, _T.DYN) for name in _ROOTS}
    extensions = [ext_strings.ExtStrings(), ext_math.ExtMath(), ext_optional.ExtOptional()]
    return _cel.NewEnv(variables=variables, extensions=extensions, functions=_functions())


_ENV = _new_env()
_ERROR = _T.ERROR


# ----------------------------------------------------------------------------------------------
# Expressions


class Expression:
    """A compiled, type-checked expression; evaluate it against any number of requests."""

    __slots__ = (
        "_direct",
        "_fast",
        "_memo",
        "_plan",
        "_program",
        "needs_body",
        "result_type",
        "roots",
        "source",
    )

    def __init__(self, source: str, program: Any, needs: dict[str, _Need], result_type: str) -> None:
        self.source = source
        self._program = program
        self.roots = frozenset(needs)
        """Top-level variables the expression references."""
        self.result_type = result_type
        """The checked result type in lower case ("bool", "string", "dyn", "map(string, dyn)")."""
        self.needs_body = any(n.body and not n.whole for n in needs.values())
        """The expression selects `request.body`: read the body into `ctx.body` first."""
        self._plan = tuple((root, _ROOTS[root].build, need) for root, need in needs.items())
        self._fast: celfast.Fn | None = None
        """Closures for expressions in celfast's grammar (set by `compile`), tried first."""
        self._direct = _direct_request(needs)
        self._memo: dict[tuple[Any, ...], Any] | None = (
            {} if self._direct is not None and "startTime" not in needs["request"].scalars else None
        )
        """Results by the values a direct expression reads: CEL is pure, so the same inputs give
        the same result (JSON-like values only; `request.startTime` is never memoised)."""
        """For expressions that read only named request fields and headers (most rules): the
        field getters and header names, to build a small plain dict without the per-request
        cache (one joined program per policy rarely shares a request with another)."""

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def _value(self, ctx: context.RequestContext) -> Any:
        fast = self._fast
        if fast is not None:
            try:
                quick = fast(ctx)
            except celfast.Fallback:
                pass
            else:
                if quick is celfast.ERROR:
                    raise CelError(f"{self.source}: no such key, or an operand of the wrong type")
                if quick.__class__ is bool or quick.__class__ is str:
                    return quick
        direct = self._direct
        if direct is not None:
            getters, names = direct
            request = {field: get(ctx) for field, get in getters}
            key: tuple[Any, ...] = tuple(request.values())
            if names is not None:
                table: dict[str, str] = {}
                for name, raw in names:
                    value = ctx.header(raw)
                    if value is not None:
                        table[name] = value.decode("utf-8", "replace")
                request["headers"] = table
                key += tuple(table.items())
            memo = self._memo
            if memo is None:
                return self._evaluate({"request": request})
            found = memo.get(key, _MISSING)
            if found is not _MISSING:
                if found.__class__ is _Failed:
                    raise CelError(found.message)
                return found
            try:
                result: Any = self._evaluate({"request": request})
            except CelError as exc:
                result = _Failed(str(exc))
            if result.__class__ in _MEMO_TYPES and (
                sum(len(part) for part in key if part.__class__ is str) <= MEMO_KEY_BYTES
            ):
                if len(memo) >= MEMO_SIZE:
                    memo.clear()
                memo[key] = result
            if result.__class__ is _Failed:
                raise CelError(result.message)
            return result
        cache = ctx.cel_vars
        if cache is None:
            cache = ctx.cel_vars = {}
        plan = self._plan
        if len(plan) == 1:
            root, build, need = plan[0]
            data = {root: build(ctx, cache, need)}
        else:
            data = {root: build(ctx, cache, need) for root, build, need in plan}
        return self._evaluate(data)

    def _evaluate(self, data: dict[str, Any]) -> Any:
        try:
            result = self._program.eval(data=data)
            value = result.plain_value()
        except Exception as exc:  # a value the engine cannot take or give back
            raise CelError(f"{self.source}: {exc}") from exc
        if value.__class__ is str and result.type() == _ERROR:
            raise CelError(f"{self.source}: {value}")
        return value

    def eval(self, ctx: context.RequestContext) -> Any:
        """The result as a plain Python value (bool, int, float, str, bytes, list, dict, None,
        datetime, timedelta); raises CelError."""
        return _plain(self._value(ctx))

    def eval_bool(self, ctx: context.RequestContext) -> bool:
        """The result, which must be a bool; raises CelError otherwise."""
        value = self._value(ctx)
        if isinstance(value, bool):
            return value
        raise CelError(f"{self.source}: the result is {type(value).__name__}, not a bool")

    def eval_string(self, ctx: context.RequestContext) -> str:
        """The result as text: strings as they are, bytes decoded (UTF-8, invalid bytes
        replaced), true/false, numbers, RFC 3339 timestamps, durations like "1.5s", lists and
        maps as compact JSON (keys sorted), null as ""; raises CelError."""
        value = self._value(ctx)
        if isinstance(value, str):
            return value
        return to_text(_plain(value))


def _plain(value: Any) -> Any:
    cls = value.__class__
    if cls is bytearray:
        return bytes(value)
    if cls is list:
        return [_plain(v) for v in value]
    if cls is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def to_text(value: Any) -> str:
    """A plain value as `Expression.eval_string` renders it; raises CelError."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return _rfc3339(value)
    if isinstance(value, datetime.timedelta):
        return _duration(value)
    try:
        return _to_json(value)
    except (TypeError, ValueError) as exc:
        raise CelError(f"cannot render {type(value).__name__} as text: {exc}") from exc


_ENGINE_POSITION = re.compile(r"ERROR: <input>:(-?\d+):(-?\d+): ")
_COMPILED: dict[str, Expression] = {}
_COMPILED_LIMIT = 4096


def compile(source: str, where: str) -> Expression:
    """Compile and type-check `source` once; raises ConfigError naming `where`, the expression
    and the engine's line:column."""
    found = _COMPILED.get(source)
    if found is not None:
        return found
    try:
        rewritten = _rewrite_default(source)
    except _Unsupported as exc:
        raise api_errors.ConfigError([f"{where}: invalid CEL expression {source!r}: {exc}"]) from None
    try:
        program = _ENV.compile(rewritten)
    except Exception as exc:  # RuntimeError from the engine; TypeError for unencodable text
        message = _engine_message(exc)
        if rewritten != source:
            message += f" (in the expression as rewritten for default(): {rewritten!r})"
        raise api_errors.ConfigError([f"{where}: invalid CEL expression {source!r}: {message}"]) from None
    expression = Expression(source, program, _references(_tokenize(rewritten)), _type_name(program))
    expression._fast = celfast.compile(rewritten)
    if len(_COMPILED) >= _COMPILED_LIMIT:
        _COMPILED.clear()
    _COMPILED[source] = expression
    return expression


def _type_name(program: Any) -> str:
    try:
        return str(program.return_type().name()).lower()
    except Exception:  # pragma: no cover - informational only
        return "dyn"


def _engine_message(exc: Exception) -> str:
    """The engine's errors as "line L, column C: reason" parts, without its source excerpt."""
    if isinstance(exc, TypeError):
        return "the expression is not valid Unicode text"
    text = str(exc)
    problems: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("INVALID_ARGUMENT: "):
            line = line.removeprefix("INVALID_ARGUMENT: ")
        if line.startswith("|") or not line:
            continue
        m = _ENGINE_POSITION.match(line)
        if m is not None:
            row, col = m.groups()
            reason = line[m.end() :]
            line = reason if row.startswith("-") else f"line {row}, column {col}: {reason}"
        line = re.sub(r" \[[A-Z_]+\]$", "", line)
        if line not in problems:
            problems.append(line)
    return "; ".join(problems) or text
