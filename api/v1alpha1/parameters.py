"""AgentgatewayParameters: how the controller deploys the proxy fleet of a Gateway.

In: the manifest of one AgentgatewayParameters, referenced by a GatewayClass
(`spec.parametersRef`) or a Gateway (`spec.infrastructure.parametersRef`). Out: the validated
model the deployer reads when it renders the per-Gateway Deployment (or DaemonSet), Service and
ServiceAccount. Gateway-level values win over GatewayClass-level ones, field by field; then the
overlays are applied as strategic-merge patches, GatewayClass first, Gateway second.

Typed settings: `workload`, `logging`, `image`, `env`, `resources`, `shutdown`. Overlays:
`deployment`, `daemonSet`, `service`, `serviceAccount`, `podDisruptionBudget` (creates a PDB),
`horizontalPodAutoscaler` (creates an HPA). The replica count is an overlay field
(`deployment.spec.replicas`), as in agentgateway.

Subset of agentgateway: `rawConfig`, `istio`, `spiffe` and `modelCatalog` are left out until
implemented. `image.pullPolicy` is checked against the three Kubernetes values here already
(agentgateway leaves it to the Deployment).
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from api.v1alpha1 import base, common

# --------------------------------------------------------------------------------------------
# Container settings (Kubernetes core/v1 shapes)

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[int | str, base.IntOrString(QUANTITY_PATTERN)]
"""A Kubernetes resource quantity: `500m`, `128Mi`, `2`."""


class ConfigMapKeySelector(base.Model):
    """A key of a ConfigMap in the Gateway's namespace."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    key: str
    """The key to read. Required."""

    name: str = ""
    """Name of the ConfigMap."""

    optional: bool | None = None
    """Whether the ConfigMap or key may be missing."""


class SecretKeySelector(base.Model):
    """A key of a Secret in the Gateway's namespace."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    key: str
    """The key to read. Required."""

    name: str = ""
    """Name of the Secret."""

    optional: bool | None = None
    """Whether the Secret or key may be missing."""


class ObjectFieldSelector(base.Model):
    """A field of the pod, e.g. `metadata.name` or `status.podIP`."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    api_version: str | None = None
    """Schema version of `fieldPath`. Default: `v1`."""

    field_path: str
    """Path of the field. Required."""


class ResourceFieldSelector(base.Model):
    """A resource limit or request of a container, e.g. `limits.cpu`."""

    __crd_extra__ = {"x-kubernetes-map-type": "atomic"}

    container_name: str | None = None
    """Container name. Default: the proxy container."""

    divisor: Quantity | None = None
    """Unit of the exposed value. Default: 1."""

    resource: str
    """The resource, e.g. `limits.memory`. Required."""


class EnvVarSource(base.Model):
    """Where an environment variable's value comes from."""

    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None


class EnvVar(base.Model):
    """An environment variable of the proxy container (Kubernetes `EnvVar`)."""

    name: str
    """Variable name. Required."""

    value: str | None = None
    """Literal value; `$(VAR)` references expand, `$$(VAR)` stays literal. Default: empty."""

    value_from: EnvVarSource | None = None
    """Value read from a ConfigMap, Secret, pod field or resource."""


class ResourceClaim(base.Model):
    """A dynamic resource claim of the pod that the container uses."""

    name: str
    """Name of an entry in the pod's `resourceClaims`. Required."""

    request: str | None = None
    """Request within that claim."""


class ResourceRequirements(base.Model):
    """Compute resources of the proxy container (Kubernetes `ResourceRequirements`)."""

    limits: dict[str, Quantity] | None = None
    """Maximum resources, e.g. `{cpu: "2", memory: 1Gi}`."""

    requests: dict[str, Quantity] | None = None
    """Guaranteed resources; default to the limits when only limits are set."""

    claims: Annotated[list[ResourceClaim], base.ListMap("name")] | None = None
    """Dynamic resource claims used by the container."""


class Image(base.Model):
    """The proxy container image; each part overrides its default separately."""

    registry: str | None = None
    """Registry host. Default: the controller's configured registry."""

    repository: str | None = None
    """Repository within the registry. Default: the controller's configured proxy repository."""

    tag: str | None = None
    """Tag. Default: the controller's version."""

    digest: str | None = None
    """Digest such as `sha256:...`; when set it pins the image."""

    pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Pull policy. Default: Kubernetes' (`Always` for `latest`, else `IfNotPresent`)."""


# --------------------------------------------------------------------------------------------
# Typed settings


class Workload(base.Model):
    """The workload kind of the proxy fleet."""

    kind: Literal["Deployment", "DaemonSet"] | None = None
    """`Deployment` (the default) or `DaemonSet`."""


class Logging(base.Model):
    """Proxy logging."""

    level: str | None = None
    """Level, `RUST_LOG` syntax: `info` (the default), `debug`, or per-module `a=warn,b=debug`."""

    format: Literal["json", "text"] | None = None
    """Output format. Default: `text`."""


