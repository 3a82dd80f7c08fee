"""The deployer's objects for one Gateway: shapes, parameters, owners, names, and one golden case.

`REFRESH_GOLDEN=1` rewrites testdata/*-out.yaml from the renderer.
"""

from __future__ import annotations

import copy
import os
import pathlib
from typing import Any

import pytest
import yaml

from controller import deployer
from controller.deployer import names

TESTDATA = pathlib.Path(__file__).parent / "testdata"
SETTINGS = deployer.DeployerSettings(
    image_registry="ghcr.io", image_repository="agentgw/agentgw", image_tag="0.1.0",
    xds_address="agentgw.agentgw-system.svc:9978",
)  # fmt: skip

SEED_CLASS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "agentgateway-v2"},
    "spec": {"controllerName": "agentgateway.dev/agentgateway"},
}
SEED_GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "agentgateway-proxy", "namespace": "agentgateway-system", "uid": "uid-1"},
    "spec": {
        "gatewayClassName": "agentgateway-v2",
        "listeners": [
            {"protocol": "HTTP", "port": 80, "name": "http", "allowedRoutes": {"namespaces": {"from": "All"}}}
        ],
    },
}


def params(name: str, spec: dict[str, Any], namespace: str = "agentgateway-system") -> dict[str, Any]:
    return {
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayParameters",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def class_with_params(name: str = "class-params") -> dict[str, Any]:
    gwc = copy.deepcopy(SEED_CLASS)
    gwc["spec"]["parametersRef"] = {
        "group": "agentgateway.dev", "kind": "AgentgatewayParameters",
        "name": name, "namespace": "agentgateway-system",
    }  # fmt: skip
    return gwc


def gateway_with(infrastructure: dict[str, Any]) -> dict[str, Any]:
    gw = copy.deepcopy(SEED_GATEWAY)
    gw["spec"]["infrastructure"] = infrastructure
    return gw


GW_REF = {
    "parametersRef": {"group": "agentgateway.dev", "kind": "AgentgatewayParameters", "name": "gw-params"}
}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def proxy_container(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    container: dict[str, Any] = by_kind(objects)[kind]["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --------------------------------------------------------------------------------------------
# The seed Gateway


def test_the_seed_gateway_renders_four_objects_in_apply_order() -> None:
    objects = deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS)
    assert [o["kind"] for o in objects] == ["ServiceAccount", "ConfigMap", "Deployment", "Service"]
    assert {o["metadata"]["name"] for o in objects} == {"agentgateway-proxy"}
    assert {o["metadata"]["namespace"] for o in objects} == {"agentgateway-system"}


def test_the_listener_port_is_on_the_service_and_the_container() -> None:
    objects = by_kind(deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS))
    svc = objects["Service"]["spec"]
    assert svc["type"] == "LoadBalancer"
    assert svc["ports"] == [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]
    ports = proxy_container(list(objects.values()))["ports"]
    assert [p["containerPort"] for p in ports] == [80, 15020, 15021]


def test_the_proxy_finds_the_controller_and_names_its_gateway() -> None:
    env = env_of(proxy_container(deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS)))
    assert env["XDS_ADDRESS"] == "agentgw.agentgw-system.svc:9978"
    assert env["NAMESPACE"] == "agentgateway-system"
    assert env["GATEWAY"] == "agentgateway-proxy"


def test_the_config_map_holds_the_operator_addresses_and_is_mounted() -> None:
    objects = deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS)
    config = yaml.safe_load(by_kind(objects)["ConfigMap"]["data"]["config.yaml"])
    assert config == {
        "config": {
            "adminAddr": "127.0.0.1:15000",
            "statsAddr": "0.0.0.0:15020",
            "readinessAddr": "0.0.0.0:15021",
        }
    }
    container = proxy_container(objects)
    assert container["command"] == ["agentgw-proxy"]
    assert container["args"] == ["-f", "/etc/agentgw/config.yaml"]
    assert {"name": "config", "mountPath": "/etc/agentgw", "readOnly": True} in container["volumeMounts"]


def test_listeners_sharing_a_port_give_one_service_port_named_after_the_first() -> None:
    gw = copy.deepcopy(SEED_GATEWAY)
    gw["spec"]["listeners"] = [
        {"name": "a", "port": 8080, "protocol": "HTTP", "hostname": "a.example"},
        {"name": "b", "port": 8080, "protocol": "HTTP", "hostname": "b.example"},
        {"name": "c", "port": 9090, "protocol": "HTTP"},
    ]
    svc = by_kind(deployer.render(gw, SEED_CLASS, [], SETTINGS))["Service"]
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("a", 8080), ("c", 9090)]


def test_every_object_is_owned_by_the_gateway_as_controller() -> None:
    for obj in deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS):
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "name": "agentgateway-proxy", "uid": "uid-1", "controller": True, "blockOwnerDeletion": True,
            }
        ], obj["kind"]  # fmt: skip


def test_a_gateway_without_uid_is_refused() -> None:
    gw = copy.deepcopy(SEED_GATEWAY)
    del gw["metadata"]["uid"]
    with pytest.raises(ValueError, match="uid"):
        deployer.render(gw, SEED_CLASS, [], SETTINGS)


