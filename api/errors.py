"""Errors shared by both halves: the root of agentgw's exception hierarchy and ConfigError.

    AgentgwError                  every error agentgw raises on purpose
    ├── ConfigError               a configuration was rejected; `.problems` name field paths
    └── (dataplane.errors.ProxyError and its subclasses: request failures with an HTTP status)

The standalone loader (`api.standalone`) raises ConfigError for the proxy and for the
controller's `--from-file` mode alike.
"""

from __future__ import annotations


class AgentgwError(Exception):
    """Base of every error agentgw raises on purpose."""


class ConfigError(AgentgwError):
    """A configuration was rejected. `problems` holds `path: message` lines, one per fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
