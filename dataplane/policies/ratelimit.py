"""Rate limits: local token buckets counted in this process, and global limits decided by an
Envoy RateLimitService (RLS) over gRPC.

`compile_local` turns a `LocalRateLimits` policy into a step that takes one token from every
bucket of the policy, or refuses the request with 429 when any of them is empty. Buckets refill
lazily from `clock()` (no timers): `tokens_per_fill` tokens every `fill_interval`, capped at
`max_tokens`, starting full. Recompiling an unchanged policy (same path and spec) keeps its
buckets, so a config reload does not refill them. A limit with a `key` CEL expression keeps one
bucket per distinct value in a bounded map (`MAX_KEYS`); a key that fails to evaluate, or
evaluates to null, counts against the bucket of the empty key "". The step sets the draft IETF
headers agentgateway sends (`x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`,
plus `retry-after` on 429) from the most constrained bucket.

`compile_remote` turns a `RemoteRateLimit` policy into a step that evaluates the descriptors'
CEL values and asks the service through the worker's "rls" client (`dataplane.policies.rls`,
reached with `ctx.services.client("rls", (host, port, tls))`, so this module stays free of
gRPC and the event loop). OVER_LIMIT becomes 429 with the service's headers and body; OK adds
the service's request headers to the upstream request; a failing service fails closed (500)
unless `fail_open`.

Local limits of unit RATE_LIMIT_TOKENS are LLM token budgets: a request passes while its buckets
have tokens, and the tokens its response used (read by the proxy from the response body,
`dataplane.policies.usage`) are charged afterwards. Remote token descriptors are not supported
(a configuration error says so).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from google.protobuf import duration_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from api.proto.envoy.service.ratelimit.v3 import rls_pb2
from dataplane import errors
from dataplane.policies import context

log = logging.getLogger(__name__)

clock: Callable[[], float] = time.monotonic
"""The time source of the buckets (seconds); tests replace it."""

MAX_KEYS = 10_000
"""Buckets kept per keyed limit; read when a policy is compiled."""

DEFAULT_RLS_TIMEOUT = 1.0
WARN_EVERY = 10.0
"""Seconds between two warnings about the same failing rate limit service."""

_TOKENS_UNSUPPORTED = "tokens are not supported by agentgw yet"


Evaluator = context.Evaluator
ExpressionCompiler = context.ExpressionCompiler

Descriptors = tuple[tuple[tuple[str, str], ...], ...]
"""Evaluated descriptors: for each, its (key, value) entries in order."""


class RlsClient(Protocol):
    """The runtime client of a RateLimitService (`dataplane.policies.rls.Client`)."""

    def should_rate_limit(
        self, domain: str, descriptors: Descriptors, hits_addend: int, timeout: float
    ) -> Awaitable[rls_pb2.RateLimitResponse]: ...


# Header values for small numbers, so the hot path formats nothing.
_NUMBERS: tuple[bytes, ...] = tuple(b"%d" % i for i in range(4096))
_LIMIT = b"x-ratelimit-limit"
_REMAINING = b"x-ratelimit-remaining"
_RESET = b"x-ratelimit-reset"
_RETRY_AFTER = b"retry-after"


def _number(n: int) -> bytes:
    return _NUMBERS[n] if n < 4096 else b"%d" % n


def _whole_seconds(seconds: float) -> int:
    """Seconds rounded up, at least 1."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return whole if whole > 0 else 1


def _seconds(d: duration_pb2.Duration) -> float:
    """A google.protobuf.Duration as float seconds."""
    return float(d.seconds) + d.nanos / 1e9


# ------------------------------------------------------------------------------------------
# Local token buckets


class _Bucket:
    __slots__ = ("refill_at", "tokens", "used")

    def __init__(self, tokens: int, refill_at: float, used: float) -> None:
        self.tokens = tokens
        self.refill_at = refill_at
        """When the next `tokens_per_fill` tokens arrive."""
        self.used = used
        """Last time a request used it (keyed buckets: picks eviction victims)."""


