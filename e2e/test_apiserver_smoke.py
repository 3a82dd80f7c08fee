"""A real kube-apiserver + etcd from `hack/apiserver.sh`, and our CRDs in it.

`hack/apiserver.sh up` starts etcd and kube-apiserver (built from the k8s.io/kubernetes Go
module and cached outside the repo) on 127.0.0.1 in a state dir of this session, and `down`
stops them by PID. Checks: kubectl talks to it with the admin kubeconfig and RBAC is on;
crds/ applies and every CRD becomes Established; the apiserver itself rejects invalid objects
with the CRDs' CEL and schema messages (one by a real apply, every example in
api/tests/testdata/invalid by a server-side dry run); the seed's manifests (Gateway, Secret,
AgentgatewayBackend, HTTPRoute) apply unchanged once the Gateway API CRDs are installed.

The first run builds the binaries (minutes; `make apiserver` does it ahead of the tests). The
tests are skipped only when neither the binaries nor a Go toolchain to build them exist.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e import k8s

REPO = k8s.REPO
SCRIPT = k8s.SCRIPT
CRDS = k8s.CRDS
INVALID = REPO / "api" / "tests" / "testdata" / "invalid"
SEED = REPO / "api" / "tests" / "testdata" / "valid" / "seed-001-openai.yaml"

# The fixture's first use may include the one-time build; once cached, `up` takes seconds.
pytestmark = k8s.timeout(60)
Cluster = k8s.Cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("apiserver") / "state"
    with k8s.apiserver(state) as c:
        yield c
    assert not state.exists()  # `down` removed the state directory


def install_crds(cluster: Cluster, directory: Path) -> list[str]:
    """Apply every YAML file of `directory` and wait until its CRDs are Established."""
    names = [
        doc["metadata"]["name"]
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    cluster.kubectl("apply", "--server-side", "-f", str(directory))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{n}" for n in names), timeout=40
    )
    return names


@pytest.fixture(scope="session")
def our_crds(cluster: Cluster) -> list[str]:
    return install_crds(cluster, CRDS)


def test_kubectl_talks_to_the_apiserver_of_the_pinned_release(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == cluster.version
    assert out["clientVersion"]["gitVersion"] == cluster.version
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_rbac_is_enforced_for_users_outside_system_masters(cluster: Cluster) -> None:
    assert cluster.kubectl("auth", "can-i", "create", "customresourcedefinitions").stdout.strip() == "yes"
    nobody = cluster.kubectl(
        "auth", "can-i", "list", "secrets", "--as", "system:serviceaccount:default:nobody", check=False
    )
    assert nobody.stdout.strip() == "no"


def test_the_crds_apply_and_become_established(cluster: Cluster, our_crds: list[str]) -> None:
    assert len(our_crds) == len(list(CRDS.glob("*.yaml"))) >= 3
    for name in our_crds:
        crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)


def _expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} has no '# error:' line"
    return first.removeprefix("# error: ")


def test_a_backend_with_both_ai_and_static_is_rejected_with_the_crd_message(
    cluster: Cluster, our_crds: list[str]
) -> None:
    path = INVALID / "backend-two-kinds.yaml"
    message = _expected_error(path)
    assert message == "exactly one of the fields in [ai static mcp a2a] must be set"
    applied = cluster.kubectl("apply", "-f", "-", stdin=path.read_text(), check=False)
    assert applied.returncode != 0
    assert message in applied.stderr, applied.stderr
    missing = cluster.kubectl("get", "agentgatewaybackend", "backend-two-kinds", check=False)
    assert "NotFound" in missing.stderr, missing


def test_every_invalid_example_is_rejected_by_the_apiserver_with_its_message(
    cluster: Cluster, our_crds: list[str]
) -> None:
    paths = sorted(INVALID.glob("*.yaml"))
    assert paths
    out = cluster.kubectl("apply", "--dry-run=server", "-f", str(INVALID), check=False, timeout=50)
    # One error per file, each naming the file: `error when creating "<path>": <message>`.
    errors: dict[str, str] = {}
    for block in re.split(r"\n(?=Error from server)", out.stderr):
        for path in paths:
            if f'"{path}"' in block:
                errors[path.name] = errors.get(path.name, "") + block
    wrong = {}
    for path in paths:
        expected = _expected_error(path)
        got = errors.get(path.name)
        if got is None or expected not in got:
            wrong[path.name] = f"expected {expected!r}, got {got or 'accepted'!r}"
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())


def test_the_seed_manifests_apply_unchanged(cluster: Cluster, our_crds: list[str]) -> None:
    upstream = subprocess.run(
        ["bash", str(SCRIPT), "upstream-crds", "standard"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert upstream.returncode == 0, upstream.stderr
    assert "gateways.gateway.networking.k8s.io" in install_crds(
        cluster, Path(upstream.stdout.splitlines()[-1])
    )

    docs = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    namespaces = {d["metadata"]["namespace"] for d in docs}
    for ns in sorted(namespaces):
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", str(SEED))
    for doc in docs:
        kind = (
            f"{doc['kind'].lower()}.{doc['apiVersion'].split('/')[0]}"
            if "/" in doc["apiVersion"]
            else doc["kind"]
        )
        got = json.loads(
            cluster.kubectl(
                "get", kind, doc["metadata"]["name"], "-n", doc["metadata"]["namespace"], "-o", "json"
            ).stdout
        )
        assert got["metadata"]["uid"]
        if doc["kind"] == "AgentgatewayBackend":
            assert got["spec"] == doc["spec"]
