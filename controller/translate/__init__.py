"""Kubernetes objects -> agentgw xDS resources per Gateway, and the statuses to write. Pure.

    translate(inputs, now) -> Output
        inputs: Inputs      frozen raw objects (GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant,
                            Namespace, Service, EndpointSlice, Secret, ConfigMap, AgentgatewayBackend,
                            AgentgatewayPolicy) + our controllerName + the cluster DNS domain
        Output.resources    {GatewayKey(namespace, name): [resource_pb2.Resource, ...] sorted by key}
        Output.statuses     {ObjectRef(group, kind, namespace, name): status stanza}

Modules, in the order translation uses them:

    model        Inputs, Output, GatewayKey, ObjectRef
    index        lookups over one Inputs (parsed Gateway API views, objects by name)
    refs         ReferenceGrants, label selectors
    secretdata   Secret and ConfigMap data (base64 `data`, `stringData`, `binaryData`)
    tls          HTTPS listener certificates, backend TLS material
    gateways     GatewayClass / Gateway / listener rules, Bind + Listener resources, statuses
    agwbackends  AgentgatewayBackend -> Backend (static, OpenAI), Secrets for provider keys
    backends     backendRef resolution: Service -> StaticBackend by DNS name; InvalidKind,
                 RefNotPermitted, BackendNotFound
    attach       parentRef -> listeners (sectionName, port, allowedRoutes, hostnames)
    hostnames    listener/route hostname intersection
    filters      matches, filters, timeouts, retry -> RouteMatch, TrafficPolicy, BackendPolicy
    routes       HTTPRoute -> Routes per (rule, listener), `status.parents` (shared by route kinds)
    grpcroutes   GRPCRoute rules -> matches (service/method as paths), filters, HTTP/2 backends
    policyspec   AgentgatewayPolicy traffic/backend sections -> TrafficPolicy, BackendPolicy
    policies     AgentgatewayPolicy targets -> Policy resources per Gateway, `status.ancestors`
    status       conditions and problems
    pipeline     the steps in order (`translate`)

Keys (each Gateway has its own proxies, so keys need no gateway prefix): `bind/<port>`,
`bind/<port>/<listener>`, `bind/<port>/<listener>/<route ns>/<route name>/<rule index>` (HTTPRoute),
`bind/<port>/<listener>/grpc/<route ns>/<route name>/<rule index>` (GRPCRoute),
`backend/<ns>/<name>` (AgentgatewayBackend), `service/<ns>/<name>:<port>` (Service),
`policy/<ns>/<name>/<gateway|listener|route|backend>/<target>` (AgentgatewayPolicy).

Not translated yet: TCPRoute, TLSRoute, ListenerSet (no views, not in Inputs); TLS
passthrough listeners; AgentgatewayPolicy `frontend` and the parts `policyspec` lists. An invalid
backendRef next to valid ones does not get its share of 500s (the proto cannot name an invalid
backend): see `routes`.

No asyncio, no I/O, no Kubernetes client: tests/test_translate.py checks the imports (an
import-linter contract in .importlinter should too).
"""

from controller.translate.model import CONTROLLER_NAME, GatewayKey, Inputs, ObjectRef, Output
from controller.translate.pipeline import EPOCH, translate

__all__ = ["CONTROLLER_NAME", "EPOCH", "GatewayKey", "Inputs", "ObjectRef", "Output", "translate"]
