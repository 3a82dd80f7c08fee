"""The helm chart, installed for real: `helm install` against a real kube-apiserver, then RBAC checks.

A module fixture runs `hack/apiserver.sh up` (its own state dir; `down` at the end) and installs
the Gateway API CRDs (e2e/gateway-api, v1.6.1 standard channel), the chart's prerequisite.
`helm install agentgw charts/agentgw -n agentgw-system --create-namespace --wait=false` then
installs the chart; helm's own config, cache and data dirs are temporary.

The apiserver has no kubelet, scheduler or controller-manager: the controller Deployment is stored
but no pod runs, so nothing waits for readiness. What is checked is what the apiserver decides:
the objects exist, the CRDs are Established, the GatewayClasses carry our controllerName, and the
controller's ServiceAccount may do (SubjectAccessReview, via `kubectl auth can-i --as`) what the
controller does and no more. `helm uninstall` comes last.

Needs helm on PATH or in ~/go/bin (`make tools` builds it); skipped without it. Every step is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import k8s

CHART = k8s.REPO / "charts" / "agentgw"
RELEASE = "agentgw"
NS = "agentgw-system"
CONTROLLER_NAME = "agentgateway.dev/agentgateway"
HELM_TIMEOUT = 120.0  # seconds for one helm command (install includes the CRDs becoming Established)


def _helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    candidate = Path(os.environ.get("GOBIN") or Path.home() / "go" / "bin") / "helm"
    return str(candidate) if candidate.is_file() else None


HELM = _helm_binary()
pytestmark = [
    k8s.timeout(180),
    pytest.mark.skipif(HELM is None, reason="no helm binary on PATH or in ~/go/bin (`make tools` builds it)"),
]


@dataclass
class Cluster(k8s.Cluster):
    """The shared kubectl wrapper, plus helm with its own temporary config, cache and data dirs."""

    helm_env: dict[str, str] = field(default_factory=dict)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert HELM is not None
        proc = subprocess.run(
            [HELM, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT,
            check=False,
            env=self.helm_env,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def can_i(self, sa: str, *args: str) -> str:
        """`kubectl auth can-i ARGS --as` the ServiceAccount: "yes" or "no"."""
        proc = self.kubectl("auth", "can-i", *args, f"--as=system:serviceaccount:{NS}:{sa}", check=False)
        answer = proc.stdout.strip()
        assert answer in ("yes", "no"), f"can-i {' '.join(args)}: {proc.stdout!r} {proc.stderr!r}"
        return answer


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("helm-install")
    with k8s.apiserver(
        tmp / "apiserver", crds=(k8s.GATEWAY_API,), kubectl_args=("--request-timeout=20s",)
    ) as c:
        helm_env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(tmp / "helm" / "config"),
            "HELM_CACHE_HOME": str(tmp / "helm" / "cache"),
            "HELM_DATA_HOME": str(tmp / "helm" / "data"),
        }
        helm_env.pop("KUBECONFIG", None)
        # `get` and `delete` default to the release's namespace, which `helm install` creates.
        yield Cluster(c.kubeconfig, c.kubectl_bin, NS, c.version, c.kubectl_args, helm_env)


@dataclass
class Release:
    docs: list[dict[str, Any]]
    """What helm rendered (the release manifest; CRDs from crds/ are not in it)."""
    install: subprocess.CompletedProcess[str]
    uninstalled: bool = False

    def one(self, kind: str) -> dict[str, Any]:
        found = [d for d in self.docs if d["kind"] == kind]
        assert len(found) == 1, (kind, [d["metadata"]["name"] for d in found])
        return found[0]

    @property
    def service_account(self) -> str:
        name: str = self.one("ServiceAccount")["metadata"]["name"]
        return name


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    install = cluster.helm(
        "install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--wait=false", check=False
    )
    r = Release([], install)
    try:
        if install.returncode == 0:
            manifest = cluster.helm("get", "manifest", RELEASE, "-n", NS).stdout
            r.docs = [d for d in yaml.safe_load_all(manifest) if d]
        yield r
    finally:
        if install.returncode == 0 and not r.uninstalled:
            cluster.helm("uninstall", RELEASE, "-n", NS, check=False)


def _chart_crds() -> list[str]:
    return sorted(
        doc["metadata"]["name"]
        for path in (CHART / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    )


def _resource(doc: dict[str, Any]) -> str:
    """kind.group for kubectl (the kind alone for the core group)."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}.{group}" if group else str(doc["kind"]).lower()


def _conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


# ----------------------------------------------------------------------------------- tests


def test_helm_install_with_create_namespace_succeeds(cluster: Cluster, release: Release) -> None:
    assert release.install.returncode == 0, release.install.stdout + release.install.stderr
    status = json.loads(cluster.helm("status", RELEASE, "-n", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert cluster.get("namespace", NS, namespace=None)["metadata"]["name"] == NS


def test_the_charts_crds_are_installed_and_established(cluster: Cluster, release: Release) -> None:
    names = _chart_crds()
    assert len(names) == 3, names
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{n}" for n in names), timeout=40
    )
    for name in names:
        conditions = _conditions(cluster.get("crd", name, namespace=None))
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)


