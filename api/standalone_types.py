"""Field types shared by the standalone file's models (api.standalone, api.standalone_security).

Each type validates one kind of value and says what is wrong in words that end up after the
field path in a config error, e.g. `...path.regex: invalid regular expression ...`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import pydantic

from api import durations


def _reject_unsupported(value: Any) -> Any:
    if value is not None:
        raise ValueError("not supported by agentgw yet")
    return value


Unsupported = Annotated[Any, pydantic.AfterValidator(_reject_unsupported)]
"""An agentgateway field agentgw does not implement: accepted only when absent or null."""


def _check_duration(value: str) -> str:
    durations.parse(value)
    return value


Duration = Annotated[str, pydantic.AfterValidator(_check_duration)]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return value


Regex = Annotated[str, pydantic.AfterValidator(_check_regex)]

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError(f"invalid header name {value!r}")
    return value


HeaderName = Annotated[str, pydantic.AfterValidator(_check_header_name)]


def _check_header_value(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("header values must not contain CR, LF or NUL")
    return value


HeaderValue = Annotated[str, pydantic.AfterValidator(_check_header_value)]


def _check_hostname(value: str) -> str:
    host = value[2:] if value.startswith("*.") else value
    if not host or not re.fullmatch(
        r"[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*", host
    ):
        raise ValueError(f"invalid hostname {value!r}: expected e.g. 'api.example.com' or '*.example.com'")
    return value.lower()


Hostname = Annotated[str, pydantic.AfterValidator(_check_hostname)]


def _check_host_port(value: str) -> str:
    split_host_port(value)
    return value


HostPort = Annotated[str, pydantic.AfterValidator(_check_host_port)]


def split_host_port(value: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port"); raise ValueError with a helpful message."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid host {value!r}: expected 'host:port', e.g. 'localhost:8080'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def absolute(*paths: str | None) -> None:
    for value in paths:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")


def exactly_one(model: pydantic.BaseModel, names: tuple[str, ...]) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        raise ValueError(f"exactly one of {', '.join(names)} must be set (got {len(given) or 'none'})")