def test_the_deployment_selects_its_pods_by_gateway() -> None:
    dep = by_kind(deployer.render(SEED_GATEWAY, SEED_CLASS, [], SETTINGS))["Deployment"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector["gateway.networking.k8s.io/gateway-name"] == "agentgateway-proxy"
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["spec"]["replicas"] == 1


# --------------------------------------------------------------------------------------------
# Parameters


def test_class_and_gateway_parameters_merge_with_the_gateway_winning_field_by_field() -> None:
    class_params = params("class-params", {
        "image": {"registry": "r.example", "repository": "class/proxy", "tag": "1.0"},
        "logging": {"level": "debug", "format": "json"},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    })  # fmt: skip
    gw_params = params("gw-params", {
        "image": {"tag": "2.0", "pullPolicy": "Always"},
        "logging": {"level": "warn"},
        "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    })  # fmt: skip
    objects = deployer.render(gateway_with(GW_REF), class_with_params(), [class_params, gw_params], SETTINGS)
    container = proxy_container(objects)
    assert container["image"] == "r.example/class/proxy:2.0"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    config = yaml.safe_load(by_kind(objects)["ConfigMap"]["data"]["config.yaml"])["config"]
    assert config["logging"] == {"level": "warn", "format": "json"}


def test_env_from_parameters_is_appended_and_replaces_generated_names() -> None:
    class_params = params(
        "class-params", {"env": [{"name": "A", "value": "class"}, {"name": "B", "value": "b"}]}
    )
    gw_params = params(
        "gw-params", {"env": [{"name": "A", "value": "gw"}, {"name": "GATEWAY", "value": "x"}]}
    )
    objects = deployer.render(gateway_with(GW_REF), class_with_params(), [class_params, gw_params], SETTINGS)
    names_in_order = [e["name"] for e in proxy_container(objects)["env"]]
    assert names_in_order[-2:] == ["A", "B"]
    env = env_of(proxy_container(objects))
    assert (env["A"], env["B"], env["GATEWAY"]) == ("gw", "b", "x")


def test_the_image_digest_pins_the_image() -> None:
    gw_params = params("gw-params", {"image": {"digest": "sha256:abc"}})
    container = proxy_container(deployer.render(gateway_with(GW_REF), SEED_CLASS, [gw_params], SETTINGS))
    assert container["image"] == "ghcr.io/agentgw/agentgw@sha256:abc"


def test_shutdown_sets_the_grace_period_and_the_proxy_deadlines() -> None:
    gw_params = params("gw-params", {"shutdown": {"min": 5, "max": 90}})
    objects = by_kind(deployer.render(gateway_with(GW_REF), SEED_CLASS, [gw_params], SETTINGS))
    assert objects["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90
    config = yaml.safe_load(objects["ConfigMap"]["data"]["config.yaml"])["config"]
    assert (config["connectionMinTerminationDeadline"], config["connectionTerminationDeadline"]) == (
        "5s",
        "90s",
    )


def test_a_config_change_changes_the_pod_template_checksum() -> None:
    def checksum(objects: list[dict[str, Any]]) -> str:
        value: str = by_kind(objects)["Deployment"]["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    plain = deployer.render(gateway_with(GW_REF), SEED_CLASS, [params("gw-params", {})], SETTINGS)
    debug = deployer.render(
        gateway_with(GW_REF), SEED_CLASS, [params("gw-params", {"logging": {"level": "debug"}})], SETTINGS
    )
    assert checksum(plain) != checksum(debug)


def test_overlays_apply_class_first_then_gateway() -> None:
    class_params = params("class-params", {
        "deployment": {"metadata": {"labels": {"team": "class", "tier": "edge"}}, "spec": {"replicas": 2}},
        "service": {"spec": {"type": "ClusterIP"}},
    })  # fmt: skip
    gw_params = params("gw-params", {
        "deployment": {
            "metadata": {"labels": {"team": "gw"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "agentgw-proxy", "env": [{"name": "EXTRA", "value": "1"}]},
            ]}}},
        },
    })  # fmt: skip
    objects = by_kind(
        deployer.render(gateway_with(GW_REF), class_with_params(), [class_params, gw_params], SETTINGS)
    )
    dep = objects["Deployment"]
    assert dep["spec"]["replicas"] == 3
    assert (dep["metadata"]["labels"]["team"], dep["metadata"]["labels"]["tier"]) == ("gw", "edge")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["EXTRA"] == "1"
    assert env_of(container)["XDS_ADDRESS"] == SETTINGS.xds_address
    assert objects["Service"]["spec"]["type"] == "ClusterIP"


def test_daemonset_workload_and_pdb_and_hpa_overlays() -> None:
    ds = params(
        "gw-params",
        {"workload": {"kind": "DaemonSet"}, "podDisruptionBudget": {"spec": {"maxUnavailable": 1}}},
    )
    kinds = [o["kind"] for o in deployer.render(gateway_with(GW_REF), SEED_CLASS, [ds], SETTINGS)]
    assert kinds == ["ServiceAccount", "ConfigMap", "DaemonSet", "Service", "PodDisruptionBudget"]
    hpa = params("gw-params", {"horizontalPodAutoscaler": {"spec": {"minReplicas": 2, "maxReplicas": 5}}})
    objects = by_kind(deployer.render(gateway_with(GW_REF), SEED_CLASS, [hpa], SETTINGS))
    assert "replicas" not in objects["Deployment"]["spec"]
    assert objects["HorizontalPodAutoscaler"]["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agentgateway-proxy"},
        "minReplicas": 2, "maxReplicas": 5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("gateway_class", "gateway", "parameters", "message"),
    [
        (SEED_CLASS, gateway_with(GW_REF), [], "agentgateway-system/gw-params not found"),
        (
            SEED_CLASS,
            gateway_with({"parametersRef": {"group": "", "kind": "ConfigMap", "name": "x"}}),
            [],
            "must be agentgateway.dev/AgentgatewayParameters, not core/ConfigMap",
        ),
        (
            SEED_CLASS,
            gateway_with(GW_REF),
            [params("gw-params", {"shutdown": {"min": 9, "max": 1}})],
            "is invalid",
        ),
        (
            class_with_params(),
            gateway_with(GW_REF),
            [
                params("class-params", {"deployment": {"spec": {}}}),
                params("gw-params", {"workload": {"kind": "DaemonSet"}}),
            ],
            "deployment overlay does not apply to workload kind DaemonSet",
        ),
        (SEED_CLASS, gateway_with(GW_REF), [params("gw-params", {}, namespace="other")], "not found"),
    ],
    ids=[
        "missing",
        "wrong kind",
        "fails validation",
        "overlay for the other workload kind",
        "other namespace",
    ],
)
def test_unusable_parameters_raise_invalid_parameters(
    gateway_class: dict[str, Any], gateway: dict[str, Any], parameters: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(deployer.InvalidParameters, match=message):
        deployer.render(gateway, gateway_class, parameters, SETTINGS)


# --------------------------------------------------------------------------------------------
# Infrastructure propagation and names


def test_infrastructure_labels_and_annotations_reach_every_object_and_the_pods() -> None:
    gw = gateway_with({
        "labels": {"cost-center": "42", "app.kubernetes.io/name": "mine"},
        "annotations": {"example.com/owner": "team-a"},
    })  # fmt: skip
    objects = deployer.render(gw, SEED_CLASS, [], SETTINGS)
    for obj in objects:
        assert obj["metadata"]["labels"]["cost-center"] == "42"
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "agentgw-proxy", "ours win"
        assert obj["metadata"]["annotations"] == {"example.com/owner": "team-a"}
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["metadata"]
    assert pod["labels"]["cost-center"] == "42"
    assert pod["annotations"]["example.com/owner"] == "team-a"


def test_a_long_gateway_name_is_cut_to_63_characters_with_a_stable_hash_suffix() -> None:
    gw = copy.deepcopy(SEED_GATEWAY)
    gw["metadata"]["name"] = "a" * 70
    objects = deployer.render(gw, SEED_CLASS, [], SETTINGS)
    name = objects[0]["metadata"]["name"]
    assert len(name) == 63
    assert name == names.object_name("a" * 70)
    assert name.startswith("a" * 54 + "-")
    assert {o["metadata"]["name"] for o in objects} == {name}
    assert all(len(v) <= 63 for o in objects for v in o["metadata"]["labels"].values())
    assert {"name": "GATEWAY", "value": "a" * 70} in proxy_container(objects)["env"]


@pytest.mark.parametrize(
    ("gateway_name", "expected"),
    [
        ("gw", "gw"),
        ("a" * 63, "a" * 63),
        ("my.gateway", f"my-gateway-{names._digest('my.gateway')}"),
        ("1st", f"gw-1st-{names._digest('1st')}"),
    ],
)
def test_object_names_are_dns_labels(gateway_name: str, expected: str) -> None:
    assert names.object_name(gateway_name) == expected


def test_different_long_names_with_a_common_prefix_do_not_collide() -> None:
    assert names.object_name("x" * 64 + "1") != names.object_name("x" * 64 + "2")


# --------------------------------------------------------------------------------------------
# Golden


@pytest.mark.parametrize("case", sorted(p.stem for p in TESTDATA.glob("*-in.yaml")))
def test_golden(case: str) -> None:
    docs = list(yaml.safe_load_all((TESTDATA / f"{case}.yaml").read_text()))
    gateway = next(d for d in docs if d["kind"] == "Gateway")
    gateway_class = next((d for d in docs if d["kind"] == "GatewayClass"), None)
    parameters = [d for d in docs if d["kind"] == "AgentgatewayParameters"]
    got = yaml.safe_dump_all(deployer.render(gateway, gateway_class, parameters, SETTINGS), sort_keys=False)
    out = TESTDATA / f"{case.removesuffix('-in')}-out.yaml"
    if os.environ.get("REFRESH_GOLDEN"):
        out.write_text(got)
    assert got == out.read_text()
