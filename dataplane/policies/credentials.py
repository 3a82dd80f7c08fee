"""Where authentication policies find a credential, and what they answer when it is wrong.

JWT, API-key and basic authentication share three things compiled here once per policy:

- a `Location` (from `pb.CredentialLocation`): a request header whose value starts with a
  prefix such as "Bearer " (compared case-insensitively), a query parameter, or a cookie;
- `read`, which takes the credential out of a request (None when absent; a header whose value
  does not start with the prefix counts as absent, so "Basic ..." is no bearer token), and
  `strip`, which removes a validated credential from the upstream request;
- the `WWW-Authenticate` challenges of a 401 (RFC 6750 for bearer tokens, RFC 7617 for basic)
  and the `AuthMode` decision of what a missing or invalid credential means.

Everything here is pure: no I/O, no event loop.
"""

from __future__ import annotations

import dataclasses
import re
from urllib import parse as urlparse

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import context

STRICT = pb.AUTH_MODE_STRICT
OPTIONAL = pb.AUTH_MODE_OPTIONAL
PERMISSIVE = pb.AUTH_MODE_PERMISSIVE
_MODES = frozenset((STRICT, OPTIONAL, PERMISSIVE))

DEFAULT_REALM = "agentgw"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
"""An HTTP field name (RFC 9110 token), lower case."""
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """A compiled `CredentialLocation`."""

    kind: str
    """"header", "query" or "cookie"."""
    name: str
    """Header name (lower case), query parameter or cookie name."""
    prefix: bytes = b""
    """Lower-case prefix stripped from a header value ("bearer ")."""

    @property
    def header_name(self) -> bytes:
        return self.name.encode("latin-1")

    @property
    def scheme(self) -> str:
        """The authentication scheme the prefix names ("Bearer"), or "" when there is none."""
        return self.prefix.decode("latin-1").strip().capitalize()


def mode(value: int, where: str) -> int:
    """Check an `AuthMode` value; raise ConfigError for values this proxy does not know."""
    if value not in _MODES:
        raise api_errors.ConfigError([f"{where}.mode: unknown mode {value}"])
    return value


def location(msg: pb.CredentialLocation, default_header: str, default_prefix: str, where: str) -> Location:
    """Compile a location; an unset one means `default_header` with `default_prefix`."""
    kind = msg.WhichOneof("kind")
    if kind is None:
        return Location("header", default_header, default_prefix.lower().encode("latin-1"))
    if kind == "header":
        name = msg.header.name.lower()
        if not _TOKEN.fullmatch(name):
            raise api_errors.ConfigError([f"{where}.location.header.name: {name!r} is not a header name"])
        prefix = msg.header.prefix
        if not _PRINTABLE.fullmatch(prefix):
            raise api_errors.ConfigError(
                [f"{where}.location.header.prefix: only printable ASCII characters are allowed"]
            )
        return Location("header", name, prefix.lower().encode("latin-1"))
    if kind == "query_parameter":
        if not msg.query_parameter:
            raise api_errors.ConfigError([f"{where}.location.query_parameter: must not be empty"])
        return Location("query", msg.query_parameter)
    if not _COOKIE_NAME.fullmatch(msg.cookie):
        raise api_errors.ConfigError([f"{where}.location.cookie: {msg.cookie!r} is not a cookie name"])
    return Location("cookie", msg.cookie)


def read(loc: Location, ctx: context.RequestContext) -> str | None:
    """The credential at `loc` in this request, or None when there is none (or it is empty).

    The value's characters are its bytes (latin-1, also for percent-escapes in a query), so
    `value.encode("latin-1")` gives back what the client sent. The first query parameter or
    cookie of that name wins.
    """
    if loc.kind == "header":
        raw = ctx.header(loc.header_name)
        if raw is None:
            return None
        if loc.prefix:
            if raw[: len(loc.prefix)].lower() != loc.prefix:
                return None
            raw = raw[len(loc.prefix) :]
        return raw.strip().decode("latin-1") or None
    if loc.kind == "query":
        query: str = ctx.ex.query
        if loc.name not in query and "%" not in query:
            return None
        for key, value in urlparse.parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
            if key == loc.name:
                return value or None
        return None
    wanted = loc.name.encode("latin-1")
    for name, cookies in ctx.headers:
        if name != b"cookie":
            continue
        for part in cookies.split(b";"):
            cookie, sep, val = part.partition(b"=")
            if sep and cookie.strip() == wanted:
                val = val.strip()
                if len(val) >= 2 and val[:1] == b'"' and val[-1:] == b'"':
                    val = val[1:-1]
                return val.decode("latin-1") or None
    return None


def strip(loc: Location, ctx: context.RequestContext) -> None:
    """Remove a validated credential from the upstream request: the header, or the one cookie.

    A query parameter stays (rewriting the target is not this policy's business).
    """
    if loc.kind == "header":
        ctx.remove_header(loc.header_name)
        ctx.invalidate("request")
    elif loc.kind == "cookie":
        wanted = loc.name.encode("latin-1")
        kept: list[tuple[bytes, bytes]] = []
        for name, value in ctx.headers:
            if name == b"cookie":
                parts = [p for p in value.split(b";") if p.partition(b"=")[0].strip() != wanted]
                value = b";".join(parts).strip(b" ;")
                if not value:
                    continue
            kept.append((name, value))
        ctx.headers = kept
        ctx.invalidate("request")


def quote(value: str) -> str:
    """An RFC 9110 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_realm(realm: str, where: str) -> str:
    """A realm for a challenge: printable ASCII only (it is sent in a response header)."""
    if not _PRINTABLE.fullmatch(realm):
        raise api_errors.ConfigError([f"{where}.realm: only printable ASCII characters are allowed"])
    return realm or DEFAULT_REALM


def challenge(scheme: str, realm: str, error: str | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """The `WWW-Authenticate` header of a 401: `Bearer realm="agentgw", error="invalid_token"`.

    `error` follows RFC 6750 section 3: omitted when the request had no credential at all.
    """
    value = f"{scheme} realm={quote(realm)}"
    if error:
        value += f", error={quote(error)}"
    return ((b"www-authenticate", value.encode("latin-1")),)


@dataclasses.dataclass(frozen=True, slots=True)
class Refusals:
    """The two 401s of one policy, built once: credential missing, credential invalid."""

    policy: str
    """"jwt authentication", "api key authentication", "basic authentication"."""
    missing_message: str
    invalid_message: str
    missing_headers: tuple[tuple[bytes, bytes], ...]
    invalid_headers: tuple[tuple[bytes, bytes], ...]

    def missing(self) -> errors.Unauthenticated:
        return errors.Unauthenticated(f"{self.policy}: {self.missing_message}", headers=self.missing_headers)

    def invalid(self) -> errors.Unauthenticated:
        return errors.Unauthenticated(f"{self.policy}: {self.invalid_message}", headers=self.invalid_headers)


def bearer_refusals(policy: str, what: str, loc: Location) -> Refusals:
    """Refusals for a bearer-style credential (JWT, API key): RFC 6750 challenges.

    The scheme is the location's prefix ("Bearer") or "Bearer" when the credential is read
    from somewhere without one (a query parameter, a cookie, `x-api-key`).
    """
    scheme = loc.scheme or "Bearer"
    return Refusals(
        policy,
        f"{what} missing",
        f"invalid {what}",
        challenge(scheme, DEFAULT_REALM),
        challenge(scheme, DEFAULT_REALM, "invalid_token"),
    )