def test_the_gateway_classes_exist_with_our_controller_name(cluster: Cluster, release: Release) -> None:
    for name in ("agentgateway", "agentgateway-v2"):
        gc = cluster.get("gatewayclass.gateway.networking.k8s.io", name, namespace=None)
        assert gc, f"GatewayClass {name} missing"
        assert gc["spec"]["controllerName"] == CONTROLLER_NAME
        assert gc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_the_controller_deployment_service_and_service_account_exist(
    cluster: Cluster, release: Release
) -> None:
    sa = release.service_account
    assert cluster.get("serviceaccount", sa)

    dep = cluster.get("deployment.apps", release.one("Deployment")["metadata"]["name"])
    assert dep, "controller Deployment missing"
    pod = dep["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == sa
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["agentgw-controller"]
    args = container["args"]
    assert "--xds-port=9978" in args and "--metrics-port=9092" in args, args
    assert f"--controller-name={CONTROLLER_NAME}" in args, args
    svc_name = release.one("Service")["metadata"]["name"]
    assert f"--xds-address={svc_name}.{NS}.svc:9978" in args, args
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    svc = cluster.get("service", svc_name)
    assert svc, "controller Service missing"
    ports = {p["port"]: p for p in svc["spec"]["ports"]}
    assert sorted(ports) == [9092, 9978], ports
    for port, p in ports.items():
        assert container_ports[p["targetPort"]] == port, (p, container_ports)
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_the_cluster_role_and_binding_exist_for_the_service_account(
    cluster: Cluster, release: Release
) -> None:
    role = release.one("ClusterRole")["metadata"]["name"]
    assert cluster.get("clusterrole.rbac.authorization.k8s.io", role, namespace=None)
    binding = cluster.get(
        "clusterrolebinding.rbac.authorization.k8s.io",
        release.one("ClusterRoleBinding")["metadata"]["name"],
        namespace=None,
    )
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": release.service_account, "namespace": NS}
    ]


def test_the_cluster_role_has_no_wildcards_and_no_escalation_verbs(
    cluster: Cluster, release: Release
) -> None:
    role = cluster.get(
        "clusterrole.rbac.authorization.k8s.io",
        release.one("ClusterRole")["metadata"]["name"],
        namespace=None,
    )
    assert role["rules"]
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), rule
        assert not rule.get("nonResourceURLs"), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        if "secrets" in rule.get("resources", []):
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    assert not role.get("aggregationRule"), role


# (verb, resource, extra args): what the controller does (kopf watches, status PUTs, server-side apply).
ALLOWED = [
    ("watch", "httproutes.gateway.networking.k8s.io"),
    ("list", "gateways.gateway.networking.k8s.io"),
    ("watch", "gatewayclasses.gateway.networking.k8s.io"),
    ("watch", "referencegrants.gateway.networking.k8s.io"),
    ("patch", "httproutes.gateway.networking.k8s.io", "--subresource=status"),
    ("update", "gateways.gateway.networking.k8s.io", "--subresource=status"),
    ("update", "gatewayclasses.gateway.networking.k8s.io", "--subresource=status"),
    ("watch", "agentgatewaybackends.agentgateway.dev"),
    ("watch", "agentgatewaypolicies.agentgateway.dev"),
    ("watch", "agentgatewayparameters.agentgateway.dev"),
    ("update", "agentgatewaybackends.agentgateway.dev", "--subresource=status"),
    ("get", "secrets", "-n", "agentgateway-system"),
    ("watch", "secrets", "--all-namespaces"),
    ("watch", "services", "--all-namespaces"),
    ("watch", "namespaces"),
    ("watch", "endpointslices.discovery.k8s.io", "--all-namespaces"),
    ("create", "deployments.apps", "-n", "agentgateway-system"),
    ("patch", "deployments.apps", "-n", "agentgateway-system"),
    ("patch", "services", "-n", "agentgateway-system"),
    ("patch", "serviceaccounts", "-n", "agentgateway-system"),
    ("patch", "configmaps", "-n", "agentgateway-system"),
    ("patch", "poddisruptionbudgets.policy", "-n", "agentgateway-system"),
    ("patch", "horizontalpodautoscalers.autoscaling", "-n", "agentgateway-system"),
    ("update", "leases.coordination.k8s.io", "-n", NS),
]

DENIED = [
    ("delete", "nodes"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "secrets", "-n", "agentgateway-system"),
    ("update", "secrets", "-n", "agentgateway-system"),
    ("patch", "httproutes.gateway.networking.k8s.io"),
    ("delete", "gateways.gateway.networking.k8s.io"),
    ("update", "agentgatewaybackends.agentgateway.dev"),
    ("create", "pods", "-n", "agentgateway-system"),
    ("create", "pods", "--subresource=exec", "-n", "agentgateway-system"),
    ("impersonate", "serviceaccounts"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("update", "leases.coordination.k8s.io", "-n", "kube-system"),
]


def test_the_service_account_may_do_what_the_controller_needs(cluster: Cluster, release: Release) -> None:
    sa = release.service_account
    wrong = [" ".join(check) for check in ALLOWED if cluster.can_i(sa, *check) != "yes"]
    assert not wrong, f"{sa} is denied: {wrong}"


def test_the_service_account_may_do_no_more(cluster: Cluster, release: Release) -> None:
    sa = release.service_account
    wrong = [" ".join(check) for check in DENIED if cluster.can_i(sa, *check) != "no"]
    assert not wrong, f"{sa} is allowed: {wrong}"


def test_helm_uninstall_succeeds_and_keeps_the_crds(cluster: Cluster, release: Release) -> None:
    assert release.install.returncode == 0, "not installed"
    cluster.helm("uninstall", RELEASE, "-n", NS)
    release.uninstalled = True
    deadline = time.monotonic() + 30
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [
            f"{d['kind']}/{d['metadata']['name']}"
            for d in release.docs
            if cluster.get(_resource(d), d["metadata"]["name"], namespace=d["metadata"].get("namespace"))
        ]
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"still there after helm uninstall: {left}"
    assert cluster.helm("list", "-n", NS, "-q").stdout.strip() == ""
    for name in _chart_crds():  # helm never deletes crds/
        assert cluster.get("crd", name, namespace=None), name
