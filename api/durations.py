"""Parse and format durations the way agentgateway's files write them ("10s", "1m30s", "250ms").

Pure functions used by the config loader; the request path never parses a duration.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse(text: str) -> float:
    """Return seconds for a duration such as "1m30s"; raise ValueError naming the text if invalid."""
    text = text.strip()
    pos = 0
    total = 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}: expected e.g. '500ms', '10s', '1m30s'")
    return total


def format_seconds(seconds: float) -> str:
    """Format seconds compactly ("1.5s", "250ms") for dumps and messages."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
