"""GatewayClasses and Gateways: which are ours, their listeners, Bind/Listener resources, statuses.

In: the parsed GatewayClass and Gateway views (`api.gateway.v1`). Out:

- for a GatewayClass with our `controllerName`: `Accepted` and `supportedFeatures`;
- for a Gateway of such a class: a `GatewayState` with one `ListenerState` per listener (is it
  usable, which route kinds it admits), then the resources: one Bind per port (`bind/<port>`:
  each Gateway has its own proxies, so ports need no gateway prefix) and one Listener per usable
  listener (`bind/<port>/<listener name>`), and the Gateway's status once the routes are
  counted (`attachedRoutes`).

Listener rules (Gateway API v1.6): `HTTP` and `HTTPS` are supported (TLS, TCP and UDP listeners
are `Accepted=False/UnsupportedProtocol` with no supported kinds). An HTTPS listener terminates
TLS with the certificate of its first usable `certificateRefs` Secret (`controller.translate.tls`:
`ResolvedRefs=False/InvalidCertificateRef` or `RefNotPermitted` otherwise, and without a usable
certificate it is not programmed). Listeners sharing a port with different protocols are
`Conflicted/ProtocolConflict`, with the same protocol and hostname `Conflicted/HostnameConflict`,
and a conflicted listener is not programmed; `allowedRoutes.kinds` other than HTTPRoute and GRPCRoute give
`ResolvedRefs=False/InvalidRouteKinds`. The Gateway is `Accepted` (reason `ListenersNotValid`
when some listener is not usable) while at least one listener is usable.

Called by `controller.translate.translate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from api.gateway import conditions
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.translate import index, model, status, tls

HTTP_ROUTE = gw.RouteGroupKind(group=gw.GROUP, kind="HTTPRoute")
GRPC_ROUTE = gw.RouteGroupKind(group=gw.GROUP, kind="GRPCRoute")

ROUTE_KINDS: Mapping[str, tuple[gw.RouteGroupKind, ...]] = {
    "HTTP": (HTTP_ROUTE, GRPC_ROUTE),
    "HTTPS": (HTTP_ROUTE, GRPC_ROUTE),
}
"""Listener protocol -> the route kinds it admits; a protocol missing here is unsupported."""

PARAMETERS_KIND = ("agentgateway.dev", "AgentgatewayParameters")

SUPPORTED_FEATURES = (
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "Gateway",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
)
"""`GatewayClass.status.supportedFeatures` (sorted byte-wise, as the spec requires): what the translator
and the proxy implement today. The conformance suite reads it to choose its tests."""

NO_ERRORS = "No errors found"


# --------------------------------------------------------------------------------------------
# GatewayClass


def class_problem(cls: gw.GatewayClass) -> status.Problem | None:
    """Why a GatewayClass of ours is not accepted: a `parametersRef` of the wrong kind."""
    ref = cls.spec.parameters_ref
    if ref is None or (ref.group, ref.kind) == PARAMETERS_KIND:
        return None
    return status.Problem(
        conditions.INVALID_PARAMETERS,
        f"parametersRef must be agentgateway.dev/AgentgatewayParameters, not {ref.group}/{ref.kind}",
    )


def class_status(cls: gw.GatewayClass, problem: status.Problem | None, now: str) -> dict[str, Any]:
    stamp = status.Stamp(cls.metadata.generation, now)
    accepted = status.from_problem(conditions.ACCEPTED, problem, conditions.ACCEPTED, "", stamp)
    return {
        "conditions": [accepted],
        "supportedFeatures": [{"name": f} for f in SUPPORTED_FEATURES],
    }


# --------------------------------------------------------------------------------------------
# Listeners


@dataclasses.dataclass(frozen=True)
class ListenerState:
    spec: gw.Listener
    kinds: tuple[gw.RouteGroupKind, ...]
    """The route kinds it admits (its `supportedKinds`)."""
    unsupported: status.Problem | None = None
    """Why it is not accepted (`Accepted=False`)."""
    conflict: status.Problem | None = None
    invalid_kinds: status.Problem | None = None
    tls: pb.ListenerTls | None = None
    """The certificate an HTTPS listener serves."""
    certificate: status.Problem | None = None
    """Why a certificateRef is not usable (`ResolvedRefs=False`)."""

    @property
    def key(self) -> str:
        return f"{self.bind_key}/{self.spec.name}"

    @property
    def bind_key(self) -> str:
        return f"bind/{self.spec.port}"

    @property
    def usable(self) -> bool:
        """Accepted, not conflicted, and with a certificate when HTTPS: it gets a Listener resource
        and admits routes."""
        return (
            self.unsupported is None
            and self.conflict is None
            and (self.spec.protocol != "HTTPS" or self.tls is not None)
        )

    @property
    def refs_problem(self) -> status.Problem | None:
        """The `ResolvedRefs` problem: route kinds, then certificates."""
        found = [p for p in (self.invalid_kinds, self.certificate) if p is not None]
        if not found:
            return None
        return status.Problem(found[0].reason, "; ".join(p.message for p in found))


def listener_states(
    listeners: Sequence[gw.Listener], namespace: str, idx: index.Index
) -> tuple[ListenerState, ...]:
    """The listeners of a Gateway in `namespace`; HTTPS certificates are resolved through `idx`."""
    found = conflicts(listeners)
    out = []
    for spec in listeners:
        state = _listener(spec, found.get(spec.name))
        if spec.protocol == "HTTPS" and state.unsupported is None:
            cert = tls.listener_certificate(spec, namespace, idx)
            state = dataclasses.replace(
                state, tls=cert.tls, certificate=cert.problem, unsupported=cert.unsupported
            )
        out.append(state)
    return tuple(out)


def _listener(spec: gw.Listener, conflict: status.Problem | None) -> ListenerState:
    admitted = ROUTE_KINDS.get(spec.protocol)
    if admitted is None:
        supported = ", ".join(ROUTE_KINDS)
        problem = status.Problem(
            conditions.UNSUPPORTED_PROTOCOL,
            f"protocol {spec.protocol} is not supported by agentgw (supported: {supported})",
        )
        return ListenerState(spec=spec, kinds=(), unsupported=problem, conflict=conflict)
    asked = spec.allowed_routes.kinds
    if asked is None:
        return ListenerState(spec=spec, kinds=admitted, conflict=conflict)
    kinds = tuple(k for k in admitted if k in asked)
    invalid = [k for k in asked if k not in admitted]
    invalid_kinds = None
    if invalid:
        names = ", ".join(f"{k.group}/{k.kind}" for k in invalid)
        invalid_kinds = status.Problem(
            conditions.INVALID_ROUTE_KINDS, f"route kinds not supported on {spec.protocol}: {names}"
        )
    return ListenerState(spec=spec, kinds=kinds, conflict=conflict, invalid_kinds=invalid_kinds)


def conflicts(listeners: Sequence[gw.Listener]) -> dict[str, status.Problem]:
    """Listener name -> its conflict: protocols differ on one port, or a port and hostname repeat."""
    by_port: dict[int, list[gw.Listener]] = {}
    for spec in listeners:
        by_port.setdefault(spec.port, []).append(spec)
    out: dict[str, status.Problem] = {}
    for port, group in by_port.items():
        protocols = sorted({s.protocol for s in group})
        if len(protocols) > 1:
            message = f"port {port} is used with different protocols: {', '.join(protocols)}"
            out.update({s.name: status.Problem(conditions.PROTOCOL_CONFLICT, message) for s in group})
            continue
        hostnames = [(s.hostname or "").lower() for s in group]
        for spec, hostname in zip(group, hostnames, strict=True):
            if hostnames.count(hostname) > 1:
                message = f"hostname {hostname or '(any)'!s} is used by more than one listener on port {port}"
                out[spec.name] = status.Problem(conditions.HOSTNAME_CONFLICT, message)
    return out


# --------------------------------------------------------------------------------------------
# Gateways


@dataclasses.dataclass(frozen=True)
class GatewayState:
    key: model.GatewayKey
    generation: int | None
    listeners: tuple[ListenerState, ...]
    problem: status.Problem | None = None
    """Why the whole Gateway is not accepted (its class is not, or it does not parse)."""

    def listener(self, name: str) -> ListenerState | None:
        return next((lis for lis in self.listeners if lis.spec.name == name), None)


def gateway_state(view: gw.Gateway, class_problem: status.Problem | None, idx: index.Index) -> GatewayState:
    key = model.GatewayKey(view.metadata.namespace, view.metadata.name)
    if class_problem is not None:
        problem = status.Problem(
            conditions.INVALID,
            f"GatewayClass {view.spec.gateway_class_name} is not accepted: {class_problem.message}",
        )
        return GatewayState(key=key, generation=view.metadata.generation, listeners=(), problem=problem)
    listeners = listener_states(view.spec.listeners, key.namespace, idx)
    return GatewayState(key=key, generation=view.metadata.generation, listeners=listeners)


def resources(state: GatewayState) -> list[pb.Resource]:
    """One Bind per port with a usable listener, one Listener per usable listener."""
    usable = [lis for lis in state.listeners if lis.usable]
    ports = sorted({lis.spec.port for lis in usable})
    out = [pb.Resource(bind=pb.Bind(key=f"bind/{port}", port=port)) for port in ports]
    for lis in usable:
        listener = pb.Listener(
            key=lis.key,
            bind_key=lis.bind_key,
            name=lis.spec.name,
            gateway_name=f"{state.key.namespace}/{state.key.name}",
            hostname=(lis.spec.hostname or "").lower(),
            protocol=pb.HTTPS if lis.spec.protocol == "HTTPS" else pb.HTTP,
            tls=lis.tls,
        )
        out.append(pb.Resource(listener=listener))
    return out


def gateway_status(state: GatewayState, attached: Mapping[str, int], now: str) -> dict[str, Any]:
    """Conditions plus one entry per listener; `attached` counts routes per listener name."""
    stamp = status.Stamp(state.generation, now)
    ok, reason, message = _accepted(state)
    programmed = (
        status.condition(
            conditions.PROGRAMMED, True, conditions.PROGRAMMED, "Successfully programmed Gateway", stamp
        )
        if ok
        else status.condition(
            conditions.PROGRAMMED, False, conditions.INVALID, "Gateway is not accepted", stamp
        )
    )
    return {
        "conditions": [status.condition(conditions.ACCEPTED, ok, reason, message, stamp), programmed],
        "listeners": [
            _listener_status(lis, attached.get(lis.spec.name, 0), stamp) for lis in state.listeners
        ],
    }


def _accepted(state: GatewayState) -> tuple[bool, str, str]:
    """The Gateway's Accepted condition: accepted while one listener is usable."""
    if state.problem is not None:
        return False, state.problem.reason, state.problem.message
    bad = [lis.spec.name for lis in state.listeners if not lis.usable]
    if not bad:
        return True, conditions.ACCEPTED, ""
    usable = len(bad) < len(state.listeners)
    return usable, conditions.LISTENERS_NOT_VALID, f"invalid listeners: {', '.join(bad)}"


