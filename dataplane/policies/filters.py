"""HTTPRoute filters as pure functions: redirects, URL rewrites, CORS headers.

Called by `proxy` with the matched route's compiled policy (`tables.RoutePolicy`) and the
request's fields; they return new values and never touch sockets. Semantics follow the
Gateway API spec: a prefix rewrite or redirect replaces the matched PathPrefix, keeping the
rest of the path; a redirect keeps the request's scheme, host and path unless told otherwise
and omits the port when it is the scheme's default.
"""

from __future__ import annotations

from dataplane import routing, tables

_DEFAULT_PORTS = {"http": 80, "https": 443}


def replace_prefix(path: str, matched_prefix: str, replacement: str) -> str:
    """Gateway API ReplacePrefixMatch: "/foo/bar" with prefix "/foo" -> replacement + "/bar"."""
    matched = routing.normalize_prefix(matched_prefix)
    rest = path[len(matched) :] if matched != "/" else path
    if matched == "/" and rest.startswith("/"):
        rest = rest[1:] if replacement.endswith("/") else rest
    replacement = replacement.rstrip("/") if rest.startswith("/") else replacement
    if not replacement and not rest:
        return "/"
    if rest and not rest.startswith("/") and not replacement.endswith("/"):
        rest = "/" + rest
    result = replacement + rest
    return result or "/"


def new_path(change: tables.PathChange | None, path: str, match_kind: str, match_path: str) -> str:
    if change is None:
        return path
    if change.full is not None:
        return change.full
    if change.prefix is not None and match_kind == "prefix":
        return replace_prefix(path, match_path, change.prefix)
    return path


def split_authority(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        host = authority[: end + 1]
        port_text = authority[end + 2 :] if end + 1 < len(authority) and authority[end + 1] == ":" else ""
    else:
        host, _, port_text = authority.partition(":")
    return host, int(port_text) if port_text.isdigit() else None


def rewrite_authority(a: tables.Authority | None, authority: str, target: tables.Target | None) -> str:
    if a is None:
        return authority
    if a.full is not None:
        return a.full
    host, port = split_authority(authority)
    if a.host is not None:
        return f"{a.host}:{port}" if port else a.host
    if a.port is not None:
        return f"{host}:{a.port}"
    if a.auto and target is not None:
        return target.address if target.port not in (80, 443) else target.host
    return authority


def redirect_location(
    r: tables.Redirect, scheme: str, authority: str, path: str, query: str, match_kind: str, match_path: str
) -> str:
    """The Location of a requestRedirect (Gateway API HTTPRequestRedirectFilter)."""
    new_scheme = r.scheme or scheme
    host, port = split_authority(authority)
    explicit_port = False
    if r.authority is not None:
        if r.authority.full is not None:
            host, port = split_authority(r.authority.full)
            explicit_port = port is not None
        if r.authority.host is not None:
            host = r.authority.host
        if r.authority.port is not None:
            port, explicit_port = r.authority.port, True
    if r.scheme and not explicit_port:
        # Scheme changed and no port given: the new scheme's default port applies.
        port = None
    if port is not None and _DEFAULT_PORTS.get(new_scheme) == port:
        port = None
    target_path = new_path(r.path, path, match_kind, match_path)
    location = f"{new_scheme}://{host}" + (f":{port}" if port else "") + target_path
    return location + (f"?{query}" if query else "")


def cors_response_headers(c: tables.Cors, origin: str) -> list[tuple[bytes, bytes]]:
    """Headers added to an actual (non-preflight) response for an allowed origin."""
    out = [
        (
            b"access-control-allow-origin",
            b"*" if c.allow_any_origin and not c.allow_credentials else origin.encode(),
        )
    ]
    if c.allow_credentials:
        out.append((b"access-control-allow-credentials", b"true"))
    if c.expose_headers:
        out.append((b"access-control-expose-headers", c.expose_headers))
    if not c.allow_any_origin or c.allow_credentials:
        out.append((b"vary", b"Origin"))
    return out


def cors_preflight_headers(c: tables.Cors, origin: str) -> list[tuple[bytes, bytes]]:
    out = cors_response_headers(c, origin)
    if c.allow_methods:
        out.append((b"access-control-allow-methods", c.allow_methods))
    if c.allow_headers:
        out.append((b"access-control-allow-headers", c.allow_headers))
    if c.max_age:
        out.append((b"access-control-max-age", c.max_age))
    return out
