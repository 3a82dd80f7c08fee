"""Reading LLM token usage from response bodies (OpenAI and Anthropic shapes, streamed or not)."""

from __future__ import annotations

import json

import pytest

from dataplane.policies import usage


def _total(*chunks: bytes) -> int | None:
    s = usage.Sniffer()
    for c in chunks:
        s.feed(c)
    return s.total()


def test_an_openai_json_answer_reports_its_total() -> None:
    body = json.dumps(
        {
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
    )
    assert _total(body.encode()[:20], body.encode()[20:]) == 12


def test_an_openai_stream_reports_the_usage_of_its_last_event() -> None:
    events = [b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'] * 500
    events.append(
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":500,"total_tokens":505}}\n\n'
    )
    events.append(b"data: [DONE]\n\n")
    assert _total(*events) == 505


def test_an_anthropic_stream_adds_input_and_output_tokens() -> None:
    start = b'event: message_start\ndata: {"message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
    middle = [b'event: content_block_delta\ndata: {"delta":{"text":"x"}}\n\n'] * 400
    end = b'event: message_delta\ndata: {"usage":{"output_tokens":15}}\n\n'
    assert _total(start, *middle, end) == 40


@pytest.mark.parametrize("body", [b"", b"plain text", b'{"error": {"message": "bad"}}'])
def test_a_body_without_usage_reports_none(body: bytes) -> None:
    assert _total(body) is None
