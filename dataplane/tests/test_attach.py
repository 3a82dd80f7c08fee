"""Policy attachment: field-by-field precedence across gateway, listener and route, as a table."""

from __future__ import annotations

import pytest

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane.config import attach


def _src(
    key: str, *, override: bool = False, order: tuple[int, int, str] | None = None, **fields: str
) -> attach.Source:
    """A source whose fields are CSRF origins or authorization rules tagged with `key`."""
    p = pb.TrafficPolicy()
    for field in fields:
        if field == "csrf":
            p.csrf.additional_origins.append(key)
        elif field == "authorization":
            p.authorization.rules.append(pb.AuthorizationRule(expression=key))
        elif field == "cors":
            p.cors.allow_origins.append(key)
    return attach.Source(key=key, policy=p, override=override, order=order or (1, 0, key))


CASES = [
    (
        "the route's value wins over the listener's and the gateway's",
        [[_src("gw", csrf="")], [_src("lis", csrf="")], [_src("route", csrf="")]],
        {"csrf": "route"},
    ),
    (
        "a field only the listener sets is inherited by the route",
        [[], [_src("lis", cors="")], [_src("route", csrf="")]],
        {"cors": "lis", "csrf": "route"},
    ),
    (
        "a field only the gateway sets is inherited",
        [[_src("gw", authorization="")], [], []],
        {"authorization": "gw"},
    ),
    (
        "an Override policy at the gateway wins over the route",
        [[_src("gw", override=True, csrf="")], [], [_src("route", csrf="")]],
        {"csrf": "gw"},
    ),
    (
        "the least specific Override wins over a more specific Override",
        [[_src("gw", override=True, csrf="")], [_src("lis", override=True, csrf="")], []],
        {"csrf": "gw"},
    ),
    (
        "an Override only takes the fields it sets",
        [[_src("gw", override=True, csrf="")], [], [_src("route", csrf="", cors="")]],
        {"csrf": "gw", "cors": "route"},
    ),
    (
        "at one level an inline policy wins over a Policy resource",
        [
            [],
            [_src("targeted", order=(1, 0, "targeted"), csrf=""), _src("inline", order=(0, 0, ""), csrf="")],
            [],
        ],
        {"csrf": "inline"},
    ),
    (
        "at one level the older Policy wins",
        [[], [], [_src("new", order=(1, 20, "new"), csrf=""), _src("old", order=(1, 10, "old"), csrf="")]],
        {"csrf": "old"},
    ),
    (
        "fields combine from every level",
        [[_src("gw", authorization="")], [_src("lis", cors="")], [_src("route", csrf="")]],
        {"authorization": "gw", "cors": "lis", "csrf": "route"},
    ),
    ("nothing set gives nothing", [[], [], []], {}),
]


@pytest.mark.parametrize(("name", "levels", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_precedence_follows_the_table(
    name: str, levels: list[list[attach.Source]], expected: dict[str, str]
) -> None:
    chosen = attach.merge(levels)
    assert {field: source.key for field, source in chosen.items()} == expected


def test_the_merged_policy_copies_each_chosen_field() -> None:
    chosen = attach.merge([[_src("gw", authorization="")], [], [_src("route", csrf="")]])
    merged = attach.merged_policy(chosen)
    assert list(merged.csrf.additional_origins) == ["route"]
    assert merged.authorization.rules[0].expression == "gw"
    assert not merged.HasField("cors")
