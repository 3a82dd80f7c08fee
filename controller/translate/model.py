"""What the translator takes and gives: `Inputs` (raw objects, frozen) and `Output`.

In: the objects the controller watches, as the Kubernetes API returns them (mappings with
`apiVersion`, `kind`, `metadata`, `spec`, `status`). The reconciler freezes its store into an
`Inputs` (directly, or with `Inputs.from_objects`) and hands it to `translate.translate`; the
translator never mutates the mappings and never looks anything up elsewhere.

Out: `Output.resources`, the xDS resources per Gateway of a class we own (every such Gateway has an
entry, possibly empty, sorted by resource key), and `Output.statuses`, the `status` stanza to write
per object. A route's `status.parents` lists only the entries of our controller: the status
writer keeps the entries other controllers own. Objects that have nothing to do with us (a Gateway
of another class, a route that names none of our Gateways and carries no entry of ours) get no
status at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from api.proto.agentgw.v1 import resource_pb2 as pb

CONTROLLER_NAME = "agentgateway.dev/agentgateway"
"""The GatewayClass `spec.controllerName` we own (agentgateway's)."""

CLUSTER_DOMAIN = "cluster.local"
"""The cluster DNS suffix of Service hostnames (`<svc>.<ns>.svc.<domain>`): kubelet's default."""

Object = Mapping[str, Any]
"""One object as the Kubernetes API returns it."""


class GatewayKey(NamedTuple):
    """A Gateway, and so a proxy fleet: proxies name it as `<namespace>~<name>`."""

    namespace: str
    name: str


class ObjectRef(NamedTuple):
    """An object whose status we write. `group` is "" for the core group."""

    group: str
    kind: str
    namespace: str
    name: str


@dataclasses.dataclass(frozen=True)
class Inputs:
    """A consistent, immutable view of everything the translator reads."""

    gateway_classes: tuple[Object, ...] = ()
    gateways: tuple[Object, ...] = ()
    http_routes: tuple[Object, ...] = ()
    grpc_routes: tuple[Object, ...] = ()
    reference_grants: tuple[Object, ...] = ()
    namespaces: tuple[Object, ...] = ()
    """For `allowedRoutes.namespaces.from: Selector`; a namespace without an object still carries
    its implicit `kubernetes.io/metadata.name` label."""
    services: tuple[Object, ...] = ()
    endpoint_slices: tuple[Object, ...] = ()
    """Used to resolve a named `targetPort` of a headless Service."""
    secrets: tuple[Object, ...] = ()
    config_maps: tuple[Object, ...] = ()
    """For CA certificates of backend TLS and hashed API keys (`configMapSelector`)."""
    backends: tuple[Object, ...] = ()
    """AgentgatewayBackend objects."""
    policies: tuple[Object, ...] = ()
    """AgentgatewayPolicy objects."""
    controller_name: str = CONTROLLER_NAME
    cluster_domain: str = CLUSTER_DOMAIN

    @classmethod
    def from_objects(
        cls,
        objects: Iterable[Object],
        controller_name: str = CONTROLLER_NAME,
        cluster_domain: str = CLUSTER_DOMAIN,
    ) -> Inputs:
        """Sort a mixed list of objects into fields by group and kind; unknown kinds are an error."""
        fields: dict[str, list[Object]] = {name: [] for name in _FIELD_BY_KIND.values()}
        for obj in objects:
            field = _FIELD_BY_KIND.get((group_of(obj), str(obj.get("kind"))))
            if field is None:
                raise ValueError(f"the translator does not read {obj.get('apiVersion')} {obj.get('kind')}")
            fields[field].append(obj)
        return cls(
            gateway_classes=tuple(fields["gateway_classes"]),
            gateways=tuple(fields["gateways"]),
            http_routes=tuple(fields["http_routes"]),
            grpc_routes=tuple(fields["grpc_routes"]),
            reference_grants=tuple(fields["reference_grants"]),
            namespaces=tuple(fields["namespaces"]),
            services=tuple(fields["services"]),
            endpoint_slices=tuple(fields["endpoint_slices"]),
            secrets=tuple(fields["secrets"]),
            config_maps=tuple(fields["config_maps"]),
            backends=tuple(fields["backends"]),
            policies=tuple(fields["policies"]),
            controller_name=controller_name,
            cluster_domain=cluster_domain,
        )


_FIELD_BY_KIND = {
    ("gateway.networking.k8s.io", "GatewayClass"): "gateway_classes",
    ("gateway.networking.k8s.io", "Gateway"): "gateways",
    ("gateway.networking.k8s.io", "HTTPRoute"): "http_routes",
    ("gateway.networking.k8s.io", "GRPCRoute"): "grpc_routes",
    ("gateway.networking.k8s.io", "ReferenceGrant"): "reference_grants",
    ("", "Namespace"): "namespaces",
    ("", "Service"): "services",
    ("discovery.k8s.io", "EndpointSlice"): "endpoint_slices",
    ("", "Secret"): "secrets",
    ("", "ConfigMap"): "config_maps",
    ("agentgateway.dev", "AgentgatewayBackend"): "backends",
    ("agentgateway.dev", "AgentgatewayPolicy"): "policies",
}


def group_of(obj: Object) -> str:
    """The API group of an object: `gateway.networking.k8s.io/v1` -> `gateway.networking.k8s.io`."""
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


@dataclasses.dataclass(frozen=True)
class Output:
    """The translation of one `Inputs`."""

    resources: dict[GatewayKey, list[pb.Resource]]
    """Per Gateway of a class we own: its resources, sorted by key."""
    statuses: dict[ObjectRef, dict[str, Any]]
    """Per object: the `status` stanza (conditions with `lastTransitionTime` = the clock)."""
