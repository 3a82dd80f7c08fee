"""End-to-end basics through a real gateway process and a real upstream on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from dataplane.tests import harness


async def test_request_reaches_upstream_with_forwarding_headers(tmp_path: Path) -> None:
    async with harness.Upstream() as up:
        port = harness.free_port()
        gw = harness.GatewayProcess(tmp_path, harness.simple_config(port, up.address)).start()
        try:
            async with harness.client() as c, c.get(gw.url(port, "/hello?x=1")) as r:
                assert r.status == 200
                seen = await r.json()
            assert seen["path"] == "/hello"
            assert seen["query"] == "x=1"
            assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
            assert seen["headers"]["x-forwarded-proto"] == "http"
        finally:
            gw.stop()


async def test_unknown_path_on_route_less_listener_is_404(tmp_path: Path) -> None:
    port = harness.free_port()
    config = f"binds:\n- port: {port}\n  listeners:\n  - routes: []\n"
    gw = harness.GatewayProcess(tmp_path, config).start()
    try:
        async with harness.client() as c, c.get(gw.url(port, "/nothing")) as r:
            assert r.status == 404
            assert "route_not_found" in await r.text()
    finally:
        gw.stop()
