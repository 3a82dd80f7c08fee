"""Operator endpoints and the access log of a real gateway process.

/config_dump (adminAddr), /metrics (statsAddr), /healthz/ready (readinessAddr) and the JSON
access log the harness collects from the process's stdout.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dataplane.tests import harness

SECRET_HEADERS = """\
        requestHeaderModifier:
          set:
            authorization: Bearer secret
            x-plain: visible
          add:
            x-api-key: key-secret
"""


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        return await r.json()


async def scrape(gw: harness.GatewayProcess) -> str:
    async with aiohttp.ClientSession() as s, s.get(gw.stats_url()) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        return await r.text()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` as (labels, value), parsed from the text format."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            out.append((dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def types(text: str) -> dict[str, str]:
    return {
        parts[2]: parts[3]
        for parts in (line.split() for line in text.splitlines())
        if parts[:2] == ["#", "TYPE"]
    }


async def access_log_lines(gw: harness.GatewayProcess, n: int, timeout: float = 3.0) -> list[dict[str, Any]]:
    """Wait for at least `n` complete lines in the access log (it is flushed every 100 ms)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in gw.access_log.read_text().split("\n")[:-1] if line]
        if len(lines) >= n:
            return [json.loads(line) for line in lines]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(lines)} access log lines after {timeout}s, expected {n}: {lines}")


# --------------------------------------------------------------------------------------------


async def test_config_dump_shows_the_effective_resources_and_version_with_secret_header_values_redacted(
    tmp_path: Path,
) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(
            tmp_path, harness.simple_config(port, up.address, policies=SECRET_HEADERS)
        )
        gw.start()
        try:
            async with harness.client() as c, c.get(gw.url(port, "/")) as r:
                seen = await r.json()
            assert seen["headers"]["authorization"] == "Bearer secret"  # redaction is for the dump only
            assert seen["headers"]["x-api-key"] == "key-secret"

            dump = await get_json(gw.admin_url("/config_dump"))
            text = json.dumps(dump)
            assert re.fullmatch(r"[0-9a-f]{8,}", dump["version"])
            assert dump["status"]["version"] == dump["version"]
            assert dump["status"]["successes"] == 1 and dump["status"]["failures"] == 0
            assert dump["status"]["last_error"] == ""
            kinds = [next(iter(r)) for r in dump["resources"]]
            assert kinds == ["bind", "listener", "route"]
            bind, _, route = (next(iter(r.values())) for r in dump["resources"])
            assert bind["port"] == port
            assert route["name"] == "main"
            assert route["backends"][0]["ref"]["host"] == {"host": "127.0.0.1", "port": up.port}
            assert "secret" not in text
            assert text.count('"<redacted>"') == 2
            assert "visible" in text
        finally:
            gw.stop()


async def test_metrics_export_requests_latency_connect_time_and_reloads(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, harness.simple_config(port, up.address)).start()
        try:
            async with harness.client() as c:
                for _ in range(3):
                    async with c.get(gw.url(port, "/a")) as r:
                        assert r.status == 200
                async with c.post(gw.url(port, "/b"), data=b"x", headers={"x-echo-status": "503"}) as r:
                    assert r.status == 503
            text = await scrape(gw)

            kinds = types(text)
            assert kinds["agentgw_requests_total"] == "counter"
            assert kinds["agentgw_request_duration_seconds"] == "histogram"
            assert kinds["agentgw_upstream_connect_duration_seconds"] == "histogram"
            assert kinds["agentgw_config_reloads_total"] == "counter"

            requests = samples(text, "agentgw_requests_total")
            assert all(
                set(labels) == {"gateway", "listener", "route", "backend", "method", "status"}
                for labels, _ in requests
            )
            by_call = {(labels["method"], labels["status"]): value for labels, value in requests}
            assert by_call == {("GET", "200"): 3, ("POST", "503"): 1}
            labels = requests[0][0]
            assert labels["gateway"] == "default"
            assert labels["listener"] == "listener0"
            assert labels["route"] == "main"
            assert labels["backend"] == up.address

            assert sum(v for _, v in samples(text, "agentgw_request_duration_seconds_count")) == 4
            buckets = samples(text, "agentgw_request_duration_seconds_bucket")
            assert {lab["le"] for lab, _ in buckets} >= {"0.005", "1.0", "+Inf"}
            assert sum(v for lab, v in buckets if lab["le"] == "+Inf") == 4
            assert sum(v for _, v in samples(text, "agentgw_upstream_connect_duration_seconds_count")) >= 1
            assert samples(text, "agentgw_config_reloads_total") == [({"result": "success"}, 1.0)]
            [(_, applied_at)] = samples(text, "agentgw_config_last_reload_success_timestamp_seconds")
            assert abs(applied_at - time.time()) < 30  # printed with full precision, not 1.79526e+09
        finally:
            gw.stop()


