"""JWT authentication: compile a `pb.JwtAuth` into a request step that verifies bearer tokens.

`compile` checks the policy and prepares it once: providers indexed by issuer, inline JWKS
parsed into keys, remote and file key sets named by the services key the runtime source
(`dataplane.policies.jwks`) is created for. The step then, per request:

1. reads the token from the policy's location (default `Authorization: Bearer <token>`);
2. parses the compact JWS itself (tokens over 16 KiB, wrong segment counts, bad base64url,
   JSON that is not an object, `alg` "none" or unknown, a `crit` header: all invalid);
3. picks the providers by the token's unverified `iss` (a provider with an empty issuer
   accepts any) and verifies the signature with the key whose `kid` matches (or, without a
   `kid`, every key), using only algorithms that key's type allows: RSA keys take RS*/PS*, EC
   keys the ES* of their curve, OKP keys EdDSA, symmetric keys HS*. A `alg` in the JWK narrows
   this to one. So HS256 signed with an RSA public key (algorithm confusion) never verifies;
4. checks `exp` and `nbf` with a leeway of `LEEWAY` (30 s) for clock skew between the issuer
   and this proxy, `iss`, `aud` (any overlap with the provider's audiences) and the
   provider's required claims (these before the signature: they are cheap, and an expired
   token never causes a key refetch).

A verified token is remembered (bounded LRU, see `JwtStep`), so a client that reuses its token
costs a dict lookup and a clock comparison, not a signature check, until the token expires or
the key set that verified it is replaced.

It stays synchronous when the keys are at hand; it returns an awaitable only when a remote or
file key set must be loaded for the first time or refetched for an unknown `kid` (the source
rate-limits that, so a stream of made-up `kid`s costs one fetch per interval). A key set that
cannot be loaded makes the token invalid (401), not a server error.

On success `ctx.jwt` holds the verified claims, `ctx.jwt_token` the raw token, and the token is
removed from the upstream request. Refusals say "jwt authentication: token missing" or
"jwt authentication: invalid token" with an RFC 6750 challenge; why a token failed is logged
at debug level only.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import json
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol
from urllib import parse as urlparse

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import algorithms as pyjwt_algorithms

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.policies import context, credentials

log = logging.getLogger(__name__)

POLICY = "jwt authentication"
LEEWAY = 30.0
"""Seconds of clock skew tolerated on `exp` and `nbf`."""
MAX_TOKEN = 16 * 1024
"""Longer tokens are refused without being parsed."""
VERIFIED_CACHE = 1024
MAX_CACHED_TOKEN = 4096
DEFAULT_REFRESH = 300.0
MIN_REFRESH = 1.0
MIN_RSA_BITS = 2048

SourceKey = tuple[str, str, float]
"""The services key of a remote or file key set: ("url", url, refresh seconds) or
("file", path, refresh seconds). `ctx.services.client("jwks", key)` returns its `KeySource`."""

_ALGORITHMS: dict[str, Any] = dict(pyjwt_algorithms.get_default_algorithms())
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
SIGNING_ALGORITHMS = frozenset(_RSA_ALGS | set(_EC_ALG_BY_CURVE.values()) | {"EdDSA"} | set(_HMAC_MIN_BYTES))
"""Every `alg` a token may carry ("none" is not one of them)."""
_PRIVATE_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


# keys ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    """One verification key of a JWK set."""

    kid: str | None
    algorithms: frozenset[str]
    """The `alg` values this key may verify."""
    key: Any
    """A cryptography public key, or the secret bytes of a symmetric key."""


class KeySet:
    """Verification keys by `kid`, built once per JWKS document."""

    __slots__ = ("_anonymous", "_by_kid", "keys")

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = tuple(keys)
        by_kid: dict[str, list[Key]] = {}
        for k in self.keys:
            if k.kid is not None:
                by_kid.setdefault(k.kid, []).append(k)
        self._by_kid = {kid: tuple(found) for kid, found in by_kid.items()}
        self._anonymous = tuple(k for k in self.keys if k.kid is None)

    def lookup(self, kid: str | None) -> Sequence[Key] | None:
        """Keys to try for a token's `kid`: all of them without one, else the keys with that
        `kid` (or the keys without a `kid`); None when the `kid` is unknown here."""
        if kid is None:
            return self.keys
        return self._by_kid.get(kid) or self._anonymous or None

    def __len__(self) -> int:
        return len(self.keys)


class KeySource(Protocol):
    """A remote or file key set as the runtime keeps it (`dataplane.policies.jwks`)."""

    def current(self) -> KeySet | None:
        """The last key set loaded, or None before the first successful load."""

    def may_refresh(self) -> bool:
        """Whether `refresh` would fetch now (or join a fetch under way) rather than return
        the current keys at once because the last attempt was too recent."""

    def refresh(self) -> Awaitable[KeySet | None]:
        """Fetch now (rate-limited, one fetch at a time); the keys afterwards. Never raises:
        a failed fetch keeps the last good key set."""


def parse_jwks(document: str | bytes) -> tuple[KeySet, list[str]]:
    """Parse a JWK set (RFC 7517) into verification keys.

    Raises ValueError when the document is not a JWK set; returns the usable keys and one
    problem per key that was skipped ("keys[2]: unsupported key type 'foo'"). Keys for
    another use than signatures ("use": "enc") are left out silently. Problem texts never
    quote key material.
    """
    try:
        doc = json.loads(document)
    except (ValueError, RecursionError):
        raise ValueError("not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('not a JWK set (a JSON object with a "keys" list)')
    keys: list[Key] = []
    problems: list[str] = []
    for index, jwk in enumerate(doc["keys"]):
        try:
            key = _key(jwk)
        except ValueError as e:
            problems.append(f"keys[{index}]: {e}")
            continue
        if key is not None:
            keys.append(key)
    return KeySet(keys), problems


def _key(jwk: object) -> Key | None:
    if not isinstance(jwk, dict):
        raise ValueError("not a JSON object")
    use = jwk.get("use")
    ops = jwk.get("key_ops")
    if (use is not None and use != "sig") or (isinstance(ops, list) and "verify" not in ops):
        return None
    kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    if alg is not None and not isinstance(alg, str):
        raise ValueError("alg is not a string")
    allowed: frozenset[str]
    if kty == "RSA":
        allowed, builder = _RSA_ALGS, "RS256"
    elif kty == "EC":
        curve_alg = _EC_ALG_BY_CURVE.get(str(jwk.get("crv")))
        if curve_alg is None:
            raise ValueError("unsupported EC curve")
        allowed, builder = frozenset({curve_alg}), curve_alg
    elif kty == "OKP":
        if jwk.get("crv") not in _OKP_CURVES:
            raise ValueError("unsupported OKP curve")
        allowed, builder = frozenset({"EdDSA"}), "EdDSA"
    elif kty == "oct":
        allowed, builder = frozenset(_HMAC_MIN_BYTES), "HS256"
    else:
        raise ValueError(f"unsupported key type {str(kty)[:20]!r}")
    if alg is not None:
        if alg not in allowed:
            raise ValueError(f"alg {alg[:20]!r} does not fit key type {kty}")
        allowed = frozenset({alg})
    try:
        material = _ALGORITHMS[builder].from_jwk(jwk)
    except Exception:
        raise ValueError(f"not a valid {kty} key") from None
    if isinstance(material, _PRIVATE_KEYS):
        material = material.public_key()
    if isinstance(material, rsa.RSAPublicKey) and material.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key shorter than {MIN_RSA_BITS} bits")
    if isinstance(material, bytes):
        allowed = frozenset(a for a in allowed if len(material) >= _HMAC_MIN_BYTES[a])
        if not allowed:
            raise ValueError("symmetric key too short for its algorithm")
    return Key(kid, allowed, material)


# tokens -------------------------------------------------------------------------------------


class InvalidToken(Exception):
    """Why a token was refused (logged at debug level, never sent)."""


class UnknownKid(InvalidToken):
    """No key of the set has the token's `kid` (a refetch may find it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """A parsed, not yet verified, compact JWS."""

    raw: str
    alg: str
    kid: str | None
    issuer: str | None
    signing_input: bytes
    signature: bytes
    claims: dict[str, Any]