class Shutdown(base.Model):
    """Graceful shutdown bounds, in seconds (0 to 31536000)."""

    __rules__ = (
        base.Rule(
            "self.min <= self.max",
            "The 'min' value must be less than or equal to the 'max' value.",
            lambda s: s.min <= s.max,
        ),
    )

    min: Annotated[int, pydantic.Field(ge=0, le=31536000)]
    """Seconds the proxy keeps serving after shutdown starts, so that load balancers notice
    (env `CONNECTION_MIN_TERMINATION_DEADLINE`). Required."""

    max: Annotated[int, pydantic.Field(ge=0, le=31536000)]
    """Seconds after which remaining connections are closed; the pod's termination grace period
    (env `TERMINATION_GRACE_PERIOD_SECONDS`). Required."""


# --------------------------------------------------------------------------------------------
# Overlays


class ObjectMetadata(base.Model):
    """Labels and annotations merged into a generated object's metadata."""

    labels: dict[str, str] | None = None
    """Labels to add or overwrite."""

    annotations: dict[str, str] | None = None
    """Annotations to add or overwrite."""


class KubernetesResourceOverlay(base.Model):
    """A strategic-merge patch for one generated object.

    `spec` may be partial; lists with merge keys (containers by `name`, tolerations by `key`)
    merge item by item; `$patch: delete` removes a field or item and `$patch: replace` replaces a
    map or list whole. Applied after all typed settings: GatewayClass overlays first, then Gateway.
    """

    metadata: ObjectMetadata | None = None
    """Labels and annotations to merge; Gateway-level values win."""

    spec: base.FreeObject | None = None
    """Partial spec of the object (e.g. a DeploymentSpec), merged as a strategic-merge patch."""


class AgentgatewayParametersSpec(base.Model):
    """Typed settings and overlays for the generated proxy objects."""

    __rules__ = (
        base.Rule(
            "!has(self.deployment) || !has(self.workload) || !has(self.workload.kind) || "
            "self.workload.kind == 'Deployment'",
            "deployment overlays are only valid when workload.kind is Deployment or unset",
            lambda s: s.deployment is None or s.workload is None or s.workload.kind in (None, "Deployment"),
        ),
        base.Rule(
            "!has(self.daemonSet) || (has(self.workload) && has(self.workload.kind) && "
            "self.workload.kind == 'DaemonSet')",
            "daemonSet overlays are only valid when workload.kind is DaemonSet",
            lambda s: s.daemon_set is None or (s.workload is not None and s.workload.kind == "DaemonSet"),
        ),
        base.Rule(
            "!has(self.horizontalPodAutoscaler) || !has(self.workload) || !has(self.workload.kind) || "
            "self.workload.kind != 'DaemonSet'",
            "horizontalPodAutoscaler is not valid when workload.kind is DaemonSet",
            lambda s: (
                s.horizontal_pod_autoscaler is None or s.workload is None or s.workload.kind != "DaemonSet"
            ),
        ),
    )

    workload: Workload | None = None
    """Workload kind. Default: Deployment."""

    logging: Logging | None = None
    """Proxy log level and format. Default: `info`, text."""

    image: Image | None = None
    """The proxy image."""

    env: list[EnvVar] | None = None
    """Environment variables of the proxy container; they override generated ones of the same name.
    Setting `SESSION_KEY` replaces the controller-managed per-Gateway session key Secret."""

    resources: ResourceRequirements | None = None
    """Compute resources of the proxy container."""

    shutdown: Shutdown | None = None
    """Graceful shutdown bounds."""

    deployment: KubernetesResourceOverlay | None = None
    """Overlay for the generated Deployment (workload kind Deployment only)."""

    daemon_set: KubernetesResourceOverlay | None = None
    """Overlay for the generated DaemonSet (workload kind DaemonSet only)."""

    service: KubernetesResourceOverlay | None = None
    """Overlay for the generated Service."""

    service_account: KubernetesResourceOverlay | None = None
    """Overlay for the generated ServiceAccount."""

    pod_disruption_budget: KubernetesResourceOverlay | None = None
    """When set, a PodDisruptionBudget selecting the proxy pods is created with this overlay."""

    horizontal_pod_autoscaler: KubernetesResourceOverlay | None = None
    """When set, a HorizontalPodAutoscaler for the Deployment is created with this overlay."""


class AgentgatewayParametersStatus(base.Model):
    """Empty: parameters have no status of their own."""


class AgentgatewayParameters(common.Resource):
    """Deployment settings for the proxy fleet of the Gateways that reference it."""

    __crd__ = base.CRDInfo(
        plural="agentgatewayparameters",
        singular="agentgatewayparameters",
        short_names=("agpar",),
        printer_columns=(base.PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),),
        labels=(
            ("app", "agentgateway"),
            ("app.kubernetes.io/name", "agentgateway"),
            ("gateway.networking.k8s.io/policy", "Direct"),
        ),
    )

    kind: Literal["AgentgatewayParameters"] = "AgentgatewayParameters"
    spec: AgentgatewayParametersSpec
    """Desired data plane provisioning settings."""

    status: AgentgatewayParametersStatus | None = None
    """Current status (always empty)."""
