"""agentgateway.dev/v1alpha1: the models accept what agentgateway accepts, reject what it rejects
with its messages, and the generated CRDs are structural, documented and up to date.

Data: `testdata/valid/*.yaml` (documents that must validate; non-agentgateway.dev documents in
them, such as the seed's Gateway and HTTPRoute, are skipped) and `testdata/invalid/*.yaml` (one
manifest per file, each with `# error: <substring>` lines that the errors must contain).
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

import api.v1alpha1
from api import errors
from api.v1alpha1 import backend, common, crd, kinds, policy, validation

TESTDATA = pathlib.Path(__file__).parent / "testdata"
CRDS = pathlib.Path(__file__).parents[2] / "crds"


def _valid_documents() -> Iterator[Any]:
    for path in sorted((TESTDATA / "valid").glob("*.yaml")):
        for doc in validation.load_documents(path.read_text()):
            if doc.get("apiVersion") == "agentgateway.dev/v1alpha1":
                yield pytest.param(doc, id=f"{path.stem}/{doc['metadata']['name']}")


def _invalid_files() -> list[pathlib.Path]:
    return sorted((TESTDATA / "invalid").glob("*.yaml"))


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(errors.ConfigError) as caught:
        validation.parse(doc)
    return caught.value.problems


# --------------------------------------------------------------------------------------------
# Valid manifests


def test_seed_openai_backend_validates_with_its_model_and_secret() -> None:
    docs = validation.load_documents((TESTDATA / "valid" / "seed-001-openai.yaml").read_text())
    [doc] = [d for d in docs if d["kind"] == "AgentgatewayBackend"]
    parsed = validation.parse(doc)
    assert isinstance(parsed, backend.AgentgatewayBackend)
    assert parsed.spec.ai is not None and parsed.spec.ai.provider is not None
    assert parsed.spec.ai.provider.openai is not None
    assert parsed.spec.ai.provider.openai.model == "gpt-4o"
    assert parsed.spec.policies is not None and parsed.spec.policies.auth is not None
    assert parsed.spec.policies.auth.secret_ref is not None
    assert parsed.spec.policies.auth.secret_ref.name == "openai-secret"


@pytest.mark.parametrize("doc", list(_valid_documents()))
def test_valid_example_validates(doc: dict[str, Any]) -> None:
    validation.parse(doc)


@pytest.mark.parametrize("doc", list(_valid_documents()))
def test_valid_example_survives_a_dump_and_reparse(doc: dict[str, Any]) -> None:
    parsed = validation.parse(doc)
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert validation.parse(dumped) == parsed


def test_apiserver_defaults_are_model_defaults() -> None:
    parsed = validation.parse_all(
        """
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: b}
spec:
  ai:
    provider:
      vertexai: {projectId: p}
"""
    )[0]
    assert isinstance(parsed, backend.AgentgatewayBackend)
    assert parsed.spec.ai is not None and parsed.spec.ai.provider is not None
    assert parsed.spec.ai.provider.vertexai is not None
    assert parsed.spec.ai.provider.vertexai.region == "global"


# --------------------------------------------------------------------------------------------
# Invalid manifests


def test_every_invalid_example_names_its_expected_error() -> None:
    for path in _invalid_files():
        assert re.search(r"^# error: \S", path.read_text(), re.M), f"{path.name} has no '# error:' line"


@pytest.mark.parametrize("path", _invalid_files(), ids=lambda p: p.stem)
def test_invalid_example_is_rejected_with_agentgateways_message(path: pathlib.Path) -> None:
    text = path.read_text()
    expected = [
        line.removeprefix("# error:").strip() for line in text.splitlines() if line.startswith("# error:")
    ]
    [doc] = validation.load_documents(text)
    got = "\n".join(_problems(doc))
    for message in expected:
        assert message in got


def test_duration_minimum_is_exact_at_the_boundary() -> None:
    rule = common.min_duration("100ms", "connectTimeout must be at least 100ms")
    assert rule.holds("100ms") and rule.holds("1s") and rule.holds("1m0s")
    assert not rule.holds("99ms") and not rule.holds("0s")


def test_every_failed_rule_of_one_object_is_reported() -> None:
    problems = _problems(
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayBackend",
            "spec": {
                "static": {"host": "h", "port": 1},
                "policies": {"tls": {}},
                "a2a": {"host": "h", "port": 1},
            },
        }
    )
    assert problems == [
        'spec: Invalid value: "object": exactly one of the fields in [ai static mcp a2a] must be set'
    ]
    problems = _problems(
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayPolicy",
            "spec": {
                "targetRefs": [
                    {"group": "gateway.kgateway.dev", "kind": "Backend", "name": "f1"},
                    {"group": "", "kind": "Service", "name": "s2"},
                ],
                "backend": {"http": {"requestTimeout": "1s"}},
            },
        }
    )
    assert [p.split(": ", 3)[3] for p in problems] == [
        "targetRefs may only reference Gateway, HTTPRoute, GRPCRoute, ListenerSet, Service, "
        "AgentgatewayBackend, or InferencePool resources",
        "Only one Kind of targetRef can be set on one policy",
    ]


def test_unknown_kind_and_api_version_are_rejected() -> None:
    assert _problems({"apiVersion": "agentgateway.dev/v1", "kind": "AgentgatewayBackend"}) == [
        'apiVersion: Unsupported value: "agentgateway.dev/v1"'
    ]
    assert (
        "AgentgatewayModel"
        in _problems({"apiVersion": "agentgateway.dev/v1alpha1", "kind": "AgentgatewayModel"})[0]
    )


# --------------------------------------------------------------------------------------------
# Generated CRDs

_FORBIDDEN_KEYWORDS = {"$ref", "$defs", "definitions", "allOf", "oneOf", "not", "const", "title", "nullable"}


def _structural_problems(node: dict[str, Any], path: str) -> Iterator[str]:
    """The apiserver's structural-schema rules that our generator could break, as messages."""
    for key in _FORBIDDEN_KEYWORDS & node.keys():
        yield f"{path}: forbidden keyword {key}"
    if "anyOf" in node and node["anyOf"] != [{"type": "integer"}, {"type": "string"}]:
        yield f"{path}: anyOf is only allowed for int-or-string"
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not untyped_ok:
        yield f"{path}: no type"
    if "properties" in node and node.get("type") != "object":
        yield f"{path}: properties without type object"
    if "properties" in node and "additionalProperties" in node:
        yield f"{path}: properties and additionalProperties together"
    if node.get("type") == "array" and "items" not in node:
        yield f"{path}: array without items"
    if node.get("default", 0) is None:
        yield f"{path}: null default"
    if node.get("x-kubernetes-list-type") == "map":
        item = node["items"]
        for key in node.get("x-kubernetes-list-map-keys", []):
            if key not in item.get("required", []) and "default" not in item["properties"][key]:
                yield f"{path}: list map key {key} is neither required nor defaulted"
    for rule in node.get("x-kubernetes-validations", []):
        if set(rule) != {"rule", "message"}:
            yield f"{path}: validation rule needs exactly rule and message"
        yield from _cel_field_problems(node, rule["rule"], path)
    for name, child in node.get("properties", {}).items():
        if not child.get("description"):
            yield f"{path}.{name}: no description"
        yield from _structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _structural_problems(node["additionalProperties"], f"{path}{{}}")


