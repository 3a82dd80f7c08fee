"""The translator's contract: pure, deterministic, and the small rules the golden files do not
spell out one by one (selectors, retries, durations, Inputs sorting)."""

from __future__ import annotations

import ast
import copy
import datetime
import pathlib

import pytest

from api.gateway import v1 as gw
from api.v1alpha1 import validation
from controller import translate
from controller.translate import filters, refs
from controller.translate.tests import golden

SEED = golden.TESTDATA / "seed" / "seed-001-openai.yaml"


def _seed_inputs() -> translate.Inputs:
    return golden.inputs(SEED, golden.split(SEED.read_text())[0])


def test_the_same_inputs_give_the_same_output_and_are_not_modified() -> None:
    inputs = _seed_inputs()
    before = copy.deepcopy(inputs)
    one, two = translate.translate(inputs), translate.translate(inputs)
    assert inputs == before
    assert golden.render(one) == golden.render(two)


def test_the_clock_stamps_every_condition() -> None:
    now = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    out = translate.translate(_seed_inputs(), now)
    gateway = out.statuses[
        translate.ObjectRef(gw.GROUP, "Gateway", "agentgateway-system", "agentgateway-proxy")
    ]
    assert {c["lastTransitionTime"] for c in gateway["conditions"]} == {"2025-03-04T05:06:07Z"}


def test_the_seed_routes_to_an_openai_backend_with_the_key_from_the_secret() -> None:
    out = translate.translate(_seed_inputs())
    resources = out.resources[translate.GatewayKey("agentgateway-system", "agentgateway-proxy")]
    (backend,) = [r.backend for r in resources if r.WhichOneof("kind") == "backend"]
    assert backend.ai.openai.model == "gpt-4o"
    assert backend.ai.auth.key == "$OPENAI_API_KEY"


def test_inputs_refuse_a_kind_the_translator_does_not_read() -> None:
    with pytest.raises(ValueError, match="TCPRoute"):
        translate.Inputs.from_objects([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TCPRoute"}])


def test_gateways_of_classes_with_another_controller_name_are_left_alone() -> None:
    docs = validation.load_documents(golden.split(SEED.read_text())[0])
    out = translate.translate(translate.Inputs.from_objects(docs, controller_name="example.com/mine"))
    assert out.resources == {}
    assert {ref.kind for ref in out.statuses} == {"AgentgatewayBackend"}


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, {"env": "prod"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "Sideways"}]}, {"env": "x"}, False),
    ],
)
def test_label_selectors_select_as_kubernetes_does(
    selector: dict[str, object], labels: dict[str, str], selected: bool
) -> None:
    assert refs.selects(gw.LabelSelector.model_validate(selector), labels) is selected


@pytest.mark.parametrize(
    ("retry", "attempts"),
    [({"attempts": 3}, 4), ({}, 2), ({"attempts": 0}, None), ({"attempts": 1000}, 255)],
)
def test_retry_attempts_count_retries_and_the_proxy_counts_tries(
    retry: dict[str, int], attempts: int | None
) -> None:
    rule = gw.HTTPRouteRule.model_validate({"retry": retry})
    policy, _ = filters.traffic_policy(rule, "spec.rules[0]", lambda ref: pytest.fail("no mirrors"))
    assert (policy.retry.attempts if policy is not None else None) == attempts


@pytest.mark.parametrize(
    ("text", "ms"), [("10s", 10_000), ("1m30s", 90_000), ("250ms", 250), ("1h", 3_600_000)]
)
def test_gateway_api_durations_become_protobuf_durations(text: str, ms: int) -> None:
    d = filters.duration(text, "x")
    assert d is not None and d.ToMilliseconds() == ms


def test_a_zero_duration_means_no_timeout_and_a_malformed_one_is_unsupported() -> None:
    assert filters.duration("0s", "x") is None
    with pytest.raises(filters.Unsupported, match=r"x: invalid duration '1\.5s'"):
        filters.duration("1.5s", "x")


_ALLOWED_IMPORTS = {
    "__future__",
    "ast",
    "base64",
    "binascii",
    "cel_expr_python",
    "collections",
    "cryptography",
    "dataclasses",
    "datetime",
    "decimal",
    "functools",
    "hashlib",
    "json",
    "re",
    "typing",
    "urllib",
    "pydantic",
    "google",
    "api",
    "controller",
}


def test_the_translator_imports_nothing_that_does_io_or_asyncio() -> None:
    package = pathlib.Path(translate.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in _ALLOWED_IMPORTS, f"{path.name} imports {name}"
                assert not name.startswith(("controller.xds", "controller.k8s", "dataplane")), name
