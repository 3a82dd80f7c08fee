"""Render the objects that run one Gateway's proxy fleet.

In: a Gateway of a class we own (as the API returns it; `metadata.uid` is required for the owner
reference), its GatewayClass (or None), the AgentgatewayParameters objects the caller has (any
superset of the referenced ones), and `settings.DeployerSettings`. Out: the objects to apply, in
apply order: ServiceAccount, ConfigMap, Deployment (or DaemonSet), Service, then a
PodDisruptionBudget and a HorizontalPodAutoscaler when the parameters ask for them. Every object
is named `names.object_name(<gateway name>)`, lives in the Gateway's namespace, carries the
Gateway's `spec.infrastructure` labels and annotations (GatewayInfrastructurePropagation) under
our own labels, and has the Gateway as controller owner. Called by the reconciler.

Parameters: the GatewayClass's `spec.parametersRef` (namespaced) and the Gateway's
`spec.infrastructure.parametersRef` (the Gateway's namespace) must name
`agentgateway.dev/AgentgatewayParameters` objects in `parameters`, else `errors.InvalidParameters`.
Typed settings merge field by field with the Gateway's winning (`env` by variable name); then the
overlays apply as strategic-merge patches (`merge.strategic_merge`), GatewayClass first, Gateway
second. Not rendered yet: agentgateway's session-key Secret, xDS TLS (CA ConfigMap, token volume),
`spec.addresses` (loadBalancerIP) and the left-out parameter fields (`rawConfig`, `istio`,
`spiffe`, `modelCatalog`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
import yaml

from api.v1alpha1 import parameters as agwp
from controller.deployer import errors, merge, names
from controller.deployer import settings as deployer_settings

Object = dict[str, Any]

FIELD_MANAGER = "agentgateway.dev/agentgateway"
"""Field manager for server-side apply, agentgateway's controller name."""

CONTAINER = "agentgw-proxy"
CONFIG_DIR = "/etc/agentgw"
TOKEN_DIR = "/var/run/secrets/xds"
"""Where the projected ServiceAccount token for xDS authentication is mounted."""
CONFIG_KEY = "config.yaml"
ADMIN_ADDR = "127.0.0.1:15000"
STATS_PORT = 15020
READINESS_PORT = 15021
READINESS_PATH = "/healthz/ready"

PARAMETERS_GROUP = "agentgateway.dev"
PARAMETERS_KIND = "AgentgatewayParameters"

TYPED_FIELDS = ("workload", "logging", "image", "env", "resources", "shutdown")
"""Spec fields merged field by field across levels; the other spec fields are overlays."""

OVERLAYS = (
    ("serviceAccount", "ServiceAccount"),
    ("deployment", "Deployment"),
    ("daemonSet", "DaemonSet"),
    ("service", "Service"),
    ("podDisruptionBudget", "PodDisruptionBudget"),
    ("horizontalPodAutoscaler", "HorizontalPodAutoscaler"),
)
"""Overlay field -> the kind of the generated object it patches."""


def render(
    gateway: Mapping[str, Any],
    gateway_class: Mapping[str, Any] | None,
    parameters: Sequence[Mapping[str, Any]],
    settings: deployer_settings.DeployerSettings,
) -> list[Object]:
    """The objects to server-side-apply for `gateway`; raise `errors.InvalidParameters`."""
    meta = gateway["metadata"]
    if not meta.get("uid"):
        raise ValueError("the Gateway needs metadata.uid for the owner references")
    levels = list(_resolve(gateway, gateway_class, parameters))
    typed = _merge_typed(levels)
    kind = (typed.get("workload") or {}).get("kind") or "Deployment"
    _check_overlays(levels, kind)

    r = _Renderer(gateway, typed, settings)
    objects: dict[str, Object] = {
        "ServiceAccount": r.service_account(),
        "ConfigMap": r.config_map(),
        kind: r.workload(kind, autoscaled=any(p.get("horizontalPodAutoscaler") for p in levels)),
        "Service": r.service(),
    }
    if any(p.get("podDisruptionBudget") for p in levels):
        objects["PodDisruptionBudget"] = r.pod_disruption_budget()
    if any(p.get("horizontalPodAutoscaler") for p in levels):
        objects["HorizontalPodAutoscaler"] = r.horizontal_pod_autoscaler()
    for spec in levels:
        for field, target in OVERLAYS:
            if spec.get(field) and target in objects:
                objects[target] = _apply_overlay(objects[target], spec[field])
    return list(objects.values())


