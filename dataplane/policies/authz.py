"""CEL authorization rules: allow, deny and require, as one step.

In: a `pb.Authorization` (rules of kind ALLOW, DENY or REQUIRE, each a CEL expression). Out: a
step (`context.Step`) that raises `errors.Forbidden` when the request is not authorized.

Semantics (agentgateway's): a request is denied when any DENY rule is true, or any REQUIRE
rule is not true, or ALLOW rules exist and none is true. A rule whose evaluation fails counts
as not true: a failing ALLOW or REQUIRE denies, a failing DENY does not deny (write DENY rules
defensively, or prefer REQUIRE). The refusal names the policy, not the rule.

Speed: the rules are compiled one by one (so an error names its rule), then joined into at most
two programs evaluated per request: `(r1) && (r2) && ((a1) || (a2))` and `(d1) || (d2)`. CEL's
logical operators absorb errors exactly as the rules above need (`error && false` is false,
`error || true` is true, anything else with an error is an error, which counts as not true),
so the joined programs decide like the rules one by one, with one evaluation instead of one
per rule.
"""

from __future__ import annotations

import logging

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context

log = logging.getLogger(__name__)


Evaluator = context.Evaluator
ExpressionCompiler = context.ExpressionCompiler


def compile(msg: pb.Authorization, where: str, compile_expr: ExpressionCompiler) -> context.Step:
    allow: list[str] = []
    deny: list[str] = []
    require: list[str] = []
    for i, rule in enumerate(msg.rules):
        compile_expr(rule.expression, f"{where}.rules[{i}]")  # check each rule on its own
        if rule.kind == pb.AuthorizationRule.DENY:
            deny.append(rule.expression)
        elif rule.kind == pb.AuthorizationRule.REQUIRE:
            require.append(rule.expression)
        else:
            allow.append(rule.expression)
    permit = [f"({r})" for r in require]
    if allow:
        permit.append("(" + " || ".join(f"({a})" for a in allow) + ")")
    permit_expr = compile_expr(" && ".join(permit), f"{where}.rules") if permit else None
    deny_expr = compile_expr(" || ".join(f"({d})" for d in deny), f"{where}.rules") if deny else None
    return _Rules(permit_expr, deny_expr, where)


def _true(expr: Evaluator, ctx: context.RequestContext) -> bool:
    try:
        return expr.eval_bool(ctx)
    except Exception as exc:  # an evaluation error is "not true", never a crash
        log.debug("authorization rule %r failed to evaluate: %s", expr.source, exc)
        return False


class _Rules:
    __slots__ = ("deny", "permit", "where")

    def __init__(self, permit: Evaluator | None, deny: Evaluator | None, where: str) -> None:
        self.permit = permit
        """All REQUIRE rules and any ALLOW rule, joined; None when there are neither."""
        self.deny = deny
        """Any DENY rule, joined; None when there is none."""
        self.where = where

    def __call__(self, ctx: context.RequestContext) -> None:
        if self.deny is not None and _true(self.deny, ctx):
            raise errors.Forbidden("authorization: denied by policy")
        if self.permit is not None and not _true(self.permit, ctx):
            raise errors.Forbidden("authorization: denied by policy")
        return None
