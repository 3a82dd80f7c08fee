"""Lookups in a header list: lower-case `(name, value)` byte pairs, as every exchange carries them.

One definition for the HTTP/1.1 and HTTP/2 exchanges and the policies: a header sent several
times reads as its values joined by ",", which is how HTTP defines repeated fields.
"""

from __future__ import annotations

from collections.abc import Sequence


def get(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of header `name` (lower-case), or None when absent."""
    found = [v for k, v in headers if k == name]
    if not found:
        return None
    return found[0] if len(found) == 1 else b",".join(found)


def get_text(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """`get` with a str name, decoded as Latin-1 (every byte maps to one character)."""
    value = get(headers, name.encode())
    return None if value is None else value.decode("latin-1")
