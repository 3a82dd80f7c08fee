"""Basic authentication: compile a `pb.BasicAuth` into a request step that checks htpasswd users.

`compile` parses the htpasswd text once into user -> hash. Accepted hashes are what Apache's
`htpasswd` writes and a gateway can verify safely:

- bcrypt (`$2y$`, `$2b$`, `$2a$`; `htpasswd -B`), verified with the `bcrypt` package. Like
  Apache, only the first 72 bytes of a password count;
- apr1 MD5 (`$apr1$`, htpasswd's default) and its MD5-crypt parent `$1$`, implemented below
  (Poul-Henning Kamp's published algorithm);
- `{SHA}` (base64 of the SHA-1 of the password; `htpasswd -s`).

Plain-text passwords, crypt(3) DES and SHA-crypt (`$5$`, `$6$`) are refused at compile time.

bcrypt is slow on purpose (~50-100 ms per check at the usual costs), so a check runs off the
event loop, on the worker's small thread pool (`ctx.services.client("blocking", None)`), and
successful checks are remembered in a bounded LRU (1,024 entries per policy) keyed by the
SHA-256 of user, password and stored hash: a client pays bcrypt once, not on every request.
apr1 and SHA checks are fast and run inline.

Modes follow `AuthMode`. On success `ctx.basic_auth` is `{"username": user}` and the
Authorization header is removed from the upstream request. Refusals say "basic
authentication: credentials missing" or "basic authentication: invalid credentials" with a
`Basic realm="<realm>"` challenge (default realm "agentgw").
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable

import bcrypt

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.policies import context, credentials

log = logging.getLogger(__name__)

POLICY = "basic authentication"
CACHE_SIZE = 1024
BCRYPT_MAX_PASSWORD = 72

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_MD5_CRYPT = re.compile(r"\$(apr1|1)\$([^$]{0,8})\$([./0-9A-Za-z]{22})")
_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# password hashes ----------------------------------------------------------------------------


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """MD5-crypt as Apache (`$apr1$`) and FreeBSD (`$1$`) define it: the full hash string."""
    salt = salt[:8]
    digest = hashlib.md5(password + salt + password, usedforsecurity=False).digest()
    ctx = hashlib.md5(password + magic + salt, usedforsecurity=False)
    for remaining in range(len(password), 0, -16):
        ctx.update(digest[: min(16, remaining)])
    n = len(password)
    while n:
        ctx.update(b"\0" if n & 1 else password[:1])
        n >>= 1
    digest = ctx.digest()
    for i in range(1000):
        round_ = hashlib.md5(usedforsecurity=False)
        round_.update(password if i & 1 else digest)
        if i % 3:
            round_.update(salt)
        if i % 7:
            round_.update(password)
        round_.update(digest if i & 1 else password)
        digest = round_.digest()
    out = bytearray()
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += _to64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4)
    out += _to64(digest[11], 2)
    return magic + salt + b"$" + bytes(out)


def _to64(value: int, count: int) -> bytes:
    out = bytearray()
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def _check_bcrypt(password: bytes, stored: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], stored)
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One htpasswd user: the scheme ("bcrypt", "md5", "sha") and the stored hash."""

    username: str
    scheme: str
    stored: bytes

    def check(self, password: bytes) -> bool:
        """Verify a password (blocks for bcrypt: call that one off the event loop)."""
        if self.scheme == "bcrypt":
            return _check_bcrypt(password, self.stored)
        if self.scheme == "sha":
            computed = b"{SHA}" + base64.b64encode(hashlib.sha1(password, usedforsecurity=False).digest())
            return hmac.compare_digest(computed, self.stored)
        magic, _, rest = self.stored[1:].partition(b"$")
        salt = rest.partition(b"$")[0]
        return hmac.compare_digest(md5_crypt(password, salt, b"$" + magic + b"$"), self.stored)


