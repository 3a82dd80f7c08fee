"""The metrics registry: cheap updates, Prometheus text, and merging worker snapshots."""

from __future__ import annotations

from dataplane.telemetry import metrics


def test_counter_renders_with_its_labels_in_prometheus_text() -> None:
    reg = metrics.Registry()
    reg.requests.inc(("gw", "l", "r", "b", "GET", "200"))
    text = reg.render()
    assert (
        'agentgw_requests_total{gateway="gw",listener="l",route="r",backend="b",method="GET",status="200"} 1'
        in text
    )


def test_histogram_buckets_are_cumulative_and_count_matches() -> None:
    reg = metrics.Registry()
    for v in (0.0001, 0.002, 0.3):
        reg.upstream_connect_duration.observe((), v)
    text = reg.render()
    assert 'agentgw_upstream_connect_duration_seconds_bucket{le="0.0005"} 1' in text
    assert 'agentgw_upstream_connect_duration_seconds_bucket{le="+Inf"} 3' in text
    assert "agentgw_upstream_connect_duration_seconds_count 3" in text


def test_worker_snapshots_are_summed_into_one_view() -> None:
    a, b = metrics.Registry(), metrics.Registry()
    a.requests.inc(("g", "l", "r", "b", "GET", "200"), 2)
    b.requests.inc(("g", "l", "r", "b", "GET", "200"), 3)
    b.request_duration.observe(("g", "l", "r", "b"), 0.01)
    text = a.render([b.snapshot(include_config=False)])
    assert 'method="GET",status="200"} 5' in text
    assert "agentgw_request_duration_seconds_count" in text


def test_label_values_are_escaped() -> None:
    reg = metrics.Registry()
    reg.config_reloads.inc(('bad"value\n',))
    assert 'result="bad\\"value\\n"' in reg.render()


def test_integer_amounts_render_like_floats() -> None:
    reg = metrics.Registry()
    reg.config_reloads.inc(("success",), 3)
    assert 'agentgw_config_reloads_total{result="success"} 3' in reg.render()