# --------------------------------------------------------------------------------------------
# Parameters


def _resolve(
    gateway: Mapping[str, Any],
    gateway_class: Mapping[str, Any] | None,
    parameters: Sequence[Mapping[str, Any]],
) -> Iterator[dict[str, Any]]:
    """The specs of the referenced parameters (camelCase dicts, None fields dropped), class first."""
    by_key = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p for p in parameters}
    class_ref = ((gateway_class or {}).get("spec") or {}).get("parametersRef")
    if class_ref:
        if not class_ref.get("namespace"):
            raise errors.InvalidParameters(
                f"GatewayClass parametersRef to {class_ref['kind']} {class_ref['name']!r} needs a namespace"
            )
        yield _spec(class_ref, class_ref["namespace"], by_key)
    infra = gateway["spec"].get("infrastructure") or {}
    if infra.get("parametersRef"):
        yield _spec(infra["parametersRef"], gateway["metadata"]["namespace"], by_key)


def _spec(
    ref: Mapping[str, Any], namespace: str, by_key: Mapping[tuple[str | None, str], Mapping[str, Any]]
) -> dict[str, Any]:
    if (ref.get("group"), ref.get("kind")) != (PARAMETERS_GROUP, PARAMETERS_KIND):
        raise errors.InvalidParameters(
            f"parametersRef must be {PARAMETERS_GROUP}/{PARAMETERS_KIND}, not "
            f"{ref.get('group') or 'core'}/{ref.get('kind')}"
        )
    found = by_key.get((namespace, ref["name"]))
    if found is None:
        raise errors.InvalidParameters(f"{PARAMETERS_KIND} {namespace}/{ref['name']} not found")
    try:
        model = agwp.AgentgatewayParameters.model_validate(found)
    except pydantic.ValidationError as e:
        raise errors.InvalidParameters(f"{PARAMETERS_KIND} {namespace}/{ref['name']} is invalid: {e}") from e
    spec: dict[str, Any] = model.spec.model_dump(by_alias=True, exclude_none=True)
    # Overlays are free-form patches: keep their nulls (a null deletes a field).
    for field, _ in OVERLAYS:
        if field in (found.get("spec") or {}):
            spec[field] = found["spec"][field]
    return spec


