"""Errors of the deployer.

    DeployerError
     └── InvalidParameters   a parametersRef names no usable AgentgatewayParameters

The reconciler turns `InvalidParameters` into the Gateway condition
`Accepted=False/InvalidParameters` with `str(error)` as the message, and renders nothing.
"""

from __future__ import annotations


class DeployerError(Exception):
    """Base of the deployer's errors."""


class InvalidParameters(DeployerError):
    """A GatewayClass or Gateway parametersRef that is of the wrong kind, names no object in the
    given list, names one that fails validation, or combines settings that do not fit together."""
