"""Local token buckets (with a fake clock) and the remote step's compilation and descriptors.

The remote step against a real RateLimitService is in test_rls.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import duration_pb2

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context, ratelimit


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_buckets() -> None:
    """Compiled limits are shared by path and spec while alive; start every test without any."""
    ratelimit._LIVE.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    monkeypatch.setattr(ratelimit, "clock", c)
    yield c


class HeaderEval:
    """A fake CEL expression: `"text"` is a literal, `null` is None, anything else reads the
    request header of that name (and fails when it is absent)."""

    def __init__(self, src: str, where: str = "") -> None:
        if src.endswith("("):
            raise errors.ConfigError([f"{where}: syntax error"])
        self.src = src

    def eval(self, ctx: context.RequestContext) -> Any:
        if self.src == "null":
            return None
        if self.src.startswith('"'):
            return self.src.strip('"')
        value = ctx.header(self.src.encode())
        if value is None:
            raise KeyError(f"no such key: {self.src}")
        return value.decode()


def request(*headers: tuple[str, str]) -> context.RequestContext:
    return context.RequestContext(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        [(k.encode(), v.encode()) for k, v in headers],
        "/",
    )


def seconds(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


def bucket(max_tokens: int = 3, per_fill: int = 1, every: float = 1.0, key: str = "") -> pb.LocalRateLimit:
    return pb.LocalRateLimit(
        max_tokens=max_tokens, tokens_per_fill=per_fill, fill_interval=seconds(every), key=key
    )


def local(*limits: pb.LocalRateLimit) -> context.Step:
    return ratelimit.compile_local(pb.LocalRateLimits(limits=limits), "policy", HeaderEval)


def passes(step: context.Step, ctx: context.RequestContext | None = None) -> bool:
    try:
        assert step(ctx or request()) is None
    except errors.RateLimited:
        return False
    return True


def refused(step: context.Step, ctx: context.RequestContext | None = None) -> errors.RateLimited:
    with pytest.raises(errors.RateLimited) as caught:
        step(ctx or request())
    return caught.value


def headers(ctx: context.RequestContext) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in ctx.response_headers}


# -- local buckets ----------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_refuses_until_it_refills(clock: Clock) -> None:
    step = local(bucket(max_tokens=3, per_fill=1, every=1.0))
    assert [passes(step) for _ in range(4)] == [True, True, True, False]
    clock.now += 0.75
    assert not passes(step)
    clock.now += 0.25
    assert passes(step)
    assert not passes(step)


def test_an_idle_bucket_refills_only_up_to_its_capacity(clock: Clock) -> None:
    step = local(bucket(max_tokens=3, per_fill=2, every=1.0))
    for _ in range(3):
        assert passes(step)
    clock.now += 100
    assert [passes(step) for _ in range(4)] == [True, True, True, False]


def test_several_fills_arrive_at_once_after_several_intervals(clock: Clock) -> None:
    step = local(bucket(max_tokens=10, per_fill=2, every=1.0))
    for _ in range(10):
        assert passes(step)
    clock.now += 3.5  # three fills of two tokens; the next fill is 0.5 s away
    assert [passes(step) for _ in range(7)] == [True] * 6 + [False]
    clock.now += 0.5
    assert passes(step)


def test_an_allowed_request_gets_the_limit_remaining_and_reset_headers(clock: Clock) -> None:
    step = local(bucket(max_tokens=5, per_fill=1, every=60.0))
    first, second = request(), request()
    step(first)
    clock.now += 15.5
    step(second)
    assert headers(first) == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "4",
        "x-ratelimit-reset": "60",
    }
    assert headers(second) == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "3",
        "x-ratelimit-reset": "45",
    }


def test_a_refused_request_gets_429_with_retry_after_until_the_next_token(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=60.0))
    assert passes(step)
    clock.now += 59.2
    error = refused(step)
    assert error.status == 429
    assert str(error) == "local rate limit exceeded"
    assert dict(error.headers) == {
        b"retry-after": b"1",
        b"x-ratelimit-limit": b"1",
        b"x-ratelimit-remaining": b"0",
        b"x-ratelimit-reset": b"1",
    }
    status, hdrs, body = errors.response_for(error)
    assert status == 429 and (b"retry-after", b"1") in hdrs
    assert body == b"rate_limited: local rate limit exceeded\n"


def test_every_limit_applies_and_the_most_constrained_one_sets_the_headers(clock: Clock) -> None:
    step = local(bucket(max_tokens=10, per_fill=10, every=1.0), bucket(max_tokens=2, per_fill=2, every=60.0))
    ctx = request()
    step(ctx)
    assert headers(ctx) == {"x-ratelimit-limit": "2", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "60"}
    assert passes(step)
    error = refused(step)
    assert dict(error.headers)[b"retry-after"] == b"60"


def test_a_refused_request_takes_no_token_from_the_other_limits(clock: Clock) -> None:
    step = local(bucket(max_tokens=3, per_fill=3, every=100.0), bucket(max_tokens=1, per_fill=1, every=1.0))
    assert passes(step)  # 2 and 0 left
    for _ in range(5):
        assert not passes(step)  # refused by the second; the first keeps its 2
    clock.now += 1
    assert passes(step)
    clock.now += 1
    assert passes(step)
    clock.now += 1
    assert not passes(step)  # now the first is empty
    assert dict(refused(step).headers)[b"retry-after"] == b"97"


def test_keyed_limits_keep_one_bucket_per_key(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=10.0, key="x-user"))
    alice, bob = ("x-user", "alice"), ("x-user", "bob")
    assert passes(step, request(alice))
    assert not passes(step, request(alice))
    assert passes(step, request(bob))
    assert not passes(step, request(bob))
    clock.now += 10
    assert passes(step, request(alice))


def test_a_key_that_fails_to_evaluate_shares_the_empty_key_bucket(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=10.0, key="x-user"))
    assert passes(step)  # no x-user header: the expression fails, key ""
    assert not passes(step)
    assert not passes(step, request(("x-user", "")))  # the same bucket as a failure
    assert passes(step, request(("x-user", "carol")))


def test_a_null_key_counts_against_the_empty_key_bucket(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=10.0, key="null"))
    assert passes(step)
    assert not passes(step, request(("x-user", "dave")))


def test_keyed_buckets_that_refilled_are_dropped_first_when_the_map_is_full(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 10)
    step = local(bucket(max_tokens=1, per_fill=1, every=10.0, key="x-user"))
    for i in range(9):
        assert passes(step, request(("x-user", f"u{i}")))
    clock.now += 5
    assert passes(step, request(("x-user", "hot")))  # empty until +15
    clock.now += 6  # u0..u8 are full again; "hot" is not
    assert passes(step, request(("x-user", "new")))  # evicts the full ones, keeps "hot"
    assert not passes(step, request(("x-user", "hot")))


def test_the_least_recently_used_buckets_go_when_none_has_refilled(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 10)
    step = local(bucket(max_tokens=1, per_fill=1, every=100.0, key="x-user"))
    for i in range(10):
        clock.now += 0.01
        assert passes(step, request(("x-user", f"u{i}")))
    clock.now += 1
    assert not passes(step, request(("x-user", "u0")))  # u0 becomes the most recent
    assert passes(step, request(("x-user", "new")))  # evicts u1 (the oldest) to keep 9, adds "new"
    assert not passes(step, request(("x-user", "u0")))
    assert not passes(step, request(("x-user", "u2")))
    assert passes(step, request(("x-user", "u1")))  # forgotten: a full bucket again


def test_recompiling_an_unchanged_policy_keeps_its_buckets(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=60.0))
    assert passes(step)
    reloaded = local(bucket(max_tokens=1, per_fill=1, every=60.0))
    assert not passes(reloaded)
    changed = local(bucket(max_tokens=2, per_fill=1, every=60.0))
    assert passes(changed)
    moved = ratelimit.compile_local(
        pb.LocalRateLimits(limits=[bucket(max_tokens=1, per_fill=1, every=60.0)]), "other", HeaderEval
    )
    assert passes(moved)


def _tokens(max_tokens: int, per_fill: int, every: float) -> pb.LocalRateLimit:
    limit = bucket(max_tokens=max_tokens, per_fill=per_fill, every=every)
    limit.unit = pb.RATE_LIMIT_TOKENS
    return limit


def _spend(step: context.Step, tokens: int) -> None:
    ctx = request()
    assert step(ctx) is None
    assert ctx.usage_hooks is not None
    for hook in ctx.usage_hooks:
        hook(tokens)


def test_a_token_budget_admits_requests_while_tokens_remain_and_charges_what_responses_used(
    clock: Clock,
) -> None:
    step = local(_tokens(max_tokens=100, per_fill=100, every=60.0))
    _spend(step, 60)
    _spend(step, 60)  # 40 left when it started: admitted, and the budget goes below zero
    refusal = refused(step)
    assert dict(refusal.headers)[b"retry-after"] == b"60"
    clock.now += 60  # one fill of 100 pays the debt of 20 and leaves 80
    _spend(step, 10)
    assert passes(step)


def test_a_request_limit_and_a_token_budget_in_one_policy_both_apply(clock: Clock) -> None:
    step = local(
        bucket(max_tokens=2, per_fill=1, every=60.0), _tokens(max_tokens=1000, per_fill=1000, every=60.0)
    )
    _spend(step, 5)
    _spend(step, 5)
    assert isinstance(refused(step), errors.RateLimited)  # the request limit, not the tokens


def test_a_response_without_usage_is_not_charged(clock: Clock) -> None:
    step = local(_tokens(max_tokens=1, per_fill=1, every=60.0))
    for _ in range(3):
        assert passes(step)  # no usage reported: nothing charged


def test_invalid_bucket_parameters_are_config_errors_naming_each_field() -> None:
    no_interval = pb.LocalRateLimit(max_tokens=1, tokens_per_fill=1)
    with pytest.raises(errors.ConfigError) as caught:
        local(bucket(max_tokens=0, per_fill=0, every=0.0), no_interval, bucket(key="x-user("))
    assert caught.value.problems == [
        "policy.limits[0].maxTokens: must be at least 1",
        "policy.limits[0].tokensPerFill: must be at least 1",
        "policy.limits[0].fillInterval: must be greater than zero",
        "policy.limits[1].fillInterval: must be greater than zero",
        "policy.limits[2].key: syntax error",
    ]


def test_a_policy_without_limits_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        local()
    assert caught.value.problems == ["policy.limits: at least one limit is required"]


def test_sub_second_intervals_report_a_whole_second(clock: Clock) -> None:
    step = local(bucket(max_tokens=1, per_fill=1, every=0.1))
    ctx = request()
    step(ctx)
    assert headers(ctx)["x-ratelimit-reset"] == "1"
    assert dict(refused(step).headers)[b"retry-after"] == b"1"
    clock.now += 0.1
    assert passes(step)


# -- remote: compilation and descriptors (the service is faked here) ---------------------------


class FakeServices:
    def __init__(self, client: Any) -> None:
        self.clients = client
        self.asked: list[tuple[str, Any]] = []

    def client(self, kind: str, key: Any) -> Any:
        self.asked.append((kind, key))
        return self.clients


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ratelimit.Descriptors, int, float]] = []

    async def should_rate_limit(
        self, domain: str, descriptors: ratelimit.Descriptors, hits_addend: int, timeout: float
    ) -> Any:
        from api.proto.envoy.service.ratelimit.v3 import rls_pb2

        self.calls.append((domain, descriptors, hits_addend, timeout))
        return rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)


def remote(*descriptors: pb.RateLimitDescriptor, domain: str = "api", **kw: Any) -> context.Step:
    msg = pb.RemoteRateLimit(domain=domain, descriptors=descriptors, **kw)
    return ratelimit.compile_remote(msg, "policy", HeaderEval, ("127.0.0.1", 8081, False))


def descriptor(*entries: tuple[str, str], unit: int = pb.RATE_LIMIT_REQUESTS) -> pb.RateLimitDescriptor:
    return pb.RateLimitDescriptor(entries=[pb.DescriptorEntry(key=k, value=v) for k, v in entries], unit=unit)


async def test_descriptors_whose_entries_fail_or_are_null_are_left_out() -> None:
    step = remote(
        descriptor(("user", "x-user"), ("tool", '"echo"')),
        descriptor(("team", "x-team")),
        descriptor(("nothing", "null")),
        timeout=seconds(0.25),
    )
    client = RecordingClient()
    ctx = request(("x-user", "alice"))
    ctx.services = FakeServices(client)
    pending = step(ctx)
    assert pending is not None
    await pending
    assert client.calls == [("api", ((("user", "alice"), ("tool", "echo")),), 1, 0.25)]
    assert ctx.services.asked == [("rls", ("127.0.0.1", 8081, False))]


def test_when_no_descriptor_evaluates_the_step_passes_without_asking() -> None:
    step = remote(descriptor(("user", "x-user")))
    ctx = request()
    ctx.services = FakeServices(RecordingClient())
    assert step(ctx) is None
    assert ctx.services.asked == []


async def test_the_timeout_defaults_to_one_second() -> None:
    step = remote(descriptor(("route", '"r1"')))
    client = RecordingClient()
    ctx = request()
    ctx.services = FakeServices(client)
    await context.run([step], ctx)  # type: ignore[misc]
    assert client.calls[0][3] == 1.0


def test_remote_config_errors_name_every_bad_field() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        remote(
            descriptor(("user", "x-user(")),
            descriptor(),
            descriptor(("", "x-a"), ("b", "")),
            descriptor(("user", "x-user"), unit=pb.RATE_LIMIT_TOKENS),
            domain="",
        )
    assert caught.value.problems == [
        "policy.domain: required",
        "policy.descriptors[0].entries[0].value: syntax error",
        "policy.descriptors[1].entries: at least one entry is required",
        "policy.descriptors[2].entries[0].key: required",
        "policy.descriptors[2].entries[1].value: a CEL expression is required",
        "policy.descriptors[3].type: tokens are not supported by agentgw yet",
    ]


def test_a_remote_policy_needs_a_descriptor() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        remote()
    assert caught.value.problems == ["policy.descriptors: at least one descriptor is required"]