def _b64(segment: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise InvalidToken("a segment is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("a segment is not base64url") from None


def _object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64(segment))
    except (ValueError, RecursionError):
        raise InvalidToken(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"the {what} is not a JSON object")
    return value


def parse(raw: str) -> Token:
    """Split and decode a token; raises InvalidToken for anything that is not a signed JWT."""
    if len(raw) > MAX_TOKEN:
        raise InvalidToken(f"token longer than {MAX_TOKEN} bytes")
    if not raw.isascii():
        raise InvalidToken("token is not ASCII")
    parts = raw.split(".")
    if len(parts) != 3:
        raise InvalidToken(f"token has {len(parts)} segments, not 3")
    header = _object(parts[0], "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SIGNING_ALGORITHMS:
        raise InvalidToken(f"alg {str(alg)[:20]!r} is not accepted")
    if "crit" in header:
        raise InvalidToken("token has critical header extensions")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("kid is not a string")
    claims = _object(parts[1], "payload")
    issuer = claims.get("iss")
    if issuer is not None and not isinstance(issuer, str):
        raise InvalidToken("iss is not a string")
    signature = _b64(parts[2])
    if not signature:
        raise InvalidToken("token has no signature")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return Token(raw, alg, kid, issuer, signing_input, signature, claims)


def _finite_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value == value and abs(value) != float("inf")


# providers ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    audiences: frozenset[str]
    required: tuple[str, ...]
    keys: KeySet | None
    """Inline keys, or None when they come from `source`."""
    source: SourceKey | None


def verify(provider: Provider, token: Token, keys: KeySet, now: float) -> dict[str, Any]:
    """Check a parsed token against one provider's rules and keys; its claims when valid.

    The claims are checked first (cheap, and an expired token never triggers a key refetch),
    then the signature. Raises UnknownKid when no key has the token's `kid`, InvalidToken for
    everything else.
    """
    claims = token.claims
    for name in provider.required:
        if name not in claims:
            raise InvalidToken(f"required claim {name!r} missing")
    not_before, expires = validity(claims)
    if not not_before <= now < expires:
        raise InvalidToken("token expired or not valid yet")
    if provider.issuer and token.issuer != provider.issuer:
        raise InvalidToken("wrong issuer")
    if provider.audiences:
        aud = claims.get("aud")
        if isinstance(aud, str):
            aud = [aud]
        if not isinstance(aud, list) or provider.audiences.isdisjoint(a for a in aud if isinstance(a, str)):
            raise InvalidToken("no accepted audience")
    candidates = keys.lookup(token.kid)
    if candidates is None:
        raise UnknownKid("no key has the token's kid")
    algorithm = _ALGORITHMS[token.alg]
    usable = [k for k in candidates if token.alg in k.algorithms]
    if not usable:
        raise InvalidToken(f"no key accepts alg {token.alg}")
    for k in usable:
        try:
            if algorithm.verify(token.signing_input, k.key, token.signature):
                return claims
        except Exception:
            continue
    raise InvalidToken("signature does not verify")


def validity(claims: dict[str, Any]) -> tuple[float, float]:
    """The window [nbf - LEEWAY, exp + LEEWAY) in which a token is accepted (open ends when the
    claims are absent); InvalidToken when `exp` or `nbf` is not a finite number."""
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if (exp is not None and not _finite_number(exp)) or (nbf is not None and not _finite_number(nbf)):
        raise InvalidToken("exp or nbf is not a number")
    try:
        return (
            float("-inf") if nbf is None else float(nbf) - LEEWAY,
            float("inf") if exp is None else float(exp) + LEEWAY,
        )
    except OverflowError:
        raise InvalidToken("exp or nbf out of range") from None


def _seconds(d: Any) -> float:
    return float(d.seconds) + float(d.nanos) / 1e9


def _provider(msg: pb.JwtProvider, path: str) -> Provider:
    problems: list[str] = []
    for i, a in enumerate(msg.audiences):
        if not a:
            problems.append(f"{path}.audiences[{i}]: must not be empty")
    for i, c in enumerate(msg.required_claims):
        if not c:
            problems.append(f"{path}.required_claims[{i}]: must not be empty")
    keys: KeySet | None = None
    source: SourceKey | None = None
    jwks = msg.jwks
    kind = jwks.WhichOneof("source")
    refresh = DEFAULT_REFRESH
    if jwks.HasField("refresh_interval"):
        refresh = _seconds(jwks.refresh_interval)
        if refresh < MIN_REFRESH:
            problems.append(f"{path}.jwks.refresh_interval: must be at least {MIN_REFRESH:g}s")
    if kind is None:
        problems.append(f"{path}.jwks: a key set (inline, file or url) is required")
    elif kind == "inline":
        try:
            keys, key_problems = parse_jwks(jwks.inline)
        except ValueError as e:
            problems.append(f"{path}.jwks.inline: {e}")
        else:
            problems.extend(f"{path}.jwks.inline: {p}" for p in key_problems)
            if not key_problems and not keys:
                problems.append(f"{path}.jwks.inline: no signature verification keys")
    elif kind == "file":
        if not jwks.file:
            problems.append(f"{path}.jwks.file: must not be empty")
        source = ("file", jwks.file, refresh)
    else:
        url = urlparse.urlsplit(jwks.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            problems.append(f"{path}.jwks.url: {jwks.url!r} is not an http(s) URL")
        source = ("url", jwks.url, refresh)
    if problems:
        raise api_errors.ConfigError(problems)
    return Provider(msg.issuer, frozenset(msg.audiences), tuple(msg.required_claims), keys, source)


# the step -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Verified:
    """A token verified before: by which provider, with which key set, valid when."""

    provider: Provider
    keys: KeySet
    claims: dict[str, Any]
    not_before: float
    expires: float


class JwtStep:
    """The compiled policy; calling it checks one request (see the module docstring).

    Tokens verified before (up to `VERIFIED_CACHE` of them, each at most `MAX_CACHED_TOKEN`
    long) are remembered with the key set that verified them: a client reusing its token
    skips parsing and signature checks while that key set is current and the token is within
    its validity window.
    """

    __slots__ = ("_any_issuer", "_by_issuer", "_location", "_mode", "_refusals", "_verified", "_where")

    def __init__(self, mode: int, location: credentials.Location, providers: Sequence[Provider], where: str):
        self._mode = mode
        self._location = location
        self._where = where
        self._refusals = credentials.bearer_refusals(POLICY, "token", location)
        self._any_issuer = tuple(p for p in providers if not p.issuer)
        by_issuer: dict[str, list[Provider]] = {}
        for p in providers:
            if p.issuer:
                by_issuer.setdefault(p.issuer, []).append(p)
        self._by_issuer = {iss: (*found, *self._any_issuer) for iss, found in by_issuer.items()}
        self._verified: collections.OrderedDict[str, _Verified] = collections.OrderedDict()

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None] | None:
        raw = credentials.read(self._location, ctx)
        if raw is None:
            if self._mode == credentials.STRICT:
                raise self._refusals.missing()
            return None
        now = time.time()
        seen = self._verified.get(raw)
        if seen is not None:
            current = seen.provider.keys
            if current is None:
                current = ctx.services.client("jwks", seen.provider.source).current()
            if current is seen.keys and seen.not_before <= now < seen.expires:
                self._verified.move_to_end(raw)
                self._accept(ctx, raw, dict(seen.claims))
                return None
            del self._verified[raw]
        try:
            token = parse(raw)
        except InvalidToken as e:
            self._refuse(str(e))
            return None
        providers = self._providers(token)
        if not providers:
            self._refuse("no provider for the token's issuer")
            return None
        reason = "no provider accepted the token"
        for index, provider in enumerate(providers):
            source: KeySource | None = None
            keys = provider.keys
            if keys is None:
                source = ctx.services.client("jwks", provider.source)
                keys = source.current()
                if keys is None:
                    if source.may_refresh():
                        return self._slow(ctx, token, providers[index:])
                    reason = "key set unavailable"
                    continue
            try:
                claims = verify(provider, token, keys, now)
            except UnknownKid as e:
                if source is not None and source.may_refresh():
                    return self._slow(ctx, token, providers[index:])
                reason = str(e)
                continue
            except InvalidToken as e:
                reason = str(e)
                continue
            self._remember(token, provider, keys)
            self._accept(ctx, raw, claims)
            return None
        self._refuse(reason)
        return None

    def _providers(self, token: Token) -> tuple[Provider, ...]:
        if token.issuer is None:
            return self._any_issuer
        return self._by_issuer.get(token.issuer, self._any_issuer)

    async def _slow(self, ctx: context.RequestContext, token: Token, providers: Sequence[Provider]) -> None:
        """The same checks, for when a key set must be fetched first."""
        reason = "no provider accepted the token"
        for provider in providers:
            source: KeySource | None = None
            keys = provider.keys
            if keys is None:
                source = ctx.services.client("jwks", provider.source)
                keys = source.current()
                if keys is None and source.may_refresh():
                    keys = await source.refresh()
                if keys is None:
                    reason = "key set unavailable"
                    continue
            try:
                claims = verify(provider, token, keys, time.time())
            except UnknownKid as e:
                reason = str(e)
                if source is None or not source.may_refresh():
                    continue
                fresh = await source.refresh()
                if fresh is None or fresh is keys:
                    continue
                keys = fresh
                try:
                    claims = verify(provider, token, keys, time.time())
                except InvalidToken as again:
                    reason = str(again)
                    continue
            except InvalidToken as e:
                reason = str(e)
                continue
            self._remember(token, provider, keys)
            self._accept(ctx, token.raw, claims)
            return
        self._refuse(reason)

    def _remember(self, token: Token, provider: Provider, keys: KeySet) -> None:
        if len(token.raw) > MAX_CACHED_TOKEN:
            return
        not_before, expires = validity(token.claims)
        self._verified[token.raw] = _Verified(provider, keys, dict(token.claims), not_before, expires)
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)

    def _accept(self, ctx: context.RequestContext, raw: str, claims: dict[str, Any]) -> None:
        ctx.jwt = claims
        ctx.jwt_token = raw
        credentials.strip(self._location, ctx)
        ctx.invalidate("jwt")

    def _refuse(self, reason: str) -> None:
        log.debug("%s at %s: %s", POLICY, self._where, reason)
        if self._mode != credentials.PERMISSIVE:
            raise self._refusals.invalid()


def compile(msg: pb.JwtAuth, where: str) -> context.Step:
    """Check and prepare a JwtAuth policy; raises ConfigError naming `where`'s fields."""
    mode = credentials.mode(msg.mode, where)
    location = credentials.location(msg.location, "authorization", "Bearer ", where)
    if not msg.providers:
        raise api_errors.ConfigError([f"{where}.providers: at least one provider is required"])
    problems: list[str] = []
    providers: list[Provider] = []
    for index, p in enumerate(msg.providers):
        try:
            providers.append(_provider(p, f"{where}.providers[{index}]"))
        except api_errors.ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise api_errors.ConfigError(problems)
    return JwtStep(mode, location, providers, where)
