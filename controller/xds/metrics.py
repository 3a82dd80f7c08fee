"""Prometheus metrics of the controller's xDS server, in the data plane's cheap registry style.

A counter is a dict from a label tuple to a float, a histogram a dict from a label tuple to
bucket counts; both are updated on the one event-loop thread without locks, and `render` writes
the Prometheus text format at scrape time. This is a small copy of the idea in
`dataplane/telemetry/metrics.py`, not an import of it: the controller never imports the data
plane (`.importlinter`).

Written by `server.DeltaAds` (streams, pushes, ACK/NACK) and `cache.SnapshotCache` (published and
rejected snapshots); read by the controller's /metrics endpoint through `Registry.render`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

Labels = tuple[str, ...]

ACK_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Push-to-ACK time: a proxy compiles and swaps in milliseconds; seconds mean a slow or stuck proxy."""


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


class Gauge(Counter):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Labels, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.buckets = buckets
        self.values: dict[Labels, list[float]] = {}
        """labels -> [count per bucket (+Inf last)..., sum]"""

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
                yield f"{self.name}_bucket", (*labels, _fmt_bound(bound)), cumulative
            yield f"{self.name}_sum", labels, row[-1]
            yield f"{self.name}_count", labels, cumulative


class Registry:
    """Every xDS metric the controller exports. Labels are the gateway, "namespace/name"."""

    def __init__(self) -> None:
        gw = ("gateway",)
        self.connected_proxies = Gauge("agentgw_xds_connected_proxies", "Open delta ADS streams.", gw)
        self.pushes = Counter("agentgw_xds_pushes_total", "DeltaDiscoveryResponses sent.", gw)
        self.resources_sent = Counter(
            "agentgw_xds_resources_sent_total", "Resources sent (updated, not removed).", gw
        )
        self.resources_removed = Counter(
            "agentgw_xds_resources_removed_total", "Resource names sent as removed.", gw
        )
        self.acks = Counter("agentgw_xds_acks_total", "Responses a proxy accepted.", gw)
        self.nacks = Counter("agentgw_xds_nacks_total", "Responses a proxy rejected (in part).", gw)
        self.ack_latency = Histogram(
            "agentgw_xds_push_ack_duration_seconds",
            "Time from sending a response to its ACK or NACK.",
            gw,
            ACK_LATENCY_BUCKETS,
        )
        self.snapshots = Counter(
            "agentgw_xds_snapshots_total", "Snapshots offered to the cache by result.", ("gateway", "result")
        )
        self.metrics: list[Counter | Histogram] = [
            self.connected_proxies,
            self.pushes,
            self.resources_sent,
            self.resources_removed,
            self.acks,
            self.nacks,
            self.ack_latency,
            self.snapshots,
        ]

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []
        for m in self.metrics:
            lines.append(f"# HELP {m.name} {m.help}")
            lines.append(f"# TYPE {m.name} {m.kind}")
            for sample_name, labels, value in m.samples():
                names = (*m.label_names, "le") if sample_name.endswith("_bucket") else m.label_names
                text = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, labels, strict=True))
                lines.append(
                    f"{sample_name}{{{text}}} {_fmt_value(value)}"
                    if text
                    else f"{sample_name} {_fmt_value(value)}"
                )
        return "\n".join(lines) + "\n"


def _fmt_bound(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


def _fmt_value(v: float) -> str:
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
