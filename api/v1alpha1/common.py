"""Field types and small objects shared by the agentgateway.dev/v1alpha1 kinds.

Strings, durations, Gateway API names, references, label selectors, conditions and the object
metadata, each with the limits agentgateway's CRDs declare (the same lengths and patterns, so a
manifest accepted by one is accepted by the other). Used by the backend, policy and parameters
modules; nothing here is specific to one kind.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, ClassVar, Literal

import pydantic

from api.v1alpha1 import base

GROUP = "agentgateway.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# --------------------------------------------------------------------------------------------
# Strings

TinyString = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]
"""1 to 64 characters."""

ShortString = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=256)]
"""1 to 256 characters."""

LongString = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=1024)]
"""1 to 1024 characters."""

DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
"""GEP-2257 durations: up to four `<number><unit>` parts, units h, m, s, ms (`1m30s`, `250ms`)."""

Duration = Annotated[str, pydantic.StringConstraints(max_length=32, pattern=DURATION_PATTERN)]
"""A GEP-2257 duration string, at most 32 characters."""

_DURATION_PART = re.compile(r"([0-9]+)(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


def duration_ms(text: str) -> int:
    """Milliseconds of a duration that matched DURATION_PATTERN (exact: no float rounding)."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(text))


def min_duration(minimum: str, message: str) -> base.Rule:
    """agentgateway's `duration(self) >= duration('<minimum>')` rule with its message."""
    floor = duration_ms(minimum)
    return base.Rule(f"duration(self) >= duration('{minimum}')", message, lambda s: duration_ms(s) >= floor)


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

SNI = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)]
"""A lowercase DNS name for TLS Server Name Indication."""

HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$"

HTTPHeaderName = Annotated[
    str, pydantic.StringConstraints(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)
]
"""An HTTP header name (RFC 7230 token), 1 to 256 characters."""

# --------------------------------------------------------------------------------------------
# Gateway API names (sigs.k8s.io/gateway-api apis/v1 shared types)

ObjectName = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253)]
"""The name of a Kubernetes object."""

SectionName = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)]
"""A named part of an object: a Gateway listener, a route rule, a provider or MCP target name."""