def _cel_field_problems(node: dict[str, Any], rule: str, path: str) -> Iterator[str]:
    """Every `self.a.b` in a rule on an object names fields that exist (CEL would not compile)."""
    if node.get("type") != "object":
        return
    for chain in re.findall(r"\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", rule):
        current = node
        for name in chain.lstrip(".").split("."):
            if current.get("type") != "object":
                break
            if name not in current.get("properties", {}):
                yield f"{path}: rule names unknown field self{chain}"
                break
            current = current["properties"][name]


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.__name__)
def test_generated_crd_is_structural_and_documented(kind: type[Any]) -> None:
    schema = crd.definition(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems = list(_structural_problems(schema["properties"]["spec"], "spec"))
    problems += list(_structural_problems(schema["properties"]["status"], "status"))
    assert problems == []


def test_structural_checker_catches_what_it_should() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "x"},
            "b": {"$ref": "#/$defs/B"},
            "c": {"properties": {}, "description": "x"},
        },
        "x-kubernetes-validations": [{"rule": "has(self.d)", "message": "m"}],
    }
    problems = list(_structural_problems(bad, "spec"))
    assert any("anyOf" in p for p in problems)
    assert any("forbidden keyword $ref" in p for p in problems)
    assert any("spec.b: no description" in p for p in problems)
    assert any("properties without type object" in p for p in problems)
    assert any("unknown field self.d" in p for p in problems)


def test_checked_in_crds_equal_fresh_generation() -> None:
    generated = crd.files()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("agentgateway.dev_*.yaml")}
    assert sorted(on_disk) == sorted(generated), "run: .venv/bin/python hack/gen_crds.py"
    for name, text in generated.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run .venv/bin/python hack/gen_crds.py"


def test_crd_carries_agentgateways_names_columns_and_status_subresource() -> None:
    definition = crd.definition(policy.AgentgatewayPolicy)
    names = definition["spec"]["names"]
    assert (names["plural"], names["shortNames"], names["categories"]) == (
        "agentgatewaypolicies",
        ["agpol"],
        ["agentgateway"],
    )
    version = definition["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Accepted", "Attached", "Age"]
    assert version["subresources"] == {"status": {}}
    assert (version["served"], version["storage"], definition["spec"]["scope"]) == (True, True, "Namespaced")
    assert definition["metadata"]["labels"]["gateway.networking.k8s.io/policy"] == "Direct"


def test_model_rules_and_crd_rules_are_the_same_rules() -> None:
    schema = crd.schema_of(backend.LLMProvider)
    assert schema["x-kubernetes-validations"] == [r.cel() for r in backend.LLMProvider.__rules__]


def test_public_names() -> None:
    assert sorted(api.v1alpha1.__all__) == [
        "ALL",
        "AgentgatewayBackend",
        "AgentgatewayParameters",
        "AgentgatewayPolicy",
        "BY_KIND",
        "parse",
        "parse_all",
    ]