def _merge_typed(levels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for spec in levels:
        for field in TYPED_FIELDS:
            if field not in spec:
                continue
            if field == "env":
                typed["env"] = merge.merge_env(typed.get("env", []), spec["env"])
            else:
                typed[field] = merge.merge_fields(typed.get(field), spec[field])
    return typed


def _check_overlays(levels: Sequence[Mapping[str, Any]], kind: str) -> None:
    """The per-object CEL rules, again on the merged workload kind."""
    for spec in levels:
        if spec.get("deployment") and kind != "Deployment":
            raise errors.InvalidParameters(f"a deployment overlay does not apply to workload kind {kind}")
        if spec.get("daemonSet") and kind != "DaemonSet":
            raise errors.InvalidParameters(f"a daemonSet overlay does not apply to workload kind {kind}")
        if spec.get("horizontalPodAutoscaler") and kind == "DaemonSet":
            raise errors.InvalidParameters(
                "horizontalPodAutoscaler does not apply to workload kind DaemonSet"
            )


def _apply_overlay(obj: Object, overlay: Mapping[str, Any]) -> Object:
    out = dict(obj)
    overlay_meta = overlay.get("metadata") or {}
    if overlay_meta:
        out["metadata"] = merge.strategic_merge(
            obj["metadata"],
            {k: overlay_meta[k] for k in ("labels", "annotations") if k in overlay_meta},
        )
    if overlay.get("spec"):
        if "spec" in obj or obj["kind"] != "ServiceAccount":
            out["spec"] = merge.strategic_merge(obj.get("spec", {}), overlay["spec"], "spec")
        else:  # A ServiceAccount has no spec: its fields sit at the top level.
            out = merge.strategic_merge(out, overlay["spec"])
    return out


# --------------------------------------------------------------------------------------------
# Objects


class _Renderer:
    """What every object of one Gateway shares: name, namespace, labels, owner."""

    def __init__(
        self,
        gateway: Mapping[str, Any],
        typed: Mapping[str, Any],
        settings: deployer_settings.DeployerSettings,
    ) -> None:
        meta = gateway["metadata"]
        self.gateway_name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.name = names.object_name(self.gateway_name)
        self.typed = typed
        self.settings = settings
        self.listeners: list[Mapping[str, Any]] = gateway["spec"].get("listeners") or []
        infra = gateway["spec"].get("infrastructure") or {}
        self.selector = {
            "app.kubernetes.io/name": CONTAINER,
            "app.kubernetes.io/instance": names.label_value(self.gateway_name),
            "gateway.networking.k8s.io/gateway-name": names.label_value(self.gateway_name),
        }
        self.labels = {
            **(infra.get("labels") or {}),
            **self.selector,
            "gateway.networking.k8s.io/gateway-class-name": names.label_value(
                gateway["spec"]["gatewayClassName"]
            ),
            "app.kubernetes.io/managed-by": "agentgw",
        }
        self.annotations: dict[str, str] = dict(infra.get("annotations") or {})
        self.owner = {
            "apiVersion": gateway.get("apiVersion", "gateway.networking.k8s.io/v1"),
            "kind": "Gateway",
            "name": self.gateway_name,
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _object(self, api_version: str, kind: str, **body: Any) -> Object:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": dict(self.labels),
        }
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        metadata["ownerReferences"] = [dict(self.owner)]
        return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}

    def service_account(self) -> Object:
        """No API token in the pod: the proxy does not talk to the apiserver."""
        return self._object("v1", "ServiceAccount", automountServiceAccountToken=False)

    def config_text(self) -> str:
        """The proxy's startup settings file (`config:` block of the standalone format)."""
        config: dict[str, Any] = {
            "adminAddr": ADMIN_ADDR,
            "statsAddr": f"0.0.0.0:{STATS_PORT}",
            "readinessAddr": f"0.0.0.0:{READINESS_PORT}",
        }
        logging = self.typed.get("logging") or {}
        if logging:
            config["logging"] = dict(logging)
        shutdown = self.typed.get("shutdown")
        if shutdown:
            config["connectionMinTerminationDeadline"] = f"{shutdown['min']}s"
            config["connectionTerminationDeadline"] = f"{shutdown['max']}s"
        text: str = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
        return text

    def config_map(self) -> Object:
        return self._object("v1", "ConfigMap", data={CONFIG_KEY: self.config_text()})

    def ports(self) -> list[tuple[str, int]]:
        """(name, port) per distinct listener port, named after its first listener."""
        seen: dict[int, str] = {}
        for lis in self.listeners:
            seen.setdefault(int(lis["port"]), names.object_name(lis["name"]))
        if not seen:
            seen[self.settings.no_listeners_port] = "none"
        return [(name, port) for port, name in seen.items()]

    def image(self) -> str:
        img = self.typed.get("image") or {}
        registry = img.get("registry", self.settings.image_registry)
        repository = img.get("repository", self.settings.image_repository)
        ref = f"{registry}/{repository}" if registry else repository
        if img.get("digest"):
            return f"{ref}@{img['digest']}"
        return f"{ref}:{img.get('tag', self.settings.image_tag)}"

    def env(self) -> list[dict[str, Any]]:
        def field(path: str) -> dict[str, Any]:
            return {"fieldRef": {"fieldPath": path}}

        generated: list[dict[str, Any]] = [
            {"name": "XDS_ADDRESS", "value": self.settings.xds_address},
            {"name": "XDS_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"},
            {"name": "NAMESPACE", "value": self.namespace},
            {"name": "GATEWAY", "value": self.gateway_name},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "NODE_NAME", "valueFrom": field("spec.nodeName")},
            {"name": "INSTANCE_IP", "valueFrom": field("status.podIP")},
        ]
        return merge.merge_env(generated, self.typed.get("env") or [])

    def container(self) -> dict[str, Any]:
        pull_policy = (self.typed.get("image") or {}).get("pullPolicy") or self.settings.image_pull_policy
        ports: list[dict[str, Any]] = [{"containerPort": p, "protocol": "TCP"} for _, p in self.ports()]
        ports += [
            {"name": "metrics", "containerPort": STATS_PORT, "protocol": "TCP"},
            {"name": "readiness", "containerPort": READINESS_PORT, "protocol": "TCP"},
        ]
        c: dict[str, Any] = {"name": CONTAINER, "image": self.image()}
        if pull_policy:
            c["imagePullPolicy"] = pull_policy
        c |= {
            "command": [CONTAINER],
            "args": ["-f", f"{CONFIG_DIR}/{CONFIG_KEY}"],
            "ports": ports,
            "env": self.env(),
        }
        if self.typed.get("resources"):
            c["resources"] = self.typed["resources"]
        c |= {
            "readinessProbe": {
                "httpGet": {"path": READINESS_PATH, "port": READINESS_PORT},
                "periodSeconds": 5,
                "failureThreshold": 2,
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": self.settings.run_as_user,
                "runAsGroup": self.settings.run_as_user,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "xds-token", "mountPath": TOKEN_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        return c

    def workload(self, kind: str, autoscaled: bool) -> Object:
        """A Deployment or DaemonSet; an autoscaled Deployment leaves `replicas` to the HPA."""
        shutdown = self.typed.get("shutdown")
        grace = shutdown["max"] if shutdown else self.settings.termination_grace_period_seconds
        checksum = hashlib.sha256(self.config_text().encode()).hexdigest()
        template = {
            "metadata": {
                "labels": dict(self.labels),
                "annotations": {
                    **self.annotations,
                    "checksum/config": checksum,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(STATS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "serviceAccountName": self.name,
                "terminationGracePeriodSeconds": grace,
                "securityContext": {
                    "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
                },
                "containers": [self.container()],
                "volumes": [
                    {"name": "config", "configMap": {"name": self.name}},
                    {
                        # The proxy's identity for the controller's xDS TokenReview check; the
                        # kubelet rotates it (the proxy re-reads it at every reconnect).
                        "name": "xds-token",
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "path": "token",
                                        "audience": self.settings.xds_token_audience,
                                        "expirationSeconds": 3600,
                                    }
                                }
                            ]
                        },
                    },
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        }
        spec: dict[str, Any] = {}
        if kind == "Deployment" and not autoscaled:
            spec["replicas"] = self.settings.replicas
        spec |= {"selector": {"matchLabels": dict(self.selector)}, "template": template}
        return self._object("apps/v1", kind, spec=spec)

    def service(self) -> Object:
        ports = [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in self.ports()]
        spec = {"type": "LoadBalancer", "selector": dict(self.selector), "ports": ports}
        return self._object("v1", "Service", spec=spec)

    def pod_disruption_budget(self) -> Object:
        """Selects the proxy pods; the overlay gives `minAvailable` or `maxUnavailable`."""
        return self._object(
            "policy/v1", "PodDisruptionBudget", spec={"selector": {"matchLabels": dict(self.selector)}}
        )

    def horizontal_pod_autoscaler(self) -> Object:
        """Targets the Deployment; the overlay gives `maxReplicas` (required) and the metrics."""
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.name}
        return self._object("autoscaling/v2", "HorizontalPodAutoscaler", spec={"scaleTargetRef": target})
