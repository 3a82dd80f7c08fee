"""Names and label values derived from a Gateway's name, within Kubernetes' 63-character limits.

In: a Gateway name (a DNS-1123 subdomain: up to 253 characters, may contain dots, may start with
a digit). Out: a DNS-1035 label (what a Service name must be: lowercase letters, digits and `-`,
starting with a letter, at most 63 characters) and a valid label value. A name that already
fits is used unchanged; any other is sanitised, cut, and given an 8-hex-digit sha256 suffix of
the original, so the result is deterministic and two different Gateways do not collide.
Called by `controller.deployer.render`.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 63
"""Kubernetes' limit for DNS-1035 labels (Service names) and label values."""

HASH_LENGTH = 8
"""Hex digits of sha256 kept as the suffix: 32 bits, plenty among the Gateways of one namespace."""

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_INVALID = re.compile(r"[^-a-z0-9]+")


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]


def object_name(gateway_name: str) -> str:
    """The name of every object generated for the Gateway `gateway_name`."""
    if len(gateway_name) <= MAX_LENGTH and _DNS_1035.match(gateway_name):
        return gateway_name
    base = _INVALID.sub("-", gateway_name.lower()).strip("-")
    if not base[:1].isalpha():
        base = "gw-" + base
    base = base[: MAX_LENGTH - HASH_LENGTH - 1].rstrip("-")
    return f"{base}-{_digest(gateway_name)}"


def label_value(value: str) -> str:
    """`value` as a label value: unchanged when at most 63 characters, else cut with a hash suffix.

    Gateway names use only characters that label values allow (`a-z0-9.-`), so only the length
    needs care; the cut keeps the value ending in an alphanumeric character.
    """
    if len(value) <= MAX_LENGTH:
        return value
    return f"{value[: MAX_LENGTH - HASH_LENGTH - 1].rstrip('-.')}-{_digest(value)}"
