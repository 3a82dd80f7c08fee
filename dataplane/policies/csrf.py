"""CSRF protection: refuse cross-origin state-changing requests from browsers.

In: a `pb.Csrf` (extra trusted origins). Out: a step that raises `errors.Forbidden` for a
cross-site POST/PUT/PATCH/DELETE (any method but GET, HEAD, OPTIONS).

A request is same-origin, and allowed, when `Sec-Fetch-Site` is `same-origin` or `none`; else,
without `Sec-Fetch-Site`, when it has no `Origin` (not a browser's cross-site request) or its
`Origin` names the request's own host. An `Origin` listed in `additional_origins` is always
allowed. This is the Fetch-metadata-then-Origin check of current browsers' guidance.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def compile(msg: pb.Csrf, where: str) -> context.Step:
    return _Csrf(frozenset(o.rstrip("/").lower() for o in msg.additional_origins))


class _Csrf:
    __slots__ = ("trusted",)

    def __init__(self, trusted: frozenset[str]) -> None:
        self.trusted = trusted

    def __call__(self, ctx: context.RequestContext) -> None:
        ex = ctx.ex
        if ex.method in SAFE_METHODS:
            return None
        origin = ex.header("origin")
        if origin is not None and origin.rstrip("/").lower() in self.trusted:
            return None
        site = ex.header("sec-fetch-site")
        if site is not None:
            if site.lower() in ("same-origin", "none"):
                return None
            raise errors.Forbidden("csrf: cross-site request refused")
        if origin is None:
            return None
        if origin == "null" or urlsplit(origin).netloc.lower() != ex.authority.lower():
            raise errors.Forbidden("csrf: cross-origin request refused")
        return None
