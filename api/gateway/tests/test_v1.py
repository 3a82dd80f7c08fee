"""The Gateway API views fill in the spec's defaults and tolerate fields they do not know."""

from __future__ import annotations

import pydantic
import pytest

from api.gateway import v1 as gw


def test_a_parent_ref_defaults_to_a_gateway_in_the_routes_namespace() -> None:
    ref = gw.parse(gw.ParentReference, {"name": "gw"})
    assert (ref.group, ref.kind, ref.namespace, ref.section_name, ref.port) == (
        gw.GROUP,
        "Gateway",
        None,
        None,
        None,
    )


def test_a_backend_ref_defaults_to_a_core_service_with_weight_one() -> None:
    ref = gw.parse(gw.HTTPBackendRef, {"name": "svc", "port": 80})
    assert (ref.group, ref.kind, ref.weight) == ("", "Service", 1)


def test_a_route_without_rules_has_one_rule_matching_every_path() -> None:
    route = gw.parse(gw.HTTPRoute, {"metadata": {"name": "r"}, "spec": {}})
    (rule,) = route.spec.rules
    (match,) = rule.matches
    assert (match.path.type, match.path.value) == ("PathPrefix", "/")


def test_a_listener_admits_routes_from_its_own_namespace_by_default() -> None:
    listener = gw.parse(gw.Listener, {"name": "http", "port": 80, "protocol": "HTTP"})
    assert listener.allowed_routes.namespaces.from_ == "Same"
    assert listener.allowed_routes.kinds is None


def test_reference_grants_read_their_from_list() -> None:
    grant = gw.parse(
        gw.ReferenceGrant,
        {
            "spec": {
                "from": [{"group": gw.GROUP, "kind": "HTTPRoute", "namespace": "a"}],
                "to": [{"group": "", "kind": "Service"}],
            }
        },
    )
    assert grant.spec.from_[0].namespace == "a"
    assert grant.spec.to[0].name is None


def test_fields_from_a_newer_gateway_api_are_ignored() -> None:
    rule = gw.parse(gw.HTTPRouteRule, {"someFutureField": {"x": 1}})
    assert rule.backend_refs == []


def test_a_field_of_the_wrong_shape_is_described_by_its_path() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        gw.parse(gw.HTTPRoute, {"spec": {"rules": [{"matches": "nope"}]}})
    assert gw.describe(info.value) == "spec.rules[0].matches: Input should be a valid list"
