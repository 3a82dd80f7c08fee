"""LLM request shaping for provider backends (pure functions)."""

from __future__ import annotations

import orjson
import pytest

from dataplane import errors, tables
from dataplane.backends import llm


def _target(model: str = "gpt-4o", auth: bytes | None = b"Bearer sk-1", port: int = 443) -> tables.Target:
    ai = tables.AIProvider(provider="openai", path="/v1/chat/completions", model=model, authorization=auth)
    return tables.Target(name="openai", host="api.openai.com", port=port, tls=True, ai=ai)


def test_backend_model_replaces_the_request_model() -> None:
    target = _target()
    assert target.ai is not None
    body = llm.provider_body(target.ai, b'{"model": "mine", "messages": []}')
    assert orjson.loads(body) == {"model": "gpt-4o", "messages": []}


def test_request_model_is_kept_when_the_backend_sets_none() -> None:
    target = _target(model="")
    assert target.ai is not None
    assert orjson.loads(llm.provider_body(target.ai, b'{"model": "mine"}'))["model"] == "mine"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"messages": []}'])
def test_bodies_that_are_not_a_usable_json_object_are_bad_requests(body: bytes) -> None:
    target = _target(model="")
    assert target.ai is not None
    with pytest.raises(errors.BadRequest):
        llm.provider_body(target.ai, body)


def test_provider_headers_replace_host_and_credentials() -> None:
    headers = [(b"host", b"gw:8080"), (b"authorization", b"Bearer client"), (b"x-trace", b"1")]
    out = llm.provider_headers(_target(), headers)
    assert (b"host", b"api.openai.com") in out
    assert (b"authorization", b"Bearer sk-1") in out
    assert (b"authorization", b"Bearer client") not in out
    assert (b"x-trace", b"1") in out


def test_client_credentials_pass_through_when_the_backend_has_no_key() -> None:
    out = llm.provider_headers(_target(auth=None, port=8443), [(b"authorization", b"Bearer client")])
    assert (b"authorization", b"Bearer client") in out
    assert (b"host", b"api.openai.com:8443") in out
