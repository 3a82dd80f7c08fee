"""CEL authorization rules: allow, deny and require, as one step.

In: a `pb.Authorization` (rules of kind ALLOW, DENY or REQUIRE, each a CEL expression). Out: a
step (`context.Step`) that raises `errors.Forbidden` when the request is not authorized.

Semantics (agentgateway's): a request is denied when any DENY rule is true, or any REQUIRE
rule is not true, or ALLOW rules exist and none is true. A rule whose evaluation fails counts
as not true: a failing ALLOW or REQUIRE denies, a failing DENY does not deny (write DENY rules
defensively, or prefer REQUIRE). The refusal names the policy, not the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context

log = logging.getLogger(__name__)


class Evaluator(Protocol):
    source: str

    def eval_bool(self, ctx: context.RequestContext) -> bool: ...


ExpressionCompiler = Callable[[str, str], Any]


def compile(msg: pb.Authorization, where: str, compile_expr: ExpressionCompiler) -> context.Step:
    allow: list[Evaluator] = []
    deny: list[Evaluator] = []
    require: list[Evaluator] = []
    for i, rule in enumerate(msg.rules):
        expr = compile_expr(rule.expression, f"{where}.rules[{i}]")
        if rule.kind == pb.AuthorizationRule.DENY:
            deny.append(expr)
        elif rule.kind == pb.AuthorizationRule.REQUIRE:
            require.append(expr)
        else:
            allow.append(expr)
    return _Rules(tuple(allow), tuple(deny), tuple(require), where)


def _true(expr: Evaluator, ctx: context.RequestContext) -> bool:
    try:
        return expr.eval_bool(ctx)
    except Exception as exc:  # an evaluation error is "not true", never a crash
        log.debug("authorization rule %r failed to evaluate: %s", expr.source, exc)
        return False


class _Rules:
    __slots__ = ("allow", "deny", "require", "where")

    def __init__(
        self,
        allow: tuple[Evaluator, ...],
        deny: tuple[Evaluator, ...],
        require: tuple[Evaluator, ...],
        where: str,
    ) -> None:
        self.allow = allow
        self.deny = deny
        self.require = require
        self.where = where

    def __call__(self, ctx: context.RequestContext) -> None:
        for expr in self.deny:
            if _true(expr, ctx):
                raise errors.Forbidden("authorization: denied by policy")
        for expr in self.require:
            if not _true(expr, ctx):
                raise errors.Forbidden("authorization: denied by policy")
        if self.allow and not any(_true(expr, ctx) for expr in self.allow):
            raise errors.Forbidden("authorization: denied by policy")
        return None
