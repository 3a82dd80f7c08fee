"""Lookups over one `Inputs`, built once per translation.

In: `model.Inputs`. Out: an `Index` with the raw objects by namespace and name, the Gateway API
objects parsed into `api.gateway.v1` views, Namespace labels, EndpointSlices by Service and the
ReferenceGrants. Every other translate module reads the cluster only through it. Nothing here
decides anything; it only finds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from api.gateway import v1 as gw
from controller.translate import model, refs

NamespacedName = tuple[str, str]
"""(namespace, name)."""

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label that ties an EndpointSlice to its Service."""

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the apiserver puts on every Namespace: its own name."""


@dataclasses.dataclass(frozen=True)
class Index:
    inputs: model.Inputs
    gateway_classes: Mapping[str, gw.GatewayClass]
    services: Mapping[NamespacedName, model.Object]
    secrets: Mapping[NamespacedName, model.Object]
    config_maps: Mapping[NamespacedName, model.Object]
    backends: Mapping[NamespacedName, model.Object]
    gateways: Mapping[NamespacedName, model.Object]
    http_routes: Mapping[NamespacedName, model.Object]
    grpc_routes: Mapping[NamespacedName, model.Object]
    endpoint_slices: Mapping[NamespacedName, tuple[model.Object, ...]]
    """By the (namespace, name) of the Service they belong to."""
    namespace_labels: Mapping[str, Mapping[str, str]]
    grants: refs.Grants

    def labels_of(self, namespace: str) -> Mapping[str, str]:
        """A namespace's labels, with the implicit `kubernetes.io/metadata.name`."""
        return {**self.namespace_labels.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace}


def build(inputs: model.Inputs) -> Index:
    slices: dict[NamespacedName, list[model.Object]] = {}
    for s in inputs.endpoint_slices:
        service = _meta(s).get("labels", {}).get(SERVICE_NAME_LABEL)
        if service:
            slices.setdefault((namespace_of(s), str(service)), []).append(s)
    return Index(
        inputs=inputs,
        gateway_classes={c.metadata.name: c for c in _views(gw.GatewayClass, inputs.gateway_classes)},
        services=_by_name(inputs.services),
        secrets=_by_name(inputs.secrets),
        config_maps=_by_name(inputs.config_maps),
        backends=_by_name(inputs.backends),
        gateways=_by_name(inputs.gateways),
        http_routes=_by_name(inputs.http_routes),
        grpc_routes=_by_name(inputs.grpc_routes),
        endpoint_slices={k: tuple(v) for k, v in slices.items()},
        namespace_labels={name_of(n): dict(_meta(n).get("labels") or {}) for n in inputs.namespaces},
        grants=refs.Grants(_views(gw.ReferenceGrant, inputs.reference_grants)),
    )


def _meta(obj: model.Object) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def name_of(obj: model.Object) -> str:
    return str(_meta(obj).get("name", ""))


def namespace_of(obj: model.Object) -> str:
    return str(_meta(obj).get("namespace", ""))


def object_labels(obj: model.Object) -> Mapping[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def generation_of(obj: model.Object) -> int | None:
    generation = _meta(obj).get("generation")
    return generation if isinstance(generation, int) else None


def _by_name(objects: Iterable[model.Object]) -> dict[NamespacedName, model.Object]:
    return {(namespace_of(o), name_of(o)): o for o in objects}


def _views(cls: type[gw.V], objects: Iterable[model.Object]) -> list[gw.V]:
    """Parse every object; one that does not parse is left out, as if absent.

    The apiserver validated these objects against the Gateway API CRDs, so only a CRD far newer
    or older than the views can produce one (GatewayClasses and ReferenceGrants are read here).
    """
    out = []
    for obj in objects:
        try:
            out.append(gw.parse(cls, obj))
        except pydantic.ValidationError:
            continue
    return out