Group = Annotated[
    str,
    pydantic.StringConstraints(
        max_length=253,
        pattern=r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
"""An API group; the empty string is the core group."""

Kind = Annotated[
    str,
    pydantic.StringConstraints(min_length=1, max_length=63, pattern=r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"),
]
"""An API kind, such as `Gateway`."""

Namespace = Annotated[
    str, pydantic.StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]
"""A namespace name (DNS label)."""

Port = Annotated[int, pydantic.Field(ge=1, le=65535)]
"""A TCP port, 1 to 65535."""

# --------------------------------------------------------------------------------------------
# References


class LocalObjectReference(base.Model):
    """A same-namespace object by name (Kubernetes `LocalObjectReference`)."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    name: str = ""
    """Name of the referent. Default: the empty string."""


def _backend_ref_has_port(ref: LocalBackendObjectReference) -> bool:
    return not (ref.group == "" and ref.kind == "Service") or ref.port is not None


class LocalBackendObjectReference(base.Model):
    """A same-namespace backend object: a `Service` by default, with its port."""

    __rules__ = (
        base.Rule(
            "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
            "Must have port for Service reference",
            _backend_ref_has_port,
        ),
    )

    group: Group = ""
    """API group of the referent; the empty string (the default) is the core group."""

    kind: Kind = "Service"
    """Kind of the referent. Default: `Service`."""

    name: ObjectName
    """Name of the referent. Required."""

    port: Port | None = None
    """Destination port. Required when the referent is a `Service`."""


def _credential_group_and_kind(ref: LocalSecretObjectRef | LocalSecretKeyRef) -> bool:
    if not ref.group:
        return not ref.kind or ref.kind == "Secret"
    return bool(ref.kind)


_CREDENTIAL_RULE = base.Rule(
    "(!has(self.group) || size(self.group) == 0) ? (!has(self.kind) || size(self.kind) == 0 || "
    "self.kind == 'Secret') : (has(self.kind) && size(self.kind) > 0)",
    "custom credential refs must set both group and kind",
    _credential_group_and_kind,
)


class LocalSecretObjectRef(base.Model):
    """A same-namespace credential: set only `name` for a Kubernetes `Secret`."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}
    __rules__ = (_CREDENTIAL_RULE,)

    name: ObjectName
    """Name of the referenced credential. Required."""

    group: str | None = None
    """API group of the referenced credential; empty or unset selects the core group."""

    kind: str | None = None
    """Kind of the referenced credential; empty or unset means `Secret`. A custom kind needs a group."""


class LocalSecretKeyRef(LocalSecretObjectRef):
    """A same-namespace credential and, optionally, the key to read from it."""

    key: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253)] | None = None
    """Key in the referenced Secret, 1 to 253 characters. Default: a location-specific key."""


class LabelSelectorRequirement(base.Model):
    """One `matchExpressions` entry of a Kubernetes label selector."""

    key: str
    """The label key the selector applies to. Required."""

    operator: str
    """`In`, `NotIn`, `Exists` or `DoesNotExist`. Required."""

    values: Annotated[list[str], base.ATOMIC] | None = None
    """Values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`."""


class LabelSelector(base.Model):
    """A Kubernetes label selector; all requirements are ANDed. An empty selector selects everything."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    match_expressions: Annotated[list[LabelSelectorRequirement], base.ATOMIC] | None = None
    """Label requirements, all of which must hold."""

    match_labels: dict[str, str] | None = None
    """Labels that must all be present with these values."""


# --------------------------------------------------------------------------------------------
# Header filters (Gateway API HTTPHeaderFilter)


class HTTPHeader(base.Model):
    """A header name and value."""

    name: HTTPHeaderName
    """Header name, matched case-insensitively. Required."""

    value: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=4096)]
    """Header value, 1 to 4096 characters. Required."""


class HTTPHeaderFilter(base.Model):
    """Header changes (Gateway API `HTTPHeaderFilter`): set, then add, then remove."""

    set: Annotated[list[HTTPHeader], pydantic.Field(max_length=16), base.ListMap("name")] | None = None
    """Headers to overwrite (or create), at most 16, unique by name."""

    add: Annotated[list[HTTPHeader], pydantic.Field(max_length=16), base.ListMap("name")] | None = None
    """Headers to append to any existing values, at most 16, unique by name."""

    remove: Annotated[list[str], pydantic.Field(max_length=16), base.ListSet()] | None = None
    """Header names to remove, at most 16, unique."""


# --------------------------------------------------------------------------------------------
# Status


class Condition(base.Model):
    """A status condition (Kubernetes `metav1.Condition`)."""

    type: Annotated[
        str,
        pydantic.StringConstraints(
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ]
    """Condition type in CamelCase, e.g. `Accepted`."""

    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""

    observed_generation: Annotated[int, pydantic.Field(ge=0)] | None = None
    """The `.metadata.generation` the condition was set for."""

    last_transition_time: datetime.datetime
    """When the status last changed (RFC 3339)."""

    reason: Annotated[
        str,
        pydantic.StringConstraints(
            min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
        ),
    ]
    """Programmatic CamelCase reason, e.g. `Accepted` or `Invalid`."""

    message: Annotated[str, pydantic.StringConstraints(max_length=32768)]
    """Human-readable details; may be empty."""


Conditions = Annotated[list[Condition], pydantic.Field(max_length=8), base.ListMap("type")]
"""At most 8 conditions, one per type."""

# --------------------------------------------------------------------------------------------
# Object envelope


class ObjectMeta(pydantic.BaseModel):
    """The parts of `metadata` the models read; the apiserver owns the rest, so other keys pass."""

    model_config = pydantic.ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, alias_generator=base.camel
    )

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None


class Resource(base.Model):
    """A top-level agentgateway.dev object: apiVersion, kind, metadata, spec, status."""

    __crd__: ClassVar[base.CRDInfo | None] = None
    """The kind's CRD names and printer columns; set by each top-level kind."""

    api_version: Literal["agentgateway.dev/v1alpha1"] = "agentgateway.dev/v1alpha1"
    metadata: ObjectMeta = ObjectMeta()
