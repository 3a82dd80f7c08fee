"""Prometheus metrics that cost well under a microsecond per update.

prometheus_client's labelled child lookup and locks cost several microseconds per request;
here a counter is a dict from a label tuple to a float and a histogram a dict from a label
tuple to bucket counts, updated on one event loop thread without locks. `render` writes the
Prometheus text format at scrape time; `snapshot`/`merge` carry values between worker
processes so the supervisor can serve one /metrics for all of them.

Names follow agentgateway's with our prefix: `agentgw_requests_total`,
`agentgw_request_duration_seconds`, `agentgw_upstream_connect_duration_seconds`, ...
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

Labels = tuple[str, ...]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Labels) -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, value in self.values.items():
            yield self.name, labels, value

    def snapshot(self) -> list[Any]:
        return [[list(k), v] for k, v in self.values.items()]

    def merge(self, data: list[Any]) -> None:
        for labels, value in data:
            self.inc(tuple(labels), value)


class Gauge(Counter):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value


class Histogram:
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, label_names: Labels, buckets: tuple[float, ...] = LATENCY_BUCKETS
    ):
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.buckets = buckets
        # labels -> [count per bucket (+Inf last)..., sum]
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def count(self, labels: Labels = ()) -> float:
        row = self.values.get(labels)
        return sum(row[:-1]) if row else 0.0

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, row in self.values.items():
            cumulative = 0.0
            for bound, n in zip((*self.buckets, math.inf), row[:-1], strict=True):
                cumulative += n
                yield f"{self.name}_bucket", (*labels, _fmt(bound)), cumulative
            yield f"{self.name}_sum", labels, row[-1]
            yield f"{self.name}_count", labels, cumulative

    def snapshot(self) -> list[Any]:
        return [[list(k), v] for k, v in self.values.items()]

    def merge(self, data: list[Any]) -> None:
        for labels, row in data:
            key = tuple(labels)
            mine = self.values.get(key)
            if mine is None:
                self.values[key] = list(row)
            else:
                for i, v in enumerate(row):
                    mine[i] += v


def _fmt(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


def _value(v: float) -> str:
    """A sample value without losing precision (`%g` printed 1234567 as 1.23457e+06)."""
    v = float(v)  # counters may be fed ints
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


HTTP_LABELS = ("gateway", "listener", "route", "backend", "method", "status")


class Registry:
    """Every metric a proxy process exports."""

    def __init__(self) -> None:
        self.requests = Counter("agentgw_requests_total", "HTTP requests served.", HTTP_LABELS)
        self.request_duration = Histogram(
            "agentgw_request_duration_seconds", "Time from request head to response end.", HTTP_LABELS[:4]
        )
        self.upstream_connect_duration = Histogram(
            "agentgw_upstream_connect_duration_seconds", "Time to open an upstream TCP connection.", ()
        )
        self.upstream_call_duration = Histogram(
            "agentgw_upstream_call_duration_seconds",
            "Time from sending an upstream request to its complete response.",
            ("backend", "kind"),
        )
        self.retries = Counter(
            "agentgw_retries_total", "Upstream attempts beyond the first.", ("route", "backend")
        )
        self.downstream_connections = Counter(
            "agentgw_downstream_connections_total", "Accepted client connections.", ("bind",)
        )
        self.config_reloads = Counter(
            "agentgw_config_reloads_total", "Configuration loads by result (success, failure).", ("result",)
        )
        self.config_info = Gauge(
            "agentgw_config_info", "The configuration version being served (value is always 1).", ("version",)
        )
        self.config_last_reload = Gauge(
            "agentgw_config_last_reload_success_timestamp_seconds",
            "Unix time of the last applied config.",
            (),
        )
        self.metrics: list[Counter | Histogram] = [
            self.requests,
            self.request_duration,
            self.upstream_connect_duration,
            self.upstream_call_duration,
            self.retries,
            self.downstream_connections,
            self.config_reloads,
            self.config_info,
            self.config_last_reload,
        ]

    def snapshot(self, include_config: bool = True) -> dict[str, Any]:
        """Values to send to the supervisor; config metrics stay with whoever loads config."""
        return {
            m.name: m.snapshot()
            for m in self.metrics
            if include_config or m not in (self.config_reloads, self.config_info, self.config_last_reload)
        }

    def merge(self, snap: dict[str, Any]) -> None:
        by_name = {m.name: m for m in self.metrics}
        for name, data in snap.items():
            metric = by_name.get(name)
            if metric is not None:
                metric.merge(data)

    def render(self, extra: Iterable[dict[str, Any]] = (), owned: Iterable[Counter | Histogram] = ()) -> str:
        """Prometheus text exposition; `extra` snapshots (other workers) are added in, and
        `owned` metrics (the config source's, e.g. the xDS client's) are rendered as they are."""
        view = self
        extras = list(extra)
        if extras:
            view = Registry()
            view.merge(self.snapshot())
            for snap in extras:
                view.merge(snap)
            # gauges describe the config owner's state, not a sum
            view.config_info.values = dict(self.config_info.values)
            view.config_last_reload.values = dict(self.config_last_reload.values)
        lines: list[str] = []
        for m in [*view.metrics, *owned]:
            lines.append(f"# HELP {m.name} {m.help}")
            lines.append(f"# TYPE {m.name} {m.kind}")
            names = m.label_names + (("le",) if isinstance(m, Histogram) else ())
            for sample_name, labels, value in m.samples():
                use = names if sample_name.endswith("_bucket") else m.label_names
                label_text = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(use, labels, strict=False))
                text = _value(value)
                lines.append(
                    f"{sample_name}{{{label_text}}} {text}" if label_text else f"{sample_name} {text}"
                )
        return "\n".join(lines) + "\n"
