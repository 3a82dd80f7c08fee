"""The helm chart lints, renders, and asks for no wildcard permissions.

Needs a `helm` binary on PATH or in ~/go/bin (`go install helm.sh/helm/v3/cmd/helm@v3.16.4`);
without one the tests skip and say so.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml

CHART = pathlib.Path(__file__).parents[3] / "charts" / "agentgw"


def helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    candidate = pathlib.Path(os.environ.get("GOBIN") or pathlib.Path.home() / "go" / "bin") / "helm"
    return str(candidate) if candidate.is_file() else None


HELM = helm_binary()
pytestmark = pytest.mark.skipif(
    HELM is None, reason="no helm binary on PATH or in ~/go/bin (`make tools` builds it)"
)


def helm(*args: str) -> str:
    assert HELM is not None
    done = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rendered(*set_values: str) -> list[dict[str, Any]]:
    sets = [a for v in set_values for a in ("--set", v)]
    text = helm("template", "agentgw", str(CHART), "--namespace", "agentgw-system", "--include-crds", *sets)
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_chart_lints() -> None:
    helm("lint", "--strict", str(CHART))


def test_the_chart_renders_the_controller_and_its_classes() -> None:
    kinds = sorted({d["kind"] for d in rendered()})
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "GatewayClass",
    } <= set(kinds)
    classes = [d for d in rendered() if d["kind"] == "GatewayClass"]
    assert sorted(c["metadata"]["name"] for c in classes) == ["agentgateway", "agentgateway-v2"]
    assert {c["spec"]["controllerName"] for c in classes} == {"agentgateway.dev/agentgateway"}
    crds = [d["metadata"]["name"] for d in rendered() if d["kind"] == "CustomResourceDefinition"]
    assert "agentgatewayparameters.agentgateway.dev" in crds


def test_the_cluster_role_has_no_wildcards() -> None:
    for role in (d for d in rendered() if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)


def controller_args(*set_values: str) -> list[str]:
    deployment = next(d for d in rendered(*set_values) if d["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_the_controller_gets_its_ports_and_the_xds_address() -> None:
    args = controller_args()
    assert "--xds-port=9978" in args
    assert "--metrics-port=9092" in args
    assert "--xds-address=agentgw.agentgw-system.svc:9978" in args
    assert "--leader-elect" not in args


def test_leader_election_is_on_with_more_than_one_replica() -> None:
    assert "--leader-elect" in controller_args("replicas=2")
