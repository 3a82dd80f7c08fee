"""agentgateway.dev/v1alpha1: the models accept what agentgateway accepts, reject what it rejects
with its messages, and the generated CRDs are structural, documented and up to date.

Data: `testdata/valid/*.yaml` (documents that must validate; non-agentgateway.dev documents in
them, such as the seed's Gateway and HTTPRoute, are skipped) and `testdata/invalid/*.yaml` (one
manifest per file, each with `# error: <substring>` lines that the errors must contain).
"""

from __future__ import annotations

import pathlib
import re
import typing
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from cel_expr_python import cel

import api.v1alpha1
from api import errors
from api.v1alpha1 import backend, base, common, crd, kinds, policy, validation

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


# --------------------------------------------------------------------------------------------
# CEL rules: they compile, and they agree with their Python checks

_CEL = cel.NewEnv(variables={"self": cel.Type.DYN})


def _rules(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            yield rule["rule"]
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.__name__)
def test_every_crd_rule_is_valid_cel(kind: type[Any]) -> None:
    bad = []
    for rule in _rules(crd.definition(kind)):
        try:
            _CEL.compile(rule, disable_check=True)
        except RuntimeError as exc:
            bad.append(f"{rule}: {exc}")
    assert bad == []


def _model_rules(obj: Any, path: str) -> Iterator[tuple[str, base.Rule, pydantic.BaseModel]]:
    """Every object rule of every model inside `obj`, with the object's path."""
    if isinstance(obj, base.Model):
        for rule in type(obj).__rules__:
            yield path, rule, obj
        for name, field in type(obj).model_fields.items():
            yield from _model_rules(getattr(obj, name), f"{path}.{field.alias or name}")
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from _model_rules(item, f"{path}[{i}]")


@pytest.mark.parametrize("doc", list(_valid_documents()))
def test_the_crd_rules_hold_on_every_valid_example_as_cel_evaluates_them(doc: dict[str, Any]) -> None:
    parsed = validation.parse(doc)
    for path, rule, obj in _model_rules(parsed, "spec"):
        value = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert _CEL.compile(rule.rule).eval(data={"self": value}).plain_value() is True, (path, rule.rule)


@pytest.mark.parametrize(
    ("model", "value", "message"),
    [
        (policy.RemoteJWKS, {"backendRef": {"name": "idp", "port": 80}}, "jwksPath is required"),
        (policy.RemoteJWKS, {"url": "https://idp/jwks", "jwksPath": "x"}, "jwksPath may not be set"),
        (policy.ExtAuth, {"url": "http://authz/check", "grpc": {}}, "url path is only valid with http"),
        (
            policy.ExtAuth,
            {"url": "http://authz/check", "http": {"path": "request.path"}},
            "http.path may not be set when url includes a path",
        ),
        (policy.ExtAuth, {"http": {}}, "exactly one of backendRef or url must be set"),
        (policy.GlobalRateLimit, {"url": "http://rls/x", "domain": "d", "descriptors": []}, "url must not"),
        (policy.BackendObjectReference, {"group": "", "kind": "Service", "name": "s"}, "Must have port"),
        (policy.Traffic, {"phase": "PreRouting", "csrf": {}}, "phase PreRouting only supports"),
    ],
)
def test_a_failing_rule_fails_in_cel_and_in_python_alike(
    model: type[base.Model], value: dict[str, Any], message: str
) -> None:
    [rule] = [r for r in model.__rules__ if message in r.message]
    assert _CEL.compile(rule.rule).eval(data={"self": value}).plain_value() is False
    assert not rule.holds(model.model_construct(**_attributes_of(model, value)))


def _attributes_of(model: type[base.Model], value: dict[str, Any]) -> dict[str, Any]:
    """`value`'s keys as attribute names (the Python checks read attributes; nested dicts stay)."""
    by_alias = {(f.alias or n): n for n, f in model.model_fields.items()}
    out: dict[str, Any] = {n: None for n in model.model_fields}
    for key, item in value.items():
        field = model.model_fields[by_alias[key]]
        nested = _nested_model(field.annotation)
        out[by_alias[key]] = (
            nested.model_construct(**_attributes_of(nested, item))
            if nested is not None and isinstance(item, dict)
            else item
        )
    return out


def _nested_model(annotation: Any) -> type[base.Model] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, base.Model):
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Security policies


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


def test_authentication_modes_and_the_authorization_action_default_as_agentgateways_crd_does() -> None:
    parsed = validation.parse(
        _policy(
            {
                "jwtAuthentication": {"providers": [{"issuer": "i", "jwks": {"inline": "{}"}}]},
                "apiKeyAuthentication": {"secretRef": {"name": "keys"}},
                "basicAuthentication": {"users": ["a:{SHA}x"]},
                "authorization": {"policy": {"matchExpressions": ["true"]}},
            }
        )
    )
    assert isinstance(parsed, policy.AgentgatewayPolicy) and parsed.spec.traffic is not None
    traffic = parsed.spec.traffic
    assert traffic.jwt_authentication is not None and traffic.jwt_authentication.mode == "Strict"
    assert traffic.api_key_authentication is not None and traffic.api_key_authentication.mode == "Strict"
    assert traffic.basic_authentication is not None and traffic.basic_authentication.mode == "Strict"
    assert traffic.authorization is not None and traffic.authorization.action == "Allow"
    schema = crd.schema_of(policy.Traffic)["properties"]
    assert schema["jwtAuthentication"]["properties"]["mode"]["default"] == "Strict"
    assert schema["authorization"]["properties"]["action"]["default"] == "Allow"


def test_a_bad_authentication_mode_is_named_with_the_supported_values() -> None:
    problems = _problems(
        _policy({"apiKeyAuthentication": {"mode": "Lenient", "secretRef": {"name": "keys"}}})
    )
    assert problems == [
        'spec.traffic.apiKeyAuthentication.mode: Unsupported value: "Lenient": '
        'supported values: "Strict", "Optional", "Permissive"'
    ]


def test_target_refs_and_target_selectors_together_are_rejected() -> None:
    doc = _policy({"csrf": {}})
    doc["spec"]["targetSelectors"] = [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "matchLabels": {"a": "b"}}
    ]
    assert _problems(doc) == [
        'spec: Invalid value: "object": exactly one of the fields in [targetRefs targetSelectors] must be set'
    ]


def test_the_rate_limit_field_named_global_reads_and_writes_as_global() -> None:
    doc = _policy(
        {
            "rateLimit": {
                "global": {
                    "url": "http://rls:8081",
                    "domain": "d",
                    "descriptors": [{"entries": [{"name": "ip", "expression": "source.address"}]}],
                }
            }
        }
    )
    parsed = validation.parse(doc)
    assert isinstance(parsed, policy.AgentgatewayPolicy) and parsed.spec.traffic is not None
    assert parsed.spec.traffic.rate_limit is not None and parsed.spec.traffic.rate_limit.global_ is not None
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["spec"]["traffic"]["rateLimit"]["global"]["domain"] == "d"


def test_fields_agentgw_does_not_implement_are_unknown_fields() -> None:
    doc = _policy(
        {
            "extAuth": {
                "backendRef": {"name": "authz", "port": 9000},
                "http": {"body": "request.body"},
                "cache": {"key": ["request.path"], "ttl": "5m"},
            }
        }
    )
    assert sorted(_problems(doc)) == [
        'unknown field "spec.traffic.extAuth.cache"',
        'unknown field "spec.traffic.extAuth.http.body"',
    ]
