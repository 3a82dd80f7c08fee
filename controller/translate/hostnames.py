"""Hostname intersection between a Gateway listener and an HTTPRoute (Gateway API spec).

In: a listener's `hostname` (exact, `*.wildcard`, or empty for any host) and a route's
`hostnames`. Out: the hostnames the route serves on that listener, or None when none intersect
(the route does not attach there; if it attaches nowhere its status says
`NoMatchingListenerHostname`).

The rules, from the HTTPRoute `hostnames` field docs:

- `*.example.com` matches every name with at least one more label (`a.example.com`,
  `a.b.example.com`), never `example.com` itself;
- exact vs exact: equal names intersect;
- wildcard vs exact: the exact name, if the wildcard matches it;
- wildcard vs wildcard: the more specific one, if it is covered by the other;
- a route without hostnames takes the listener's (the result is the empty tuple: the proxy's
  listener already selects by host), and a listener without a hostname takes the route's.

Comparison ignores case (DNS names are case-insensitive); results are lowercase. Pure; called by
`controller.translate.attach`.
"""

from __future__ import annotations

from collections.abc import Sequence


def is_wildcard(hostname: str) -> bool:
    return hostname.startswith("*.")


def covers(wildcard: str, hostname: str) -> bool:
    """Whether `*.suffix` matches `hostname` (exact or itself a deeper or equal wildcard)."""
    suffix = wildcard[1:]  # ".example.com"
    if is_wildcard(hostname):
        return hostname[1:].endswith(suffix)
    return hostname.endswith(suffix) and len(hostname) > len(suffix)


def pair(listener: str, route: str) -> str | None:
    """The intersection of two non-empty hostnames: the more specific one, or None."""
    a, b = listener.lower(), route.lower()
    if a == b:
        return a
    if is_wildcard(a) and covers(a, b):
        return b
    if is_wildcard(b) and covers(b, a):
        return a
    return None


def intersect(listener: str | None, route: Sequence[str]) -> tuple[str, ...] | None:
    """The route's hostnames on this listener; () when the route names none; None: no match."""
    if not route:
        return ()
    if not listener:
        return tuple(dict.fromkeys(h.lower() for h in route))
    found = (pair(listener, h) for h in route)
    matched = tuple(dict.fromkeys(h for h in found if h is not None))
    return matched or None
