"""backendRefs (and RequestMirror refs) -> the Backend resources routes point at, or why not.

In: one `BackendObjectReference` of a route, the route's namespace and kind, the `Index` and the
translated AgentgatewayBackends. Out: a `Resolution`: the Backend resource to put in the
gateway's snapshot (the route's RouteBackend names it by key) and, for the route's
`ResolvedRefs` condition, the problem if the reference is not usable:

- a kind other than core `Service` or `agentgateway.dev/AgentgatewayBackend` -> `InvalidKind`;
- another namespace without a ReferenceGrant there -> `RefNotPermitted`;
- no such object (or no such Service port) -> `BackendNotFound`.

A Service becomes a StaticBackend `<name>.<namespace>.svc.<cluster domain>:<port>` (key
`service/<ns>/<name>:<port>`): cluster DNS and kube-proxy pick the endpoint and map the port to
its `targetPort`, so a rollout never changes the resource. Two cases do not go through a virtual
IP: an `ExternalName` Service becomes its `externalName`, and a headless Service (`clusterIP:
None`, whose DNS name resolves to pod addresses) gets its `targetPort`, a named one resolved
through the Service's EndpointSlices. A Service port whose `appProtocol` is `kubernetes.io/h2c`
or `grpc` gets `BackendPolicy.http_version: HTTP2` (prior-knowledge h2c, Gateway API feature
BackendProtocolH2C) on its Backend, for every route kind; `kubernetes.io/ws` and `wss` need
nothing (the proxy relays upgrades). An AgentgatewayBackend that exists but did not translate
resolves to no resource and no problem: the route answers 500 for it, and the backend's own
`Accepted=False` status says why (agentgateway reports it the same way).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from api.gateway import conditions
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.translate import agwbackends, index, refs, status

SERVICE = ("", "Service")
AGENTGATEWAY_BACKEND = ("agentgateway.dev", "AgentgatewayBackend")

HTTP2_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "grpc"})
"""Service port `appProtocol`s that mean HTTP/2 over cleartext (KEP-3726; `grpc` as Istio reads it)."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    backend: pb.Backend | None
    """The resource the route points at; None: nothing to send to (that share answers 500)."""
    problem: status.Problem | None
    """For the route's ResolvedRefs condition."""


def service_key(namespace: str, name: str, port: int) -> str:
    return f"service/{namespace}/{name}:{port}"


@dataclasses.dataclass(frozen=True)
class Resolver:
    idx: index.Index
    translated: Mapping[index.NamespacedName, agwbackends.Result]

    def resolve(
        self,
        ref: gw.BackendObjectReference,
        route_namespace: str,
        route_kind: str,
        from_group: str = gw.GROUP,
    ) -> Resolution:
        """Resolve a reference made by an object of (`from_group`, `route_kind`) in `route_namespace`
        (a route, or an AgentgatewayPolicy for its ext auth and rate-limit services)."""
        namespace = ref.namespace or route_namespace
        kind = (ref.group, ref.kind)
        if kind not in (SERVICE, AGENTGATEWAY_BACKEND):
            message = f'referencing unsupported backendRef: group "{ref.group}" kind "{ref.kind}"'
            return _problem(conditions.INVALID_KIND, message)
        reference = refs.Reference(
            from_group, route_kind, route_namespace, ref.group, ref.kind, namespace, ref.name
        )
        if not self.idx.grants.allows(reference):
            message = (
                f"backendRef {namespace}/{ref.name} not accessible to a {route_kind} in namespace "
                f'"{route_namespace}" (missing a ReferenceGrant?)'
            )
            return _problem(conditions.REF_NOT_PERMITTED, message)
        if kind == SERVICE:
            return self._service(namespace, ref.name, ref.port)
        return self._agentgateway_backend(namespace, ref.name)

    def _agentgateway_backend(self, namespace: str, name: str) -> Resolution:
        result = self.translated.get((namespace, name))
        if result is None:
            return _problem(conditions.BACKEND_NOT_FOUND, f"AgentgatewayBackend {namespace}/{name} not found")
        return Resolution(backend=result.backend, problem=None)

    def _service(self, namespace: str, name: str, port: int | None) -> Resolution:
        svc = self.idx.services.get((namespace, name))
        if svc is None:
            return _problem(conditions.BACKEND_NOT_FOUND, f"Service {namespace}/{name} not found")
        if port is None:
            return _problem(
                conditions.BACKEND_NOT_FOUND, f"backendRef to Service {namespace}/{name} has no port"
            )
        spec: Mapping[str, Any] = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return _static(namespace, name, port, str(spec.get("externalName", "")), port)
        service_port = next((p for p in spec.get("ports") or () if p.get("port") == port), None)
        if service_port is None:
            return _problem(conditions.BACKEND_NOT_FOUND, f"Service {namespace}/{name} has no port {port}")
        host = f"{name}.{namespace}.svc.{self.idx.inputs.cluster_domain}"
        http2 = service_port.get("appProtocol") in HTTP2_APP_PROTOCOLS
        if spec.get("clusterIP") == "None":
            target = self._target_port(namespace, name, service_port)
            return _static(namespace, name, port, host, target, http2)
        return _static(namespace, name, port, host, port, http2)

    def _target_port(self, namespace: str, name: str, service_port: Mapping[str, Any]) -> int:
        """A headless Service's targetPort; a named one as its EndpointSlices resolved it."""
        port = int(service_port["port"])
        target = service_port.get("targetPort", port)
        if isinstance(target, int):
            return target
        port_name = service_port.get("name", "")
        for endpoint_slice in self.idx.endpoint_slices.get((namespace, name), ()):
            for p in endpoint_slice.get("ports") or ():
                if p.get("name", "") == port_name and isinstance(p.get("port"), int):
                    return int(p["port"])
        return port  # no endpoints yet: nothing would answer on any port


def _static(
    namespace: str, name: str, port: int, host: str, target_port: int, http2: bool = False
) -> Resolution:
    backend = pb.Backend(
        key=service_key(namespace, name, port),
        name=f"{namespace}/{name}:{port}",
        static=pb.StaticBackend(host=host, port=target_port),
        policies=pb.BackendPolicy(http_version=pb.HTTP_VERSION_HTTP2) if http2 else None,
    )
    return Resolution(backend=backend, problem=None)


def _problem(reason: str, message: str) -> Resolution:
    return Resolution(backend=None, problem=status.Problem(reason, message))