class _Limit:
    """One LocalRateLimit: its parameters and its bucket(s)."""

    __slots__ = (
        "__weakref__",
        "buckets",
        "capacity",
        "interval",
        "key",
        "limit_header",
        "max_keys",
        "only",
        "per_fill",
    )

    def __init__(
        self, capacity: int, per_fill: int, interval: float, key: Evaluator | None, max_keys: int
    ) -> None:
        self.capacity = capacity
        self.per_fill = per_fill
        self.interval = interval
        self.key = key
        self.max_keys = max_keys
        self.limit_header = _number(capacity)
        self.buckets: dict[Any, _Bucket] = {}
        self.only = _Bucket(capacity, clock() + interval, 0.0) if key is None else None

    def refill(self, b: _Bucket, now: float) -> None:
        if now >= b.refill_at:
            fills = int((now - b.refill_at) // self.interval) + 1
            tokens = b.tokens + fills * self.per_fill
            b.tokens = tokens if tokens < self.capacity else self.capacity
            b.refill_at += fills * self.interval

    def bucket(self, ctx: context.RequestContext, now: float) -> _Bucket:
        only = self.only
        if only is not None:
            return only
        assert self.key is not None
        try:
            value = self.key.eval(ctx)
        except Exception as exc:
            log.debug("local rate limit: key failed to evaluate (%s); using the empty key", exc)
            value = ""
        k = _bucket_key(value)
        buckets = self.buckets
        b = buckets.get(k)
        if b is None:
            if len(buckets) >= self.max_keys:
                self._evict(now)
            b = buckets[k] = _Bucket(self.capacity, now + self.interval, now)
        else:
            b.used = now
        return b

    def _evict(self, now: float) -> None:
        """Make room: drop every bucket that is full again (it equals a new one), then the least
        recently used until the map is at 90% of its bound. Runs at most once per tenth of
        `max_keys` new keys."""
        buckets = self.buckets
        for k in [k for k, b in buckets.items() if self._full(b, now)]:
            del buckets[k]
        keep = self.max_keys * 9 // 10
        if len(buckets) > keep:
            oldest = sorted(buckets.items(), key=lambda kv: kv[1].used)
            for k, _ in oldest[: len(buckets) - keep]:
                del buckets[k]

    def _full(self, b: _Bucket, now: float) -> bool:
        if b.tokens >= self.capacity:
            return True
        if now < b.refill_at:
            return False
        fills = int((now - b.refill_at) // self.interval) + 1
        return b.tokens + fills * self.per_fill >= self.capacity

    def refusal(self, b: _Bucket, now: float) -> errors.RateLimited:
        wait = _number(_whole_seconds(b.refill_at - now))
        return errors.RateLimited(
            "local rate limit exceeded",
            headers=(
                (_RETRY_AFTER, wait),
                (_LIMIT, self.limit_header),
                (_REMAINING, b"0"),
                (_RESET, wait),
            ),
        )

    def add_headers(self, ctx: context.RequestContext, b: _Bucket, now: float) -> None:
        ctx.response_headers += (
            (_LIMIT, self.limit_header),
            (_REMAINING, _number(b.tokens)),
            (_RESET, _number(_whole_seconds(b.refill_at - now))),
        )


def _bucket_key(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | bytes | int | float):
        return value
    return str(value)


class _LocalStep:
    """The compiled LocalRateLimits: every limit must have a token; each then loses one."""

    __slots__ = ("limits", "single")

    def __init__(self, limits: list[_Limit]) -> None:
        self.limits = limits
        self.single = limits[0] if len(limits) == 1 else None

    def __call__(self, ctx: context.RequestContext) -> None:
        now = clock()
        single = self.single
        if single is not None:  # the common case, inlined: about 1 µs
            b = single.only or single.bucket(ctx, now)
            if now >= b.refill_at:
                single.refill(b, now)
            tokens = b.tokens
            if tokens <= 0:
                raise single.refusal(b, now)
            b.tokens = tokens = tokens - 1
            wait = b.refill_at - now
            reset = int(wait)
            if reset < wait:
                reset += 1
            ctx.response_headers += (
                (_LIMIT, single.limit_header),
                (_REMAINING, _NUMBERS[tokens] if tokens < 4096 else b"%d" % tokens),
                (_RESET, _NUMBERS[reset] if reset < 4096 else b"%d" % reset),
            )
            return
        taken: list[tuple[_Limit, _Bucket]] = []
        empty: tuple[_Limit, _Bucket] | None = None
        for limit in self.limits:
            b = limit.bucket(ctx, now)
            limit.refill(b, now)
            # The request can pass once every empty bucket has refilled: report the latest.
            if b.tokens <= 0 and (empty is None or b.refill_at > empty[1].refill_at):
                empty = (limit, b)
            taken.append((limit, b))
        if empty is not None:
            raise empty[0].refusal(empty[1], now)
        tightest = taken[0]
        for limit, b in taken:
            b.tokens -= 1
            if b.tokens < tightest[1].tokens:
                tightest = (limit, b)
        tightest[0].add_headers(ctx, tightest[1], now)


_LIVE: weakref.WeakValueDictionary[tuple[str, bytes], _Limit] = weakref.WeakValueDictionary()
"""Limits in use by some compiled config, by (path, serialized spec): recompiling an unchanged
policy (a config reload) keeps its buckets instead of refilling them."""


def compile_local(msg: pb.LocalRateLimits, where: str, compile_expr: ExpressionCompiler) -> context.Step:
    """Compile a LocalRateLimits policy; ConfigError names each invalid field under `where`."""
    problems: list[str] = []
    limits: list[_Limit] = []
    token_limits: list[_Limit] = []
    for i, spec in enumerate(msg.limits):
        at = f"{where}.limits[{i}]"
        bad = len(problems)
        if spec.max_tokens < 1:
            problems.append(f"{at}.maxTokens: must be at least 1")
        if spec.tokens_per_fill < 1:
            problems.append(f"{at}.tokensPerFill: must be at least 1")
        interval = _seconds(spec.fill_interval) if spec.HasField("fill_interval") else 0.0
        if interval <= 0:
            problems.append(f"{at}.fillInterval: must be greater than zero")
        key: Evaluator | None = None
        if spec.key:
            try:
                key = compile_expr(spec.key, f"{at}.key")
            except errors.ConfigError as exc:
                problems.extend(exc.problems)
        if len(problems) == bad:
            same = (at, spec.SerializeToString(deterministic=True))
            limit = _LIVE.get(same)
            if limit is None:
                limit = _LIVE[same] = _Limit(spec.max_tokens, spec.tokens_per_fill, interval, key, MAX_KEYS)
            (token_limits if spec.unit == pb.RATE_LIMIT_TOKENS else limits).append(limit)
    if not msg.limits:
        problems.append(f"{where}.limits: at least one limit is required")
    if problems:
        raise errors.ConfigError(problems)
    if not token_limits:
        return _LocalStep(limits)
    return _TokenStep(_LocalStep(limits) if limits else None, token_limits)


class _TokenStep:
    """Token budgets (LLM usage): a request passes while every bucket has tokens left, and its
    response's usage is taken from the buckets afterwards (they may go below zero, which holds
    the next requests back until refills cover the debt). Request limits of the same policy run
    first."""

    __slots__ = ("limits", "requests")

    def __init__(self, requests: _LocalStep | None, limits: list[_Limit]) -> None:
        self.requests = requests
        self.limits = limits

    def __call__(self, ctx: context.RequestContext) -> None:
        if self.requests is not None:
            self.requests(ctx)
        now = clock()
        buckets: list[_Bucket] = []
        for limit in self.limits:
            b = limit.bucket(ctx, now)
            limit.refill(b, now)
            if b.tokens <= 0:
                raise limit.refusal(b, now)
            buckets.append(b)

        def charge(tokens: int) -> None:
            at = clock()
            for limit, b in zip(self.limits, buckets, strict=True):
                limit.refill(b, at)
                b.tokens -= tokens

        if ctx.usage_hooks is None:
            ctx.usage_hooks = [charge]
        else:
            ctx.usage_hooks.append(charge)
        return None


# ------------------------------------------------------------------------------------------
# Remote (global) rate limits


def _text(value: Any) -> str | None:
    """A descriptor value as the service sees it; None skips the descriptor."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _header_values(values: Sequence[rls_pb2.HeaderValue]) -> list[tuple[bytes, bytes]]:
    """Envoy HeaderValues as header pairs; names lower-cased, unsafe ones dropped."""
    out: list[tuple[bytes, bytes]] = []
    for h in values:
        name = h.key.lower().encode()
        value = h.raw_value or h.value.encode()
        if not name or b"\r" in value or b"\n" in value or b"\0" in value or not name.isascii():
            log.debug("remote rate limit: dropping header %r from the service", name)
            continue
        out.append((name, value))
    return out


def _retry_after(resp: rls_pb2.RateLimitResponse) -> bytes | None:
    """Whole seconds until the longest over-limit window resets, when the service says."""
    longest = 0.0
    for s in resp.statuses:
        if s.code == rls_pb2.RateLimitResponse.OVER_LIMIT and s.HasField("duration_until_reset"):
            longest = max(longest, _seconds(s.duration_until_reset))
    return _number(_whole_seconds(longest)) if longest > 0 else None


class _RemoteStep:
    """The compiled RemoteRateLimit."""

    __slots__ = ("descriptors", "domain", "fail_open", "failures", "target", "timeout", "warned_at")

    def __init__(
        self,
        domain: str,
        descriptors: list[list[tuple[str, Evaluator]]],
        target: tuple[str, int, bool],
        timeout: float,
        fail_open: bool,
    ) -> None:
        self.domain = domain
        self.descriptors = descriptors
        self.target = target
        self.timeout = timeout
        self.fail_open = fail_open
        self.failures = 0
        self.warned_at = -WARN_EVERY

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None] | None:
        built: list[tuple[tuple[str, str], ...]] = []
        for entries in self.descriptors:
            values: list[tuple[str, str]] = []
            for key, expr in entries:
                try:
                    value = _text(expr.eval(ctx))
                except Exception as exc:
                    log.debug("remote rate limit: descriptor entry %r skipped: %s", key, exc)
                    value = None
                if value is None:
                    break
                values.append((key, value))
            else:
                built.append(tuple(values))
        if not built:
            return None
        return self._check(ctx, tuple(built))

    async def _check(self, ctx: context.RequestContext, descriptors: Descriptors) -> None:
        try:
            client: RlsClient = ctx.services.client("rls", self.target)
            resp = await client.should_rate_limit(self.domain, descriptors, 1, self.timeout)
        except Exception as exc:
            self._failed(exc)
            if self.fail_open:
                return
            raise errors.PolicyUnavailable("remote rate limit: service unavailable") from exc
        if resp.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT:
            headers = _header_values(resp.response_headers_to_add)
            retry = _retry_after(resp)
            if retry is not None and not any(name == _RETRY_AFTER for name, _ in headers):
                headers.append((_RETRY_AFTER, retry))
            raise errors.RateLimited(
                "remote rate limit exceeded", headers=tuple(headers), body=resp.raw_body or None
            )
        for name, value in _header_values(resp.request_headers_to_add):
            ctx.set_header(name, value)
        if resp.response_headers_to_add:
            ctx.response_headers.extend(_header_values(resp.response_headers_to_add))

    def _failed(self, exc: Exception) -> None:
        """Warn about a failing service at most every WARN_EVERY seconds (per policy)."""
        self.failures += 1
        now = clock()
        if now - self.warned_at >= WARN_EVERY:
            host, port, _ = self.target
            log.warning(
                "remote rate limit: service %s:%d failed %d time(s) (%s); %s",
                host,
                port,
                self.failures,
                str(exc) or type(exc).__name__,
                "allowing requests (failOpen)" if self.fail_open else "refusing requests with 500",
            )
            self.warned_at = now
            self.failures = 0


def compile_remote(
    msg: pb.RemoteRateLimit,
    where: str,
    compile_expr: ExpressionCompiler,
    target: tuple[str, int, bool],
) -> context.Step:
    """Compile a RemoteRateLimit policy for the service at `target` (host, port, tls);
    ConfigError names each invalid field under `where`."""
    problems: list[str] = []
    if not msg.domain:
        problems.append(f"{where}.domain: required")
    if not msg.descriptors:
        problems.append(f"{where}.descriptors: at least one descriptor is required")
    descriptors: list[list[tuple[str, Evaluator]]] = []
    for i, d in enumerate(msg.descriptors):
        at = f"{where}.descriptors[{i}]"
        if d.unit == pb.RATE_LIMIT_TOKENS:
            problems.append(f"{at}.type: {_TOKENS_UNSUPPORTED}")
        if not d.entries:
            problems.append(f"{at}.entries: at least one entry is required")
        entries: list[tuple[str, Evaluator]] = []
        for j, e in enumerate(d.entries):
            if not e.key:
                problems.append(f"{at}.entries[{j}].key: required")
            if not e.value:
                problems.append(f"{at}.entries[{j}].value: a CEL expression is required")
                continue
            try:
                entries.append((e.key, compile_expr(e.value, f"{at}.entries[{j}].value")))
            except errors.ConfigError as exc:
                problems.extend(exc.problems)
        descriptors.append(entries)
    timeout = _seconds(msg.timeout) if msg.HasField("timeout") else 0.0
    if timeout < 0:
        problems.append(f"{where}.timeout: must not be negative")
    if problems:
        raise errors.ConfigError(problems)
    return _RemoteStep(msg.domain, descriptors, target, timeout or DEFAULT_RLS_TIMEOUT, msg.fail_open)
