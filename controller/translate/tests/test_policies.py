"""AgentgatewayPolicy translation: the rules the golden files do not spell out one by one
(quantities, CEL syntax, key entries, Secret data, secrets kept out of statuses, fail-closed
stand-ins, the ancestor limit)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from api.proto.agentgw.v1 import resource_pb2 as pb
from controller import translate
from controller.translate import policies, policyspec, secretdata, tls

GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "agentgateway"},
    "spec": {"controllerName": "agentgateway.dev/agentgateway"},
}


def _gateway(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {
            "gatewayClassName": "agentgateway",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }


def _policy(traffic: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
            "traffic": traffic,
            **spec,
        },
    }


def _secret(name: str, string_data: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", **extra},
        "stringData": string_data,
    }


def _policy_status(out: translate.Output) -> dict[str, Any]:
    return out.statuses[translate.ObjectRef("agentgateway.dev", "AgentgatewayPolicy", "default", "p")]


def _policies(out: translate.Output) -> list[pb.Policy]:
    return [r.policy for rs in out.resources.values() for r in rs if r.WhichOneof("kind") == "policy"]


@pytest.mark.parametrize(
    ("size", "count"),
    [
        (100, 100),
        ("64Ki", 65536),
        ("1M", 1_000_000),
        ("1.5k", 1500),
        ("2e3", 2000),
        ("0.5", 1),
        ("8Gi", 2**32 - 1),
    ],
)
def test_byte_sizes_are_quantities_rounded_up_and_clamped_to_uint32(size: int | str, count: int) -> None:
    assert policyspec.byte_count(size) == count


def test_cel_is_checked_for_syntax_only() -> None:
    assert policyspec.cel_syntax_problem("jwt.sub == 'alice' && unknownFunction(request.path)") is None
    problem = policyspec.cel_syntax_problem("jwt.sub ==")
    assert problem is not None and "Syntax error" in problem and "expecting" not in problem


@pytest.mark.parametrize(
    ("value", "hashed_only", "expected"),
    [
        ("k-1", False, pb.ApiKey(sha256=hashlib.sha256(b"k-1").hexdigest())),
        (
            '{"key": "k-1", "metadata": {"b": 1, "a": 2}}',
            False,
            pb.ApiKey(sha256=hashlib.sha256(b"k-1").hexdigest(), metadata_json='{"a": 2, "b": 1}'),
        ),
        ('{"keyHash": "sha256:' + "AB" * 32 + '"}', True, pb.ApiKey(sha256="ab" * 32)),
        ("k-1", True, "a ConfigMap entry must be a JSON object with keyHash"),
        ('{"key": "k-1"}', True, "keys from a ConfigMap must use keyHash"),
        ('{"key": "k", "keyHash": "sha256:' + "0" * 64 + '"}', False, "exactly one of key or keyHash"),
        ('{"keyHash": "md5:abc"}', False, "keyHash must be sha256: followed by 64 hex digits"),
        ('{"key": "k", "metadata": [1]}', False, "metadata must be a JSON object"),
        ("{not json", False, "not valid JSON"),
        ("", False, "empty value"),
    ],
)
def test_api_key_entries_read_as_agentgateway_reads_them(
    value: str, hashed_only: bool, expected: pb.ApiKey | str
) -> None:
    problem, key = policyspec._key_entry(value, hashed_only)
    if isinstance(expected, str):
        assert key is None and expected in problem
    else:
        assert key == expected


def test_secret_and_config_map_data_are_read_from_every_place_kubernetes_keeps_it() -> None:
    secret = {
        "kind": "Secret",
        "data": {"a": base64.b64encode(b"from-data").decode()},
        "stringData": {"b": "s"},
    }
    assert secretdata.data(secret, "a") == b"from-data" and secretdata.text(secret, "b") == "s"
    assert secretdata.keys(secret) == ["a", "b"] and secretdata.data(secret, "c") is None
    config_map = {
        "kind": "ConfigMap",
        "data": {"a": "plain"},
        "binaryData": {"b": base64.b64encode(b"\x00").decode()},
    }
    assert secretdata.data(config_map, "a") == b"plain" and secretdata.data(config_map, "b") == b"\x00"
    broken = {"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "not*base64"}}
    with pytest.raises(secretdata.Unreadable, match=r"^Secret n/s: k is not valid base64$"):
        secretdata.data(broken, "k")


def test_the_fail_closed_stand_ins_are_well_formed_for_the_proxy() -> None:
    """A zero digest (no known preimage), a `{SHA}` hash of 20 zero bytes, an `.invalid` host."""
    _, _, hashed = policyspec.DENY_ALL_HTPASSWD.partition(":")
    assert hashed.startswith("{SHA}") and base64.b64decode(hashed[5:]) == bytes(20)
    assert policyspec.DENY_ALL_KEY_SHA256 == "0" * 64
    assert policyspec.UNAVAILABLE_HOST.endswith(".invalid")


def test_statuses_name_bad_key_entries_but_never_their_values() -> None:
    marker = "s3cr3t-value"
    out = translate.translate(
        translate.Inputs.from_objects(
            [
                GATEWAY_CLASS,
                _gateway("gw"),
                _secret(
                    "keys", {"bad": f'{{"key": "{marker}", "keyHash": "sha256:x"}}', "odd": f"{{{marker}"}
                ),
                _secret("users", {".htaccess": f"bob:{marker}\nalice:{marker}-too"}),
                _policy(
                    {
                        "apiKeyAuthentication": {"secretRef": {"name": "keys"}},
                        "basicAuthentication": {"secretRef": {"name": "users"}},
                    }
                ),
            ]
        )
    )
    text = repr(_policy_status(out))
    assert "entry bad" in text and "entry odd" in text and "user bob" in text
    assert marker not in text
    [policy] = _policies(out)
    assert [k.sha256 for k in policy.traffic.api_key.keys] == [policyspec.DENY_ALL_KEY_SHA256]
    assert policy.traffic.basic_auth.htpasswd == policyspec.DENY_ALL_HTPASSWD


def test_certificate_problems_name_the_secret_and_key_never_the_pem() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "c", "namespace": "n"},
        "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nnot really\n", "tls.key": "k"},
    }
    with pytest.raises(tls.Invalid) as caught:
        tls.key_pair(secret)
    assert str(caught.value) == "Secret n/c: tls.crt is not a PEM certificate"


def test_the_same_policy_translates_to_the_same_keys_and_bytes() -> None:
    objects = [GATEWAY_CLASS, _gateway("gw"), _policy({"csrf": {}, "timeouts": {"request": "1s"}})]
    one = _policies(translate.translate(translate.Inputs.from_objects(objects)))
    two = _policies(translate.translate(translate.Inputs.from_objects(objects)))
    assert [p.key for p in one] == ["policy/default/p/gateway/default/gw"]
    assert [p.SerializeToString(deterministic=True) for p in one] == [
        p.SerializeToString(deterministic=True) for p in two
    ]


def test_a_policy_reaching_many_gateways_reports_at_most_sixteen_ancestors() -> None:
    gateways = [_gateway(f"gw{i:02}", {"fleet": "a"}) for i in range(20)]
    policy = _policy({"csrf": {}})
    del policy["spec"]["targetRefs"]
    policy["spec"]["targetSelectors"] = [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "matchLabels": {"fleet": "a"}}
    ]
    out = translate.translate(translate.Inputs.from_objects([GATEWAY_CLASS, *gateways, policy]))
    assert len(_policies(out)) == 20
    ancestors = _policy_status(out)["ancestors"]
    assert len(ancestors) == policies.MAX_ANCESTORS
    assert [a["ancestorRef"]["name"] for a in ancestors] == [f"gw{i:02}" for i in range(16)]


def test_a_policy_that_no_longer_parses_keeps_no_resources_and_says_why() -> None:
    policy = _policy({"timeouts": {"request": "1 second"}})
    out = translate.translate(translate.Inputs.from_objects([GATEWAY_CLASS, _gateway("gw"), policy]))
    assert _policies(out) == []
    [summary] = _policy_status(out)["ancestors"]
    assert summary["ancestorRef"] == policies.STATUS_SUMMARY
    accepted, attached = summary["conditions"]
    assert (accepted["reason"], attached["reason"]) == ("Invalid", "Pending")
    assert "spec.traffic.timeouts.request" in accepted["message"]
