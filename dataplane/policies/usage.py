"""Find an LLM response's token usage in its body, as it streams past.

Token-based rate limits charge a request after its response, by the tokens the provider says it
used. `Sniffer` keeps only the last few KiB of a response body (OpenAI puts `usage` at the end of
a JSON answer, and in the last event of a stream with `stream_options.include_usage`; Anthropic
sends `input_tokens`/`output_tokens` in its `message_start`/`message_delta` events) and reads the
numbers with a regular expression when the body ends: no JSON parse of the whole body, no copy.
"""

from __future__ import annotations

import re

TAIL = 8192
"""Bytes of the body end kept for the search."""

_TOTAL = re.compile(rb'"total_tokens"\s*:\s*(\d+)')
_PARTS = (
    (re.compile(rb'"prompt_tokens"\s*:\s*(\d+)'), re.compile(rb'"completion_tokens"\s*:\s*(\d+)')),
    (re.compile(rb'"input_tokens"\s*:\s*(\d+)'), re.compile(rb'"output_tokens"\s*:\s*(\d+)')),
)


class Sniffer:
    __slots__ = ("head", "tail")

    def __init__(self) -> None:
        self.head = b""
        """The first bytes (Anthropic streams report input tokens at the start)."""
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < TAIL:
            self.head += chunk[: TAIL - len(self.head)]
        tail = self.tail + chunk
        self.tail = tail[-TAIL:] if len(tail) > TAIL else tail

    def total(self) -> int | None:
        """Tokens used (total, or input + output), or None when the body says nothing."""
        found = _TOTAL.findall(self.tail)
        if found:
            return int(found[-1])
        text = self.head + b"\n" + self.tail
        for prompt, completion in _PARTS:
            ins, outs = prompt.findall(text), completion.findall(text)
            if ins or outs:
                return (int(ins[-1]) if ins else 0) + (int(outs[-1]) if outs else 0)
        return None
