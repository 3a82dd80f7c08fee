"""Request and response transformations: headers and bodies computed by CEL expressions.

In: a `pb.Transform` (`replace` a whole header map, `add`/`set` header values, `remove` names,
a new `body`). Out: for requests, a step that rewrites `ctx.headers` (and `ctx.body`); for
responses, a `ResponseTransform` the proxy applies to the upstream's headers.

Order (agentgateway's): replace, then set, add, remove. A value whose expression fails to
evaluate, or that contains CR/LF/NUL, is left out (logged at debug level): a transformation
never fails a request. `replace` keeps the Host header unless the map sets one. A request
`body` replaces the client's body (which is read and dropped first); a response `body` is
computed from the upstream's whole body (`response.body`). Either takes the route off the fast
lane.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import orjson

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]


Evaluator = context.Evaluator
ExpressionCompiler = context.ExpressionCompiler

_BAD = frozenset("\r\n\0")


def _value(expr: Evaluator, ctx: context.RequestContext) -> bytes | None:
    try:
        text = expr.eval_string(ctx)
    except Exception as exc:
        log.debug("transformation %r failed: %s", expr.source, exc)
        return None
    if _BAD.intersection(text):
        return None
    return text.encode("latin-1", "replace")


class _HeaderOps:
    __slots__ = ("add", "remove", "replace", "set")

    def __init__(self, t: pb.Transform, where: str, compile_expr: ExpressionCompiler) -> None:
        self.replace: Evaluator | None = compile_expr(t.replace, f"{where}.replace") if t.replace else None
        self.set = tuple(
            (h.name.lower().encode(), compile_expr(h.expression, f"{where}.set[{h.name}]")) for h in t.set
        )
        self.add = tuple(
            (h.name.lower().encode(), compile_expr(h.expression, f"{where}.add[{h.name}]")) for h in t.add
        )
        self.remove = frozenset(n.lower().encode() for n in t.remove)

    def apply(self, ctx: context.RequestContext, headers: Headers) -> Headers:
        if self.replace is not None:
            headers = self._replaced(ctx, headers, self.replace)
        if self.set:
            values = [(n, _value(e, ctx)) for n, e in self.set]
            names = {n for n, v in values if v is not None}
            headers = [h for h in headers if h[0] not in names]
            headers.extend((n, v) for n, v in values if v is not None)
        if self.add:
            headers = list(headers)
            for name, expr in self.add:
                value = _value(expr, ctx)
                if value is not None:
                    headers.append((name, value))
        if self.remove:
            headers = [h for h in headers if h[0] not in self.remove]
        return headers

    @staticmethod
    def _replaced(ctx: context.RequestContext, headers: Headers, expr: Evaluator) -> Headers:
        try:
            result = expr.eval(ctx)
        except Exception as exc:
            log.debug("transformation %r failed: %s", expr.source, exc)
            return headers
        if not isinstance(result, dict):
            log.debug("transformation %r did not produce a map", expr.source)
            return headers
        out: Headers = []
        for name, value in result.items():
            key = str(name).lower()
            if key.startswith(":"):
                continue
            for v in value if isinstance(value, list) else [value]:
                text = v if isinstance(v, str) else orjson.dumps(v).decode()
                if not _BAD.intersection(text) and not _BAD.intersection(key):
                    out.append((key.encode("latin-1", "replace"), text.encode("latin-1", "replace")))
        if not any(n == b"host" for n, _ in out):
            out.extend(h for h in headers if h[0] == b"host")
        return out


def compile_request(
    t: pb.Transform, where: str, compile_expr: ExpressionCompiler, max_body: int
) -> context.Step:
    ops = _HeaderOps(t, where, compile_expr)
    body: Evaluator | None = compile_expr(t.body, f"{where}.body") if t.body else None
    return _RequestTransform(ops, body, max_body)


class _RequestTransform:
    __slots__ = ("body", "max_body", "ops")

    def __init__(self, ops: _HeaderOps, body: Evaluator | None, max_body: int) -> None:
        self.ops = ops
        self.body = body
        self.max_body = max_body

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None] | None:
        ctx.headers = self.ops.apply(ctx, ctx.headers)
        ctx.invalidate("request")
        if self.body is None:
            return None
        return self._replace_body(ctx, self.body)

    async def _replace_body(self, ctx: context.RequestContext, expr: Evaluator) -> None:
        if ctx.body is None or not ctx.body_complete:
            # Read the client's body first (it is replaced, but must be consumed).
            rest, whole = await ctx.ex.body.read_upto(self.max_body - len(ctx.body or b""))
            if not whole:
                raise errors.BodyTooLarge(
                    f"transformations: request bodies are limited to {self.max_body} bytes"
                )
            ctx.body = (ctx.body or b"") + rest
            ctx.body_complete = True
        try:
            value = expr.eval(ctx)
        except Exception as exc:
            log.debug("body transformation %r failed: %s", expr.source, exc)
            return
        if isinstance(value, bytes):
            ctx.body = value
        elif isinstance(value, str):
            ctx.body = value.encode()
        else:
            ctx.body = orjson.dumps(value)
        ctx.body_complete = True


class ResponseTransform:
    """Response transformation; `ctx.response` (and `ctx.response_body` for `body`) is set
    while it runs. With `body`, the proxy reads the upstream's whole body (up to the buffer
    limit) before answering, so such routes leave the fast lane and do not stream."""

    __slots__ = ("body", "ops")

    def __init__(self, t: pb.Transform, where: str, compile_expr: ExpressionCompiler) -> None:
        self.ops = _HeaderOps(t, where, compile_expr)
        self.body: Evaluator | None = compile_expr(t.body, f"{where}.body") if t.body else None

    def apply(self, ctx: context.RequestContext, status: int, headers: Headers) -> Headers:
        ctx.response = (status, headers)
        ctx.invalidate("response")
        return self.ops.apply(ctx, headers)

    def new_body(self, ctx: context.RequestContext, body: bytes) -> bytes:
        """The transformed body (the upstream's when the expression fails)."""
        assert self.body is not None
        ctx.response_body = body
        ctx.invalidate("response")
        try:
            value = self.body.eval(ctx)
        except Exception as exc:
            log.debug("response body transformation %r failed: %s", self.body.source, exc)
            return body
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        return orjson.dumps(value)
