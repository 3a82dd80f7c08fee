"""Who may reference whom: ReferenceGrants and label selectors.

In: parsed ReferenceGrants (`api.gateway.v1.ReferenceGrant`) and Namespace labels. Out: yes/no
answers for a cross-namespace reference (`Grants.allows`) and for a label selector
(`selects`). Pure; used by `controller.translate.backends` (backendRefs, mirror refs) and
`controller.translate.attach` (`allowedRoutes.namespaces.from: Selector`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from api.gateway import v1 as gw


@dataclasses.dataclass(frozen=True)
class Reference:
    """A reference from an object of (group, kind) in `from_namespace` to (group, kind) `to`."""

    from_group: str
    from_kind: str
    from_namespace: str
    to_group: str
    to_kind: str
    to_namespace: str
    to_name: str


class Grants:
    """The ReferenceGrants of the cluster, indexed by the namespace they live in (the target's)."""

    def __init__(self, grants: Iterable[gw.ReferenceGrant]) -> None:
        self._by_namespace: dict[str, list[gw.ReferenceGrant]] = {}
        for grant in grants:
            self._by_namespace.setdefault(grant.metadata.namespace, []).append(grant)

    def allows(self, ref: Reference) -> bool:
        """Same-namespace references need no grant; others need a grant in the target namespace."""
        if ref.from_namespace == ref.to_namespace:
            return True
        return any(_grants(g, ref) for g in self._by_namespace.get(ref.to_namespace, ()))


def _grants(grant: gw.ReferenceGrant, ref: Reference) -> bool:
    from_ok = any(
        f.group == ref.from_group and f.kind == ref.from_kind and f.namespace == ref.from_namespace
        for f in grant.spec.from_
    )
    to_ok = any(
        t.group == ref.to_group and t.kind == ref.to_kind and (t.name is None or t.name == ref.to_name)
        for t in grant.spec.to
    )
    return from_ok and to_ok


def selects(selector: gw.LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: every matchLabels pair and every expression hold."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    return all(_expression(e, labels) for e in selector.match_expressions)


def _expression(req: gw.LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    if req.operator == "In":
        return labels.get(req.key) in req.values
    if req.operator == "NotIn":
        return labels.get(req.key) not in req.values
    if req.operator == "Exists":
        return req.key in labels
    if req.operator == "DoesNotExist":
        return req.key not in labels
    return False  # an unknown operator selects nothing, as the apiserver would refuse it
