"""Startup settings of a proxy process: small frozen dataclasses, each default explained.

These come from the file's `config:` and `frontendPolicies.http` blocks (see config.local) and
from the command line. They are applied when the process starts; a reload that changes them
is logged and takes effect at the next restart, like agentgateway's static config.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Protection against slow, huge or hostile clients."""

    max_header_bytes: int = 64 * 1024
    """Request line plus headers. nginx allows 4 x 8 KiB by default, hyper ~400 KiB; 64 KiB fits
    every real client (large cookies and JWTs included) and bounds memory per connection."""

    max_header_count: int = 100
    """agentgateway's (hyper's) default `http1MaxHeaders`."""

    header_read_timeout: float = 10.0
    """From the first byte of a request to its last header. Real clients send a head in one
    segment; 10 s tolerates slow mobile links and cuts slowloris connections quickly."""

    idle_timeout: float = 600.0
    """agentgateway's `http1IdleTimeout` default (10m): a keep-alive connection with no request."""

    max_buffer_size: int = 2 * 1024 * 1024
    """agentgateway's `maxBufferSize`: the most body a policy may buffer (retries replay it)."""

    body_buffer_high_water: int = 256 * 1024
    """Stop reading a request body from the client once this much waits for the upstream."""


@dataclasses.dataclass(frozen=True)
class Upstream:
    """Connections to backends."""

    connect_timeout: float = 10.0
    """agentgateway's `backend.connectTimeout` default."""

    pool_idle_timeout: float = 90.0
    """agentgateway's `poolIdleTimeout` (1m30s): below common upstream keep-alive timeouts
    (nginx 75 s is the exception; a stale connection is retried once on a fresh one)."""

    pool_max_idle: int = 1024
    """Idle connections kept per upstream host; excess ones are closed after use."""


@dataclasses.dataclass(frozen=True)
class Admin:
    """Operator endpoints; the same three addresses as agentgateway's file."""

    admin_addr: str = "127.0.0.1:15000"
    """/config_dump shows the full config: localhost only by default."""

    stats_addr: str = "0.0.0.0:15020"
    """Prometheus scrapes from other pods."""

    readiness_addr: str = "0.0.0.0:15021"
    """Kubelet probes from the node."""


@dataclasses.dataclass(frozen=True)
class Drain:
    """Graceful shutdown on SIGTERM."""

    deadline: float = 5.0
    """How long in-flight requests may take to finish before connections are closed. Kubernetes
    gives 30 s by default (terminationGracePeriodSeconds); 5 s keeps local restarts snappy."""

    min_deadline: float = 0.0
    """Keep accepting for this long after SIGTERM, so load balancers notice readiness failing."""


@dataclasses.dataclass(frozen=True)
class Logging:
    level: str = "info"
    format: str = "json"
    """Access log lines are JSON by default: one object per request, easy to ship."""


@dataclasses.dataclass(frozen=True)
class Settings:
    limits: Limits = Limits()
    upstream: Upstream = Upstream()
    admin: Admin = Admin()
    drain: Drain = Drain()
    logging: Logging = Logging()
    gateway: str = "default"
    """Gateway name in metrics and logs; the controller sets it to `<namespace>/<name>`."""
    namespace: str = ""
