"""The kinds the controller watches, and where they live in the API.

In: nothing. Out: `KINDS`, one `Kind` per watched resource (group, version, plural, namespaced,
whether we write its status), and `by_group_kind` to find one. Used by the kopf handlers
(controller.k8s.operator), the status writer (controller.k8s.status) and the startup list that
tells the reconciler when the store holds everything (controller.reconcile).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    has_status: bool = False
    """We write its status subresource."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path: the collection (all namespaces when `namespace` is None) or one object."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


GATEWAY_API = "gateway.networking.k8s.io"
AGENTGATEWAY = "agentgateway.dev"

GATEWAY_CLASS = Kind(GATEWAY_API, "v1", "GatewayClass", "gatewayclasses", namespaced=False, has_status=True)
GATEWAY = Kind(GATEWAY_API, "v1", "Gateway", "gateways", has_status=True)
HTTP_ROUTE = Kind(GATEWAY_API, "v1", "HTTPRoute", "httproutes", has_status=True)
GRPC_ROUTE = Kind(GATEWAY_API, "v1", "GRPCRoute", "grpcroutes", has_status=True)
REFERENCE_GRANT = Kind(GATEWAY_API, "v1beta1", "ReferenceGrant", "referencegrants")
NAMESPACE = Kind("", "v1", "Namespace", "namespaces", namespaced=False)
SERVICE = Kind("", "v1", "Service", "services")
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
SECRET = Kind("", "v1", "Secret", "secrets")
CONFIG_MAP = Kind("", "v1", "ConfigMap", "configmaps")
BACKEND = Kind(AGENTGATEWAY, "v1alpha1", "AgentgatewayBackend", "agentgatewaybackends", has_status=True)
POLICY = Kind(AGENTGATEWAY, "v1alpha1", "AgentgatewayPolicy", "agentgatewaypolicies", has_status=True)
PARAMETERS = Kind(AGENTGATEWAY, "v1alpha1", "AgentgatewayParameters", "agentgatewayparameters")

KINDS: tuple[Kind, ...] = (
    GATEWAY_CLASS,
    GATEWAY,
    HTTP_ROUTE,
    GRPC_ROUTE,
    REFERENCE_GRANT,
    NAMESPACE,
    SERVICE,
    ENDPOINT_SLICE,
    SECRET,
    CONFIG_MAP,
    BACKEND,
    POLICY,
    PARAMETERS,
)

TRANSLATED: frozenset[tuple[str, str]] = frozenset((k.group, k.kind) for k in KINDS if k is not PARAMETERS)
"""The kinds `translate.Inputs.from_objects` accepts (AgentgatewayParameters is for the deployer)."""

_BY_GROUP_KIND = {(k.group, k.kind): k for k in KINDS}


def by_group_kind(group: str, kind: str) -> Kind | None:
    return _BY_GROUP_KIND.get((group, kind))
