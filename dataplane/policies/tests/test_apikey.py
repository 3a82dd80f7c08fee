"""API-key authentication: plain and sha256 keys, metadata, modes, locations, config errors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import apikey, context, services

PLAIN = "sk-plain-0123456789"
HASHED = "sk-hashed-abcdef"


class FakeExchange:
    def __init__(self, headers: list[tuple[bytes, bytes]], query: str = "") -> None:
        self.method = "POST"
        self.path = "/v1/chat/completions"
        self.query = query
        self.headers = headers
        self.client_addr = "127.0.0.1"


def request(headers: Sequence[tuple[bytes, bytes]] = (), query: str = "") -> context.RequestContext:
    hs = list(headers)
    return context.RequestContext(
        FakeExchange(list(hs), query), services.Services(), hs, "/v1/chat/completions"
    )  # type: ignore[arg-type]


def policy(mode: int = pb.AUTH_MODE_OPTIONAL, location: pb.CredentialLocation | None = None) -> context.Step:
    msg = pb.ApiKeyAuth(
        mode=mode,
        keys=[
            pb.ApiKey(key=PLAIN, metadata_json='{"team": "blue", "tier": 2}'),
            pb.ApiKey(sha256=hashlib.sha256(HASHED.encode()).hexdigest(), metadata_json='{"key": "leak?"}'),
        ],
    )
    if location is not None:
        msg.location.CopyFrom(location)
    return apikey.compile(msg, "policies[0].apiKey")


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


def run(step: context.Step, ctx: context.RequestContext) -> None:
    assert context.run([step], ctx) is None


def refused(step: context.Step, ctx: context.RequestContext) -> errors.Unauthenticated:
    with pytest.raises(errors.Unauthenticated) as info:
        run(step, ctx)
    return info.value


def test_a_plain_key_matches_and_its_metadata_reaches_the_context() -> None:
    ctx = request([*bearer(PLAIN), (b"content-type", b"application/json")])
    run(policy(), ctx)
    assert ctx.api_key == {"key": "<redacted>", "team": "blue", "tier": 2}
    assert ctx.header(b"authorization") is None
    assert ctx.header(b"content-type") == b"application/json"


def test_a_key_configured_by_its_sha256_matches() -> None:
    ctx = request(bearer(HASHED))
    run(policy(), ctx)
    assert ctx.api_key == {"key": "<redacted>"}


def test_each_request_gets_its_own_identity_dict() -> None:
    a, b = request(bearer(PLAIN)), request(bearer(PLAIN))
    step = policy()
    run(step, a)
    run(step, b)
    assert a.api_key is not None and a.api_key is not b.api_key


def test_a_wrong_key_gets_401_with_an_invalid_token_challenge() -> None:
    e = refused(policy(), request(bearer("sk-wrong")))
    assert str(e) == "api key authentication: invalid key"
    assert e.headers == ((b"www-authenticate", b'Bearer realm="agentgw", error="invalid_token"'),)


def test_a_missing_key_passes_in_optional_mode_and_gets_401_in_strict_mode() -> None:
    ctx = request()
    run(policy(), ctx)
    assert ctx.api_key is None
    e = refused(policy(pb.AUTH_MODE_STRICT), request())
    assert str(e) == "api key authentication: key missing"
    assert e.headers == ((b"www-authenticate", b'Bearer realm="agentgw"'),)


def test_permissive_mode_never_refuses() -> None:
    step = policy(pb.AUTH_MODE_PERMISSIVE)
    wrong = request(bearer("sk-wrong"))
    run(step, wrong)
    assert wrong.api_key is None
    assert wrong.header(b"authorization") == b"Bearer sk-wrong"
    run(step, request())
    good = request(bearer(PLAIN))
    run(step, good)
    assert good.api_key is not None and good.api_key["team"] == "blue"


def test_a_key_in_a_custom_header_a_query_parameter_or_a_cookie() -> None:
    header = policy(location=pb.CredentialLocation(header=pb.HeaderLocation(name="x-api-key")))
    ctx = request([(b"x-api-key", PLAIN.encode())])
    run(header, ctx)
    assert ctx.api_key is not None and ctx.header(b"x-api-key") is None
    query = policy(location=pb.CredentialLocation(query_parameter="key"))
    ctx = request(query=f"key={PLAIN}&stream=true")
    run(query, ctx)
    assert ctx.api_key is not None and ctx.ex.query == f"key={PLAIN}&stream=true"
    refused(query, request(query="key=%73k-wrong"))
    cookie = policy(location=pb.CredentialLocation(cookie="apikey"))
    ctx = request([(b"cookie", f'apikey="{PLAIN}"; a=b'.encode())])
    run(cookie, ctx)
    assert ctx.api_key is not None and ctx.header(b"cookie") == b"a=b"


def test_a_percent_encoded_key_in_the_query_is_decoded() -> None:
    step = policy(location=pb.CredentialLocation(query_parameter="key"))
    ctx = request(query="key=sk%2Dplain%2D0123456789")
    run(step, ctx)
    assert ctx.api_key is not None


def test_config_errors_name_the_field() -> None:
    with pytest.raises(api_errors.ConfigError) as info:
        apikey.compile(
            pb.ApiKeyAuth(
                keys=[
                    pb.ApiKey(sha256="abc"),
                    pb.ApiKey(key="k", metadata_json="{"),
                    pb.ApiKey(key="k2", metadata_json="[1]"),
                    pb.ApiKey(),
                    pb.ApiKey(key="dup"),
                    pb.ApiKey(sha256=hashlib.sha256(b"dup").hexdigest()),
                    pb.ApiKey(key="caf\u00e9\u20ac"),
                ]
            ),
            "policies[0].apiKey",
        )
    assert info.value.problems == [
        "policies[0].apiKey.keys[0].sha256: not a SHA-256 digest (64 hex digits)",
        "policies[0].apiKey.keys[1].metadata_json: not valid JSON "
        "(Expecting property name enclosed in double quotes at offset 1)",
        "policies[0].apiKey.keys[2].metadata_json: must be a JSON object",
        "policies[0].apiKey.keys[3]: a key or a sha256 digest is required",
        "policies[0].apiKey.keys[5]: the same key is configured twice",
        "policies[0].apiKey.keys[6].key: only latin-1 characters can be sent in a header",
    ]
    with pytest.raises(api_errors.ConfigError, match=r"policies\[0\].apiKey.keys: at least one key"):
        apikey.compile(pb.ApiKeyAuth(), "policies[0].apiKey")


_STEP = policy(pb.AUTH_MODE_STRICT)


@settings(max_examples=1000, deadline=None, database=None)
@given(st.binary(max_size=200), st.sampled_from([b"authorization", b"x-api-key"]))
def test_random_header_values_only_ever_get_401(value: bytes, name: bytes) -> None:
    try:
        run(_STEP, request([(name, value)]))
    except errors.Unauthenticated as e:
        assert e.status == 401
    else:
        pytest.fail(f"accepted {value!r}")
