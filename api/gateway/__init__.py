"""Typed views of the Gateway API objects agentgw reads, and the condition names it writes.

    v1          GatewayClass, Gateway, HTTPRoute, ReferenceGrant: read-only views with spec defaults
    conditions  condition types and reasons (Accepted, NotAllowedByListeners, RefNotPermitted, ...)

GRPCRoute, TCPRoute, TLSRoute and ListenerSet have no views yet: the controller does not read them.
"""

from api.gateway import conditions, v1

__all__ = ["conditions", "v1"]
