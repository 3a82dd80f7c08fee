"""Deployer settings: what the controller was started with that shapes every proxy fleet.

In: the controller's flags (`--xds-address`, `--proxy-image-*`), read by `controller.__main__`.
Out: one frozen `DeployerSettings` passed to `controller.deployer.render`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DeployerSettings:
    """Defaults for the generated proxy objects; AgentgatewayParameters override the image parts."""

    image_registry: str = "ghcr.io"
    """Registry host of the proxy image. AgentgatewayParameters `image.registry` overrides it.
    Empty means no registry prefix (the container runtime's default, docker.io)."""

    image_repository: str = "agentgw/agentgw"
    """Repository of the proxy image within the registry (`image.repository` overrides it). One
    image holds both programs, `agentgw-proxy` and `agentgw-controller`."""

    image_tag: str = "latest"
    """Tag of the proxy image: the chart sets the controller's own version so that the control and
    data planes move together (`image.tag` overrides it; `image.digest` pins it)."""

    image_pull_policy: str | None = None
    """Pull policy; None leaves it to Kubernetes (`Always` for `latest`, else `IfNotPresent`)."""

    xds_address: str = "agentgw.agentgw-system.svc:9978"
    """What proxies dial for xDS (env `XDS_ADDRESS`, `host:port`): the controller's Service. The
    chart passes `<release fullname>.<release namespace>.svc:<xds port>`."""

    xds_token_audience: str = "agentgateway"
    """Audience of the projected token proxies present to the controller's xDS server; the
    controller checks it (`--xds-token-audience`) so the token is useless to other services."""

    replicas: int = 1
    """Proxy replicas of a new Deployment; the `deployment.spec.replicas` overlay changes it (as in
    agentgateway, replicas are not a typed setting). One pod serves a first Gateway with no waste."""

    termination_grace_period_seconds: int = 60
    """Pod grace period (and the proxy's connection termination deadline) when the parameters have
    no `shutdown.max`: agentgateway's default, long enough for streamed LLM responses to end."""

    no_listeners_port: int = 443
    """Service port used when the Gateway has no listeners (a Service needs at least one port);
    agentgateway's `NO_LISTENERS_DUMMY_PORT`."""

    run_as_user: int = 10101
    """Non-root uid of the proxy container, as agentgateway's; binding ports below 1024 works through
    the pod sysctl `net.ipv4.ip_unprivileged_port_start=0`, not capabilities."""
