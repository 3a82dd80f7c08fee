"""Strategic-merge overlays and field-by-field parameter merging."""

from __future__ import annotations

from typing import Any

import pytest

from controller.deployer import merge

POD = {
    "containers": [{"name": "proxy", "image": "a", "env": [{"name": "A", "value": "1"}]}],
    "tolerations": [{"key": "k", "operator": "Exists"}],
    "nodeSelector": {"zone": "a"},
}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"containers": [{"name": "proxy", "image": "b"}]},
            {**POD, "containers": [{**POD["containers"][0], "image": "b"}]},
        ),
        (
            {"containers": [{"name": "sidecar", "image": "s"}]},
            {**POD, "containers": [*POD["containers"], {"name": "sidecar", "image": "s"}]},
        ),
        ({"containers": [{"name": "proxy", "$patch": "delete"}]}, {**POD, "containers": []}),
        ({"nodeSelector": None}, {k: v for k, v in POD.items() if k != "nodeSelector"}),
        ({"nodeSelector": {"$patch": "delete"}}, {k: v for k, v in POD.items() if k != "nodeSelector"}),
        ({"nodeSelector": {"$patch": "replace", "disk": "ssd"}}, {**POD, "nodeSelector": {"disk": "ssd"}}),
        ({"nodeSelector": {"disk": "ssd"}}, {**POD, "nodeSelector": {"zone": "a", "disk": "ssd"}}),
        (
            {"tolerations": [{"$patch": "replace"}, {"key": "x", "operator": "Exists"}]},
            {**POD, "tolerations": [{"key": "x", "operator": "Exists"}]},
        ),
        (
            {"tolerations": [{"key": "k", "effect": "NoSchedule"}]},
            {**POD, "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]},
        ),
        ({"args": ["x"]}, {**POD, "args": ["x"]}),
    ],
    ids=[
        "container merged by name", "new container appended", "container deleted", "null deletes a key",
        "$patch delete on a map", "$patch replace on a map", "maps merge", "$patch replace on a list",
        "tolerations merge by key", "new list added",
    ],
)  # fmt: skip
def test_strategic_merge(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge.strategic_merge(POD, patch) == expected


def test_nested_env_merges_by_name_inside_a_merged_container() -> None:
    patch = {
        "containers": [{"name": "proxy", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]}]
    }
    got = merge.strategic_merge(POD, patch)
    assert got["containers"][0]["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]


def test_a_list_without_merge_key_is_replaced() -> None:
    assert merge.strategic_merge({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


def test_inputs_are_not_mutated() -> None:
    target = {"a": {"b": [1]}, "containers": [{"name": "x"}]}
    merge.strategic_merge(target, {"a": {"c": 1}, "containers": [{"name": "x", "image": "i"}]})
    assert target == {"a": {"b": [1]}, "containers": [{"name": "x"}]}


def test_merge_fields_recurses_into_maps_and_replaces_other_values() -> None:
    base = {"requests": {"cpu": "1", "memory": "1Gi"}, "claims": [{"name": "a"}]}
    override = {"requests": {"memory": "2Gi"}, "claims": [{"name": "b"}]}
    assert merge.merge_fields(base, override) == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "claims": [{"name": "b"}],
    }