def _entry(username: str, hashed: str) -> Entry:
    """Classify one hash; raises ValueError with a message that never quotes it."""
    if not hashed.isascii():
        raise ValueError("the hash is not ASCII")
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        match = _BCRYPT.fullmatch(hashed)
        if match is None or not 4 <= int(match.group(1)) <= 31:
            raise ValueError("malformed bcrypt hash")
        return Entry(username, "bcrypt", hashed.encode())
    if hashed.startswith(("$apr1$", "$1$")):
        if _MD5_CRYPT.fullmatch(hashed) is None:
            raise ValueError("malformed apr1/MD5 hash")
        return Entry(username, "md5", hashed.encode())
    if hashed.startswith("{SHA}"):
        try:
            raw = base64.b64decode(hashed[5:], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 20:
            raise ValueError("malformed {SHA} hash")
        return Entry(username, "sha", hashed.encode())
    if hashed.startswith(("$5$", "$6$")):
        raise ValueError("SHA-crypt ($5$, $6$) hashes are not supported; use bcrypt (htpasswd -B)")
    raise ValueError(
        "unsupported hash: plain-text passwords and crypt(3) DES are not accepted; "
        "use bcrypt (htpasswd -B), apr1 or {SHA}"
    )


def parse_htpasswd(text: str, where: str) -> dict[bytes, Entry]:
    """htpasswd lines `user:hash` (blank lines and `#` comments skipped) by UTF-8 username."""
    users: dict[bytes, Entry] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, hashed = line.partition(":")
        if not sep or not username:
            problems.append(f"{where}: line {number}: expected user:hash")
            continue
        try:
            entry = _entry(username, hashed.strip())
        except ValueError as e:
            problems.append(f"{where}: line {number} (user {username!r}): {e}")
            continue
        key = username.encode()
        if key in users:
            problems.append(f"{where}: line {number}: user {username!r} appears twice")
            continue
        users[key] = entry
    if problems:
        raise api_errors.ConfigError(problems)
    if not users:
        raise api_errors.ConfigError([f"{where}: no users"])
    return users


# the step -----------------------------------------------------------------------------------


class BasicAuthStep:
    """The compiled policy; calling it checks one request (see the module docstring)."""

    __slots__ = ("_cache", "_location", "_mode", "_refusals", "_users", "_where")

    def __init__(
        self,
        mode: int,
        location: credentials.Location,
        users: dict[bytes, Entry],
        realm: str,
        where: str,
    ) -> None:
        self._mode = mode
        self._location = location
        self._users = users
        self._where = where
        header = credentials.challenge("Basic", realm)
        self._refusals = credentials.Refusals(
            POLICY, "credentials missing", "invalid credentials", header, header
        )
        self._cache: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None] | None:
        value = credentials.read(self._location, ctx)
        if value is None:
            if self._mode == credentials.STRICT:
                raise self._refusals.missing()
            return None
        try:
            decoded = base64.b64decode(value.encode("latin-1"), validate=True)
        except (binascii.Error, ValueError):
            self._refuse("credentials are not base64")
            return None
        username, sep, password = decoded.partition(b":")
        if not sep:
            self._refuse("credentials have no ':'")
            return None
        entry = self._users.get(username)
        if entry is None:
            self._refuse("unknown user")
            return None
        if entry.scheme == "bcrypt":
            password = password[:BCRYPT_MAX_PASSWORD]
        remembered = _cache_key(username, password, entry.stored)
        if remembered in self._cache:
            self._cache.move_to_end(remembered)
            self._accept(ctx, entry)
            return None
        if entry.scheme == "bcrypt":
            return self._slow(ctx, entry, password, remembered)
        self._finish(ctx, entry, entry.check(password), remembered)
        return None

    async def _slow(
        self, ctx: context.RequestContext, entry: Entry, password: bytes, remembered: bytes
    ) -> None:
        ok = await ctx.services.client("blocking", None).run(_check_bcrypt, password, entry.stored)
        self._finish(ctx, entry, bool(ok), remembered)

    def _finish(self, ctx: context.RequestContext, entry: Entry, ok: bool, remembered: bytes) -> None:
        if not ok:
            self._refuse("wrong password")
            return
        self._cache[remembered] = None
        self._cache.move_to_end(remembered)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._accept(ctx, entry)

    def _accept(self, ctx: context.RequestContext, entry: Entry) -> None:
        ctx.basic_auth = {"username": entry.username}
        credentials.strip(self._location, ctx)
        ctx.invalidate("basicAuth")

    def _refuse(self, reason: str) -> None:
        log.debug("%s at %s: %s", POLICY, self._where, reason)
        if self._mode != credentials.PERMISSIVE:
            raise self._refusals.invalid()


def _cache_key(username: bytes, password: bytes, stored: bytes) -> bytes:
    h = hashlib.sha256()
    for part in (username, password, stored):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def compile(msg: pb.BasicAuth, where: str) -> context.Step:
    """Check and prepare a BasicAuth policy; raises ConfigError naming `where`'s fields."""
    mode = credentials.mode(msg.mode, where)
    location = credentials.location(msg.location, "authorization", "Basic ", where)
    realm = credentials.check_realm(msg.realm, where)
    users = parse_htpasswd(msg.htpasswd, f"{where}.htpasswd")
    return BasicAuthStep(mode, location, users, realm, where)
