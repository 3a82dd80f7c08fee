"""Apply each Gateway's proxy objects (the deployer's rendering) with server-side apply.

In: the store (Gateways, GatewayClasses, AgentgatewayParameters) and the Gateways the
translator owns. Out: ServiceAccount, ConfigMap, Deployment and Service (plus any PDB/HPA
overlays) applied with field manager `agentgateway.dev/agentgateway`, force; only when a Gateway's
rendering changed since it was last applied, so a reconcile with nothing new sends nothing.
Called by `reconcile.Reconciler` after each pass, by the writer (leader) only.

Not done yet: pruning objects a Gateway no longer renders (owner references let the garbage
collector delete everything when the Gateway goes), and `status.addresses` from the Service.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from controller import deployer
from controller.k8s import client, kinds, store

log = logging.getLogger(__name__)

_PLURALS = {
    ("", "ServiceAccount"): "serviceaccounts",
    ("", "ConfigMap"): "configmaps",
    ("", "Service"): "services",
    ("apps", "Deployment"): "deployments",
    ("apps", "DaemonSet"): "daemonsets",
    ("policy", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
}


def object_path(obj: Mapping[str, Any]) -> str:
    """The REST path of a namespaced object from its apiVersion, kind, namespace and name."""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    plural = _PLURALS[(group, str(obj["kind"]))]
    meta = obj["metadata"]
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


class Deployer:
    def __init__(self, api: client.Client, settings: deployer.DeployerSettings) -> None:
        self._api = api
        self._settings = settings
        self._applied: dict[tuple[str, str], str] = {}
        """(namespace, gateway) -> digest of the objects last applied for it."""

    async def sync(self, objects: store.Store, gateways: Iterable[tuple[str, str]]) -> bool:
        """Apply what changed for `gateways`; False if an apply failed (the caller retries)."""
        ok = True
        params = list(objects.objects(frozenset({(kinds.PARAMETERS.group, kinds.PARAMETERS.kind)})))
        for namespace, name in sorted(gateways):
            gateway = objects.get(kinds.GATEWAY.group, "Gateway", namespace, name)
            if gateway is None:
                continue
            class_name = (gateway.get("spec") or {}).get("gatewayClassName", "")
            gateway_class = objects.get(kinds.GATEWAY_CLASS.group, "GatewayClass", "", class_name)
            try:
                rendered = deployer.render(gateway, gateway_class, params, self._settings)
            except (deployer.DeployerError, ValueError) as exc:
                log.warning("gateway %s/%s: not deployed: %s", namespace, name, exc)
                continue
            digest = hashlib.sha256(json.dumps(rendered, sort_keys=True).encode()).hexdigest()
            if self._applied.get((namespace, name)) == digest:
                continue
            try:
                for obj in rendered:
                    await self._api.apply(object_path(obj), obj, deployer.FIELD_MANAGER)
            except Exception as exc:
                ok = False
                log.warning("gateway %s/%s: apply failed: %s", namespace, name, exc)
                continue
            self._applied[(namespace, name)] = digest
            log.info("gateway %s/%s: applied %d proxy objects", namespace, name, len(rendered))
        return ok
