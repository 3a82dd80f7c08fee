"""LLM provider calls: turn a client's request into the provider's API request. Pure functions.

In: the chosen `tables.Target` (with `ai` set) and the client's headers and JSON body. Out: the
headers and body to send. Called by `proxy` for AI backends. OpenAI only so far: the request is
sent to the provider's chat-completions path whatever path the client used on the route, the
backend's `model` replaces the body's, and the backend's key becomes `Authorization: Bearer`.
The body is decoded and re-encoded with orjson (~3 µs for a 2 KB chat request); the response is
streamed back unchanged (it is already in the client's format).
"""

from __future__ import annotations

from typing import Any

import orjson

from dataplane import errors, tables

_DROPPED = frozenset({b"host", b"content-length", b"authorization"})
_DEFAULT_PORTS = {True: 443, False: 80}


def provider_body(ai: tables.AIProvider, body: bytes) -> bytes:
    """The JSON body for the provider, with the backend's model if it sets one."""
    try:
        request: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"an LLM request body must be JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise errors.BadRequest("an LLM request body must be a JSON object")
    if ai.model:
        request["model"] = ai.model
    elif not isinstance(request.get("model"), str):
        raise errors.BadRequest("the request has no model and the backend sets none")
    return orjson.dumps(request)


def provider_headers(target: tables.Target, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers with Host set to the provider and the backend's credentials."""
    ai = target.ai
    assert ai is not None
    keep_auth = ai.authorization is None
    out = [h for h in headers if h[0] not in _DROPPED or (keep_auth and h[0] == b"authorization")]
    host = target.host if target.port == _DEFAULT_PORTS[target.tls is not None] else target.address
    out.append((b"host", host.encode()))
    if ai.authorization is not None:
        out.append((b"authorization", ai.authorization))
    return out
