"""The deployer: the objects that run one Gateway's proxy fleet, rendered as plain dicts.

    render(gateway, gateway_class, parameters, settings) -> [ServiceAccount, ConfigMap,
        Deployment | DaemonSet, Service, PodDisruptionBudget?, HorizontalPodAutoscaler?]

Pure (no I/O, no asyncio, no Kubernetes client): the reconciler reads the objects, calls
`render` for each Gateway of a class we own, and server-side-applies the result (field manager
`agentgateway.dev/agentgateway`, force). Modules:

    settings   DeployerSettings: image defaults, xDS address, replicas
    render     the objects, AgentgatewayParameters resolution and merging
    merge      field-by-field merge of typed settings; strategic-merge of overlays
    names      object names and label values within 63 characters
    errors     DeployerError, InvalidParameters
"""

from controller.deployer.errors import DeployerError, InvalidParameters
from controller.deployer.render import FIELD_MANAGER, render
from controller.deployer.settings import DeployerSettings

__all__ = ["FIELD_MANAGER", "DeployerError", "DeployerSettings", "InvalidParameters", "render"]
