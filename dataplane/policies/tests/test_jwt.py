"""JWT authentication with inline key sets: modes, locations, providers, claims, hostile tokens.

Keys are generated here (RSA, EC P-256, Ed25519, a 32-byte HMAC secret), tokens are signed
with PyJWT (or by hand for the tokens PyJWT refuses to make: alg "none", HS256 over an RSA
public key), and each step runs through `context.run` on a RequestContext over a fake
exchange. Remote and file key sets are in test_jwks.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt import algorithms

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context, jwt, services

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
HMAC_SECRET = secrets.token_bytes(32)
ISSUER = "https://idp.example.com"

MISSING = b'Bearer realm="agentgw"'
INVALID = b'Bearer realm="agentgw", error="invalid_token"'


class FakeExchange:
    """The Exchange fields policies read."""

    def __init__(self, headers: list[tuple[bytes, bytes]], query: str = "") -> None:
        self.method = "GET"
        self.path = "/mcp"
        self.query = query
        self.headers = headers
        self.client_addr = "127.0.0.1"


def request(
    headers: Sequence[tuple[bytes, bytes]] = (), query: str = "", svc: services.Services | None = None
) -> context.RequestContext:
    hs = [(b"host", b"gw.example.com"), *headers]
    return context.RequestContext(FakeExchange(list(hs), query), svc or services.Services(), list(hs), "/mcp")  # type: ignore[arg-type]


def jwk(key: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    if isinstance(key, bytes):
        d = algorithms.HMACAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, rsa.RSAPrivateKey):
        d = algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        d = algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        d = algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if kid is not None:
        d["kid"] = kid
    d.update(extra)
    return d


def jwks(*keys: dict[str, Any]) -> str:
    return json.dumps({"keys": list(keys)})


def token(key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa", **claims: Any) -> str:
    body: dict[str, Any] = {"iss": ISSUER, "sub": "alice", "exp": int(time.time()) + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"kid": kid} if kid is not None else None
    return pyjwt.encode(body, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def provider(keys: str | None = None, issuer: str = ISSUER, **fields: Any) -> pb.JwtProvider:
    return pb.JwtProvider(
        issuer=issuer,
        jwks=pb.Jwks(inline=keys if keys is not None else jwks(jwk(RSA_KEY, "rsa"))),
        **fields,
    )


def policy(
    *providers: pb.JwtProvider,
    mode: int = pb.AUTH_MODE_OPTIONAL,
    location: pb.CredentialLocation | None = None,
) -> context.Step:
    msg = pb.JwtAuth(mode=mode, providers=list(providers) or [provider()])
    if location is not None:
        msg.location.CopyFrom(location)
    return jwt.compile(msg, "policies[0].jwtAuth")


def bearer(tok: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + tok.encode())]


def run(step: context.Step, ctx: context.RequestContext) -> None:
    """Run synchronously: inline key sets never need to wait."""
    assert context.run([step], ctx) is None


def refused(step: context.Step, ctx: context.RequestContext) -> errors.Unauthenticated:
    with pytest.raises(errors.Unauthenticated) as info:
        run(step, ctx)
    return info.value


# success ------------------------------------------------------------------------------------


def test_a_valid_rs256_token_sets_the_claims_and_is_stripped_from_the_upstream_request() -> None:
    tok = token(scope="read")
    ctx = request([*bearer(tok), (b"x-other", b"kept")])
    run(policy(), ctx)
    assert ctx.jwt is not None
    assert ctx.jwt["sub"] == "alice"
    assert ctx.jwt["scope"] == "read"
    assert ctx.jwt_token == tok
    assert ctx.header(b"authorization") is None
    assert ctx.header(b"x-other") == b"kept"


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (RSA_KEY, "RS384"),
        (RSA_KEY, "PS256"),
        (EC_KEY, "ES256"),
        (ED_KEY, "EdDSA"),
        (HMAC_SECRET, "HS256"),
    ],
)
def test_every_key_type_verifies_tokens_of_its_algorithms(key: Any, alg: str) -> None:
    step = policy(provider(jwks(jwk(key, "k1"))))
    ctx = request(bearer(token(key, alg, "k1")))
    run(step, ctx)
    assert ctx.jwt is not None and ctx.jwt["sub"] == "alice"


def test_the_bearer_prefix_is_matched_case_insensitively() -> None:
    ctx = request([(b"authorization", b"bEaReR " + token().encode())])
    run(policy(), ctx)
    assert ctx.jwt is not None


def test_a_token_without_kid_is_tried_against_every_compatible_key() -> None:
    step = policy(provider(jwks(jwk(EC_KEY, "ec"), jwk(RSA_KEY, "rsa"), jwk(OTHER_RSA_KEY, "other"))))
    ctx = request(bearer(token(OTHER_RSA_KEY, kid=None)))
    run(step, ctx)
    assert ctx.jwt is not None


def test_a_key_with_alg_in_its_jwk_verifies_only_that_algorithm() -> None:
    step = policy(provider(jwks(jwk(RSA_KEY, "rsa", alg="RS256"))))
    run(step, request(bearer(token(alg="RS256"))))
    assert "invalid token" in str(refused(step, request(bearer(token(alg="RS512")))))


def test_audience_matches_when_any_audience_overlaps() -> None:
    step = policy(provider(audiences=["api-a", "api-b"]))
    ctx = request(bearer(token(aud=["other", "api-b"])))
    run(step, ctx)
    assert ctx.jwt is not None
    run(step, request(bearer(token(aud="api-a"))))


def test_encryption_keys_in_a_key_set_are_ignored() -> None:
    step = policy(provider(jwks(jwk(OTHER_RSA_KEY, "rsa", use="enc"), jwk(RSA_KEY, "rsa"))))
    run(step, request(bearer(token())))


# modes --------------------------------------------------------------------------------------


def test_a_missing_token_passes_in_optional_mode() -> None:
    ctx = request()
    run(policy(), ctx)
    assert ctx.jwt is None


def test_a_missing_token_in_strict_mode_gets_401_with_a_challenge_without_error() -> None:
    e = refused(policy(mode=pb.AUTH_MODE_STRICT), request())
    assert e.status == 401
    assert str(e) == "jwt authentication: token missing"
    assert e.headers == ((b"www-authenticate", MISSING),)


def test_another_authorization_scheme_counts_as_a_missing_token() -> None:
    step = policy(mode=pb.AUTH_MODE_STRICT)
    e = refused(step, request([(b"authorization", b"Basic YWxpY2U6c2VjcmV0")]))
    assert str(e) == "jwt authentication: token missing"
    ctx = request([(b"authorization", b"Basic YWxpY2U6c2VjcmV0")])
    run(policy(), ctx)
    assert ctx.header(b"authorization") == b"Basic YWxpY2U6c2VjcmV0"


def test_an_invalid_token_in_optional_mode_gets_401_with_invalid_token() -> None:
    e = refused(policy(), request(bearer(token(OTHER_RSA_KEY))))
    assert str(e) == "jwt authentication: invalid token"
    assert e.headers == ((b"www-authenticate", INVALID),)


def test_permissive_mode_never_refuses_and_records_a_valid_identity() -> None:
    step = policy(mode=pb.AUTH_MODE_PERMISSIVE)
    for ctx in (request(), request(bearer("garbage")), request(bearer(token(OTHER_RSA_KEY)))):
        run(step, ctx)
        assert ctx.jwt is None
        assert ctx.jwt_token is None
    bad = request(bearer("garbage"))
    run(step, bad)
    assert bad.header(b"authorization") == b"Bearer garbage"
    good = request(bearer(token()))
    run(step, good)
    assert good.jwt is not None and good.jwt["sub"] == "alice"
    assert good.header(b"authorization") is None


def test_the_401_body_says_which_policy_but_not_why_the_token_failed() -> None:
    e = refused(policy(), request(bearer(token(exp=int(time.time()) - 3600))))
    status, headers, body = errors.response_for(e)
    assert status == 401
    assert body == b"unauthenticated: jwt authentication: invalid token\n"
    assert (b"www-authenticate", INVALID) in headers


# claims -------------------------------------------------------------------------------------


def test_an_expired_token_gets_401() -> None:
    refused(policy(), request(bearer(token(exp=int(time.time()) - 60))))


def test_an_expiry_within_the_leeway_is_tolerated() -> None:
    run(policy(), request(bearer(token(exp=int(time.time()) - int(jwt.LEEWAY) + 5))))


def test_a_token_whose_nbf_is_in_the_future_gets_401() -> None:
    refused(policy(), request(bearer(token(nbf=int(time.time()) + 120))))
    run(policy(), request(bearer(token(nbf=int(time.time()) + 5))))


@pytest.mark.parametrize("exp", ["soon", True, None, [1]])
def test_a_malformed_exp_gets_401(exp: Any) -> None:
    payload = {"iss": ISSUER, "exp": exp} if exp is not None else {"iss": ISSUER, "exp": float("nan")}
    tok = pyjwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": "rsa"})
    refused(policy(), request(bearer(tok)))


def test_a_token_from_the_wrong_issuer_gets_401() -> None:
    refused(policy(), request(bearer(token(iss="https://evil.example.com"))))
    refused(policy(), request(bearer(token(iss=None))))


def test_a_token_for_the_wrong_audience_gets_401() -> None:
    step = policy(provider(audiences=["api-a"]))
    refused(step, request(bearer(token(aud="api-b"))))
    refused(step, request(bearer(token())))
    refused(step, request(bearer(token(aud=[1, 2]))))


def test_required_claims_must_be_present() -> None:
    step = policy(provider(required_claims=["exp", "sub"]))
    run(step, request(bearer(token())))
    refused(step, request(bearer(token(sub=None))))
    refused(step, request(bearer(token(exp=None))))


def test_exp_is_not_required_unless_listed() -> None:
    run(policy(), request(bearer(token(exp=None))))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(jwt, "time", clock)
    step = policy()
    tok = token(exp=int(clock.now) + 60)
    first, second = request(bearer(tok)), request(bearer(tok))
    run(step, first)
    run(step, second)
    assert second.jwt == first.jwt and second.jwt is not first.jwt
    assert second.header(b"authorization") is None
    clock.now += 60 + jwt.LEEWAY
    refused(step, request(bearer(tok)))


def test_a_token_not_yet_valid_becomes_valid_once_its_time_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(jwt, "time", clock)
    step = policy()
    tok = token(nbf=int(clock.now) + 100)
    refused(step, request(bearer(tok)))
    clock.now += 100
    run(step, request(bearer(tok)))


# providers ----------------------------------------------------------------------------------


def test_the_provider_is_chosen_by_the_tokens_issuer() -> None:
    step = policy(
        provider(jwks(jwk(RSA_KEY, "a")), issuer="https://a.example.com"),
        provider(jwks(jwk(EC_KEY, "b")), issuer="https://b.example.com", audiences=["b-api"]),
    )
    ctx = request(bearer(token(RSA_KEY, "RS256", "a", iss="https://a.example.com")))
    run(step, ctx)
    assert ctx.jwt is not None and ctx.jwt["iss"] == "https://a.example.com"
    run(step, request(bearer(token(EC_KEY, "ES256", "b", iss="https://b.example.com", aud="b-api"))))
    # b's key does not verify for issuer a, and b's audience rule applies to b's tokens
    refused(step, request(bearer(token(EC_KEY, "ES256", "b", iss="https://a.example.com"))))
    refused(step, request(bearer(token(EC_KEY, "ES256", "b", iss="https://b.example.com"))))


def test_a_provider_without_issuer_accepts_any_issuer() -> None:
    step = policy(
        provider(jwks(jwk(RSA_KEY, "a")), issuer="https://a.example.com"),
        provider(jwks(jwk(EC_KEY, "any")), issuer=""),
    )
    run(step, request(bearer(token(EC_KEY, "ES256", "any", iss="https://whoever.example.com"))))
    run(step, request(bearer(token(EC_KEY, "ES256", "any", iss=None))))
    run(step, request(bearer(token(EC_KEY, "ES256", "any", iss="https://a.example.com"))))


def test_providers_sharing_an_issuer_are_tried_in_order() -> None:
    step = policy(provider(jwks(jwk(EC_KEY, "ec"))), provider(jwks(jwk(RSA_KEY, "rsa"))))
    run(step, request(bearer(token())))


# locations ----------------------------------------------------------------------------------


def test_a_token_in_a_query_parameter_is_read_and_the_query_left_alone() -> None:
    step = policy(location=pb.CredentialLocation(query_parameter="access_token"))
    tok = token()
    ctx = request(query=f"a=1&access_token={tok}")
    run(step, ctx)
    assert ctx.jwt is not None
    assert ctx.ex.query == f"a=1&access_token={tok}"
    refused(step, request(query="access_token=nope"))
    run(step, request(query="other=1"))


def test_a_token_in_a_cookie_is_read_and_only_that_cookie_removed() -> None:
    step = policy(location=pb.CredentialLocation(cookie="session"))
    ctx = request([(b"cookie", b"theme=dark; session=" + token().encode() + b"; lang=en")])
    run(step, ctx)
    assert ctx.jwt is not None
    assert ctx.header(b"cookie") == b"theme=dark; lang=en"
    alone = request([(b"cookie", b"session=" + token().encode())])
    run(step, alone)
    assert alone.header(b"cookie") is None


def test_a_custom_header_without_prefix_carries_the_raw_token() -> None:
    location = pb.CredentialLocation(header=pb.HeaderLocation(name="X-Token"))
    step = policy(location=location, mode=pb.AUTH_MODE_STRICT)
    ctx = request([(b"x-token", token().encode())])
    run(step, ctx)
    assert ctx.header(b"x-token") is None
    e = refused(step, request())
    assert e.headers == ((b"www-authenticate", MISSING),)


# hostile tokens -----------------------------------------------------------------------------


def test_alg_none_gets_401() -> None:
    header = b64(json.dumps({"alg": "none", "kid": "rsa"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "sub": "root"}).encode())
    refused(policy(), request(bearer(f"{header}.{payload}.")))
    refused(policy(), request(bearer(f"{header}.{payload}.{b64(b'x')}")))


def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "sub": "root"}).encode())
    for secret in (pem, pem.strip(), json.dumps(jwk(RSA_KEY, "rsa")).encode()):
        signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        refused(policy(), request(bearer(f"{header}.{payload}.{signature}")))


def test_a_token_with_a_critical_header_is_refused() -> None:
    tok = pyjwt.encode({"iss": ISSUER}, RSA_KEY, algorithm="RS256", headers={"kid": "rsa", "crit": ["exp"]})
    refused(policy(), request(bearer(tok)))


def test_a_token_over_16_kib_gets_401_without_being_parsed() -> None:
    big = token(padding="x" * (jwt.MAX_TOKEN + 10))
    assert len(big) > jwt.MAX_TOKEN
    with pytest.raises(jwt.InvalidToken, match="longer than"):
        jwt.parse(big)
    refused(policy(), request(bearer(big)))


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "...",
        "!!!.???.***",
        f"{b64(b'[1,2]')}.{b64(b'{}')}.{b64(b'sig')}",
        f"{b64(b'{}')}.{b64(b'{}')}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(b'not json')}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(b'[]')}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256', 'kid': 7}).encode())}.{b64(b'{}')}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(json.dumps({'iss': 5}).encode())}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(b'{}')}.",
        f"{b64(json.dumps({'alg': 'ES256', 'kid': 'rsa'}).encode())}.{b64(b'{}')}.{b64(b'x' * 64)}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(b'[' * 5000)}.{b64(b'sig')}",
        f"{b64(json.dumps({'alg': 'RS256'}).encode())}=.{b64(b'{}')}.{b64(b'sig')}",
        "eyJhbGciOiJSUzI1NiJ9.e30.a",
        "\u00e9\u00e9.\u00e9.\u00e9",
    ],
)
def test_garbage_tokens_get_401(garbage: str) -> None:
    e = refused(
        policy(),
        request(bearer(garbage) if garbage.isascii() else [(b"authorization", b"Bearer \xe9.\xe9.\xe9")]),
    )
    assert e.headers == ((b"www-authenticate", INVALID),)


# configuration ------------------------------------------------------------------------------


def problems(msg: pb.JwtAuth) -> list[str]:
    with pytest.raises(api_errors.ConfigError) as info:
        jwt.compile(msg, "policies[0].jwtAuth")
    return info.value.problems


def test_a_policy_without_providers_is_a_config_error() -> None:
    assert problems(pb.JwtAuth()) == ["policies[0].jwtAuth.providers: at least one provider is required"]


def test_bad_key_sets_are_config_errors_naming_the_field() -> None:
    msg = pb.JwtAuth(
        providers=[
            pb.JwtProvider(jwks=pb.Jwks(inline="{not json")),
            pb.JwtProvider(jwks=pb.Jwks(inline='{"keys": 5}')),
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "x"}))),
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks({"kty": "EC", "crv": "P-999"}))),
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks(jwk(RSA_KEY, "x", alg="HS256")))),
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks())),
            pb.JwtProvider(),
            pb.JwtProvider(jwks=pb.Jwks(url="ftp://idp/keys")),
            pb.JwtProvider(jwks=pb.Jwks(url="https://idp/keys", refresh_interval={"nanos": 5000})),
        ]
    )
    assert problems(msg) == [
        "policies[0].jwtAuth.providers[0].jwks.inline: not valid JSON",
        'policies[0].jwtAuth.providers[1].jwks.inline: not a JWK set (a JSON object with a "keys" list)',
        "policies[0].jwtAuth.providers[2].jwks.inline: keys[0]: not a valid RSA key",
        "policies[0].jwtAuth.providers[3].jwks.inline: keys[0]: unsupported EC curve",
        "policies[0].jwtAuth.providers[4].jwks.inline: keys[0]: alg 'HS256' does not fit key type RSA",
        "policies[0].jwtAuth.providers[5].jwks.inline: no signature verification keys",
        "policies[0].jwtAuth.providers[6].jwks: a key set (inline, file or url) is required",
        "policies[0].jwtAuth.providers[7].jwks.url: 'ftp://idp/keys' is not an http(s) URL",
        "policies[0].jwtAuth.providers[8].jwks.refresh_interval: must be at least 1s",
    ]


def test_weak_keys_are_refused_and_secrets_never_quoted() -> None:
    short = b"0123456789"
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    msg = pb.JwtAuth(
        providers=[
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks(jwk(short, "short")))),
            pb.JwtProvider(jwks=pb.Jwks(inline=jwks(jwk(small_rsa, "small")))),
        ]
    )
    found = problems(msg)
    assert found == [
        "policies[0].jwtAuth.providers[0].jwks.inline: keys[0]: symmetric key too short for its algorithm",
        "policies[0].jwtAuth.providers[1].jwks.inline: keys[0]: RSA key shorter than 2048 bits",
    ]
    assert b64(short) not in " ".join(found)


def test_unknown_modes_and_bad_locations_are_config_errors() -> None:
    assert problems(pb.JwtAuth(mode=7, providers=[provider()])) == [
        "policies[0].jwtAuth.mode: unknown mode 7"
    ]
    bad = pb.JwtAuth(
        providers=[provider()], location=pb.CredentialLocation(header=pb.HeaderLocation(name="a b"))
    )
    assert problems(bad) == ["policies[0].jwtAuth.location.header.name: 'a b' is not a header name"]


def test_a_jwk_set_parses_into_keys_by_kid() -> None:
    keys, skipped = jwt.parse_jwks(
        jwks(jwk(RSA_KEY, "a"), jwk(EC_KEY, "b"), {"kty": "weird"}, jwk(ED_KEY, None))
    )
    assert skipped == ["keys[2]: unsupported key type 'weird'"]
    assert len(keys) == 3
    assert [k.kid for k in keys.lookup("a") or ()] == ["a"]
    assert [k.kid for k in keys.lookup("zzz") or ()] == [None]


# fuzzing ------------------------------------------------------------------------------------

_FUZZ_STEP = policy(
    provider(jwks(jwk(RSA_KEY, "rsa"), jwk(EC_KEY, "ec"), jwk(HMAC_SECRET, "hs"))),
    provider(jwks(jwk(ED_KEY, "ed")), issuer=""),
    mode=pb.AUTH_MODE_STRICT,
)
_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["none", "None", "RS256", "ES256", "HS256", "EdDSA", "PS512", "XX"])
        | _json_values,
        "kid": st.sampled_from(["rsa", "ec", "hs", "ed", "nope"]) | _json_values,
        "crit": _json_values,
    },
)
_payloads = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([ISSUER, "other", ""]) | _json_values,
        "exp": st.integers() | st.floats() | _json_values,
        "nbf": st.integers() | st.floats() | _json_values,
        "aud": _json_values,
    },
)


def _segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


_structured = st.builds(
    lambda h, p, s: f"{_segment(h)}.{_segment(p)}.{b64(s)}",
    _headers | _json_values,
    _payloads | _json_values,
    st.binary(max_size=300),
)
_tokens = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=_B64_CHARS + ".=", max_size=400),
    st.lists(st.text(alphabet=_B64_CHARS, max_size=60), max_size=6).map(".".join),
    _structured,
)


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tokens)
def test_random_tokens_only_ever_get_401(tok: str) -> None:
    value = b"Bearer " + tok.encode("utf-8", "surrogatepass")
    ctx = request([(b"authorization", value)])
    try:
        run(_FUZZ_STEP, ctx)
    except errors.Unauthenticated as e:
        assert e.status == 401
    else:  # a random token can only pass by being a well-signed one, which it cannot be
        pytest.fail(f"accepted {tok!r}")


@settings(max_examples=1000, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_authorization_values_only_ever_get_401(value: bytes) -> None:
    ctx = request([(b"authorization", value)])
    try:
        run(_FUZZ_STEP, ctx)
    except errors.Unauthenticated as e:
        assert e.status == 401
