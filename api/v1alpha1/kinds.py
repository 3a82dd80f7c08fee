"""The top-level kinds of agentgateway.dev/v1alpha1, for code that handles all of them.

Used by `api.v1alpha1.crd` (one CRD per kind) and `api.v1alpha1.validation` (dispatch on `kind`).
"""

from __future__ import annotations

from api.v1alpha1 import backend, common, parameters, policy

ALL: tuple[type[common.Resource], ...] = (
    backend.AgentgatewayBackend,
    policy.AgentgatewayPolicy,
    parameters.AgentgatewayParameters,
)
"""Every kind, in the order the CRD files are listed."""

BY_KIND: dict[str, type[common.Resource]] = {cls.__name__: cls for cls in ALL}
"""`kind` -> model class."""
