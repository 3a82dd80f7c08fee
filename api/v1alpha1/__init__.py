"""Models of agentgateway's Kubernetes API, agentgateway.dev/v1alpha1: the source of truth for crds/.

    backendpolicy   BackendSimple / BackendWithAI / BackendFull: tcp, tls, http, auth, ai
    backend         AgentgatewayBackend: ai | mcp | a2a | static, plus policies
    policy          AgentgatewayPolicy: targets; traffic, frontend, backend sections
    parameters      AgentgatewayParameters: how proxies are deployed
    common, base    shared field types; Rule (CEL + Python), list markers, the Model base
    validation      parse manifests, errors worded as the kube-apiserver words them
    crd             render CustomResourceDefinitions (hack/gen_crds.py writes crds/)

Field names, enums, limits and rule messages follow agentgateway's CRDs for every field we
implement; the fields we leave out are listed in each module's docstring and are rejected as
unknown. Field docstrings are the reference: what the field does, its default, its limits.
"""

from api.v1alpha1.backend import AgentgatewayBackend
from api.v1alpha1.kinds import ALL, BY_KIND
from api.v1alpha1.parameters import AgentgatewayParameters
from api.v1alpha1.policy import AgentgatewayPolicy
from api.v1alpha1.validation import parse, parse_all

__all__ = [
    "ALL",
    "BY_KIND",
    "AgentgatewayBackend",
    "AgentgatewayParameters",
    "AgentgatewayPolicy",
    "parse",
    "parse_all",
]
