"""The proxy's view of a standalone file: startup settings plus the resources to serve.

In: file text. Out: `LocalConfig` — `settings.Settings` from the `config:` and
`frontendPolicies:` blocks, and the resources `api.standalone.lower` produces. Called by the
file watcher and by `agentgw-proxy --validate`. The format itself (models, validation,
lowering) is `api.standalone`, shared with the controller's `--from-file` mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from api import durations, standalone, standalone_types
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import settings

split_host_port = standalone_types.split_host_port


@dataclasses.dataclass(frozen=True)
class LocalConfig:
    """A validated file: startup settings plus the resources the compiler consumes."""

    settings: settings.Settings
    resources: list[pb.Resource]


def parse(text: str, env: Mapping[str, str] | None = None) -> LocalConfig:
    """Validate file text and lower it; raise `errors.ConfigError` naming every bad field."""
    model = standalone.load(text, env)
    return LocalConfig(settings=_settings(model), resources=standalone.lower(model))


def _settings(model: standalone.File) -> settings.Settings:
    raw = model.config or standalone.RawConfig.model_validate({})
    http = (
        model.frontend_policies.http if model.frontend_policies else None
    ) or standalone.FrontendHTTP.model_validate({})
    backend = raw.backend or standalone.BackendDefaults.model_validate({})
    limits = settings.Limits(
        max_buffer_size=http.max_buffer_size,
        max_header_count=http.http1_max_headers or settings.Limits.max_header_count,
        idle_timeout=durations.parse(http.http1_idle_timeout)
        if http.http1_idle_timeout
        else settings.Limits.idle_timeout,
    )
    upstream = settings.Upstream(
        connect_timeout=durations.parse(backend.connect_timeout),
        pool_idle_timeout=durations.parse(backend.pool_idle_timeout),
        pool_max_idle=backend.pool_max_size
        if backend.pool_max_size is not None
        else settings.Upstream.pool_max_idle,
    )
    admin = settings.Admin(
        admin_addr=raw.admin_addr or settings.Admin.admin_addr,
        stats_addr=raw.stats_addr or settings.Admin.stats_addr,
        readiness_addr=raw.readiness_addr or settings.Admin.readiness_addr,
    )
    drain = settings.Drain(
        deadline=durations.parse(raw.connection_termination_deadline)
        if raw.connection_termination_deadline
        else settings.Drain.deadline,
        min_deadline=durations.parse(raw.connection_min_termination_deadline)
        if raw.connection_min_termination_deadline
        else settings.Drain.min_deadline,
    )
    log_cfg = raw.logging or standalone.Logging()
    logging_settings = settings.Logging(
        level=log_cfg.level or settings.Logging.level, format=log_cfg.format or settings.Logging.format
    )
    return settings.Settings(
        limits=limits,
        upstream=upstream,
        admin=admin,
        drain=drain,
        logging=logging_settings,
        gateway=raw.gateway or settings.Settings.gateway,
        namespace=raw.namespace or settings.Settings.namespace,
    )