async def test_readiness_is_ready_once_the_first_config_is_applied(tmp_path: Path) -> None:
    port = harness.free_port()
    gw = harness.GatewayProcess(tmp_path, f"binds:\n- port: {port}\n  listeners:\n  - routes: []\n").start()
    try:
        async with harness.client() as c, c.get(f"http://127.0.0.1:{gw.ready_port}/healthz/ready") as r:
            assert r.status == 200
            assert await r.text() == "ready\n"
    finally:
        gw.stop()


class _AdminOff(harness.GatewayProcess):
    def header(self) -> str:
        return super().header().replace(f"127.0.0.1:{self.admin_port}", self.admin_off)

    admin_off = "off"


async def test_admin_addr_off_disables_the_admin_server(tmp_path: Path) -> None:
    port = harness.free_port()
    gw = _AdminOff(tmp_path, f"binds:\n- port: {port}\n  listeners:\n  - routes: []\n").start()
    try:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", gw.admin_port)
        except OSError:
            pass
        else:
            writer.close()
            raise AssertionError("the admin port accepts connections")
        assert "admin endpoint" not in gw.stderr()
        async with harness.client() as c, c.get(gw.url(port, "/")) as r:
            assert r.status == 404  # still serving traffic
    finally:
        gw.stop()


async def test_admin_addr_off_may_be_written_as_a_quoted_string(tmp_path: Path) -> None:
    class Quoted(_AdminOff):
        admin_off = '"off"'

    port = harness.free_port()
    gw = Quoted(tmp_path, f"binds:\n- port: {port}\n  listeners:\n  - routes: []\n").start()
    try:
        assert "admin endpoint" not in gw.stderr()
    finally:
        gw.stop()


async def test_an_admin_address_in_use_exits_one_naming_the_setting_before_opening_traffic_ports(
    tmp_path: Path,
) -> None:
    port = harness.free_port()
    gw = harness.GatewayProcess(tmp_path, f"binds:\n- port: {port}\n  listeners:\n  - routes: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", gw.stats_port))
        taken.listen()
        with pytest.raises(RuntimeError) as info:
            gw.start()
    assert gw.proc is not None and gw.proc.returncode == 1
    message = str(info.value)
    assert f"config.statsAddr: cannot listen on 127.0.0.1:{gw.stats_port}: Address already in use" in message
    assert "Traceback" not in message
    assert "listening on" not in message  # no traffic port was opened


async def test_access_log_lines_are_json_objects_describing_each_request(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        config = (
            f"binds:\n- port: {port}\n  listeners:\n  - routes:\n"
            "    - name: nothing-here\n"
            "      matches: [{path: {exact: /gone}}]\n"
            "      policies: {directResponse: {status: 410, body: gone}}\n"
            "    - name: main\n"
            "      matches: [{path: {pathPrefix: /upload}}]\n"
            f"      backends: [{{host: '{up.address}'}}]\n"
        )
        gw = harness.GatewayProcess(tmp_path, config).start()
        try:
            async with harness.client() as c:
                async with c.post(gw.url(port, "/upload?q=1"), data=b"0123456789") as r:
                    body = await r.read()
                    assert r.status == 200
                async with c.get(gw.url(port, "/gone")) as r:
                    assert r.status == 410
                async with c.get(gw.url(port, "/none")) as r:
                    assert r.status == 404

            upload, gone, missing = await access_log_lines(gw, 3)
            fields = {
                "time", "method", "host", "path", "status", "route", "backend", "upstream",
                "duration_ms", "bytes_in", "bytes_out", "error", "version", "grpc_status",
            }  # fmt: skip
            assert set(upload) == fields
            assert upload["method"] == "POST"
            assert upload["host"] == f"127.0.0.1:{port}"
            assert upload["path"] == "/upload"
            assert upload["status"] == 200
            assert "main" in upload["route"]
            assert upload["backend"]
            assert upload["upstream"] == up.address
            assert isinstance(upload["duration_ms"], float | int) and upload["duration_ms"] >= 0
            assert upload["bytes_in"] == 10
            assert upload["bytes_out"] == len(body)
            assert upload["error"] is None

            assert gone["status"] == 410
            assert "nothing-here" in gone["route"]
            assert gone["upstream"] is None and gone["backend"] is None
            assert gone["bytes_out"] == len(b"gone")

            assert missing["status"] == 404
            assert missing["route"] is None
            assert missing["error"].startswith("route_not_found")
        finally:
            gw.stop()
