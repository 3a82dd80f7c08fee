"""API-key authentication: compile a `pb.ApiKeyAuth` into a request step that checks a key.

`compile` hashes every configured key once (keys given as `sha256` hex are taken as digests)
into a dict from SHA-256 digest to the key's metadata, parsed from `metadata_json`. The step
hashes the presented key and looks the digest up: no comparison loop over secrets, and no
plain key kept in the compiled table.

Modes follow `AuthMode`: strict refuses a request without a valid key, optional (default)
refuses only a present-but-wrong key, permissive never refuses. On success `ctx.api_key` is
`{**metadata, "key": "<redacted>"}` (the redacted key wins over a metadata field named "key")
and the key is removed from the upstream request. Refusals say "api key authentication: key
missing" or "api key authentication: invalid key" with an RFC 6750 style challenge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable
from typing import Any

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.policies import context, credentials

log = logging.getLogger(__name__)

POLICY = "api key authentication"
REDACTED = "<redacted>"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class ApiKeyStep:
    """The compiled policy; calling it checks one request."""

    __slots__ = ("_identities", "_location", "_mode", "_refusals", "_where")

    def __init__(
        self,
        mode: int,
        location: credentials.Location,
        identities: dict[bytes, dict[str, Any]],
        where: str,
    ) -> None:
        self._mode = mode
        self._location = location
        self._identities = identities
        self._where = where
        self._refusals = credentials.bearer_refusals(POLICY, "key", location)

    def __call__(self, ctx: context.RequestContext) -> Awaitable[None] | None:
        key = credentials.read(self._location, ctx)
        if key is None:
            if self._mode == credentials.STRICT:
                raise self._refusals.missing()
            return None
        identity = self._identities.get(hashlib.sha256(key.encode("latin-1")).digest())
        if identity is None:
            log.debug("%s at %s: unknown key", POLICY, self._where)
            if self._mode != credentials.PERMISSIVE:
                raise self._refusals.invalid()
            return None
        ctx.api_key = dict(identity)
        credentials.strip(self._location, ctx)
        ctx.invalidate("apiKey")
        return None


def compile(msg: pb.ApiKeyAuth, where: str) -> context.Step:
    """Check and prepare an ApiKeyAuth policy; raises ConfigError naming `where`'s fields."""
    mode = credentials.mode(msg.mode, where)
    location = credentials.location(msg.location, "authorization", "Bearer ", where)
    if not msg.keys:
        raise api_errors.ConfigError([f"{where}.keys: at least one key is required"])
    problems: list[str] = []
    identities: dict[bytes, dict[str, Any]] = {}
    for index, k in enumerate(msg.keys):
        path = f"{where}.keys[{index}]"
        which = k.WhichOneof("value")
        digest: bytes | None = None
        if which == "key":
            if not k.key:
                problems.append(f"{path}.key: must not be empty")
            else:
                try:
                    digest = hashlib.sha256(k.key.encode("latin-1")).digest()
                except UnicodeEncodeError:
                    problems.append(f"{path}.key: only latin-1 characters can be sent in a header")
        elif which == "sha256":
            if _HEX64.fullmatch(k.sha256):
                digest = bytes.fromhex(k.sha256)
            else:
                problems.append(f"{path}.sha256: not a SHA-256 digest (64 hex digits)")
        else:
            problems.append(f"{path}: a key or a sha256 digest is required")
        metadata: Any = {}
        if k.metadata_json:
            try:
                metadata = json.loads(k.metadata_json)
            except json.JSONDecodeError as e:
                problems.append(f"{path}.metadata_json: not valid JSON ({e.msg} at offset {e.pos})")
            except RecursionError:
                problems.append(f"{path}.metadata_json: nested too deeply")
            else:
                if not isinstance(metadata, dict):
                    problems.append(f"{path}.metadata_json: must be a JSON object")
        if digest is None or not isinstance(metadata, dict):
            continue
        if digest in identities:
            problems.append(f"{path}: the same key is configured twice")
            continue
        identities[digest] = {**metadata, "key": REDACTED}
    if problems:
        raise api_errors.ConfigError(problems)
    return ApiKeyStep(mode, location, identities, where)