def _listener_status(lis: ListenerState, attached: int, stamp: status.Stamp) -> dict[str, Any]:
    not_accepted = lis.unsupported or lis.conflict
    conflicted = (
        status.condition(conditions.CONFLICTED, True, lis.conflict.reason, lis.conflict.message, stamp)
        if lis.conflict
        else status.condition(conditions.CONFLICTED, False, conditions.NO_CONFLICTS, NO_ERRORS, stamp)
    )
    programmed = (
        status.condition(conditions.PROGRAMMED, True, conditions.PROGRAMMED, NO_ERRORS, stamp)
        if lis.usable
        else status.condition(conditions.PROGRAMMED, False, conditions.INVALID, _why(lis), stamp)
    )
    return {
        "name": lis.spec.name,
        "supportedKinds": [{"group": k.group, "kind": k.kind} for k in lis.kinds],
        "attachedRoutes": attached,
        "conditions": [
            status.from_problem(conditions.ACCEPTED, not_accepted, conditions.ACCEPTED, NO_ERRORS, stamp),
            conflicted,
            programmed,
            status.from_problem(
                conditions.RESOLVED_REFS, lis.refs_problem, conditions.RESOLVED_REFS, NO_ERRORS, stamp
            ),
        ],
    }


def _why(lis: ListenerState) -> str:
    problem = lis.unsupported or lis.conflict or lis.certificate
    return problem.message if problem else ""
