"""An OpenAI backend through the proxy, configured over xDS, called with the official SDK.

The control plane runs in the test (controller.xds cache + delta ADS server on 127.0.0.1) with
the resources the translator produces for the seed manifests: a route `/openai` to an AI backend
(provider openai, model gpt-4o, key from a Secret). A real `agentgw-proxy` process subscribes;
a fake OpenAI server on 127.0.0.1 stands in for api.openai.com (host/port overrides). The
`openai` SDK sends chat requests, streaming and not, and the fake records what it received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from api.proto.agentgw.v1 import resource_pb2 as pb
from controller.xds import cache, server
from dataplane.tests import harness
from e2e.processes import XdsProxy

SEEN = web.AppKey("seen", list)


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[SEEN].append({"path": request.path, "headers": dict(request.headers), "body": body})
    if not body.get("stream"):
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi there"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for word in ("hi", " there"):
        chunk = {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
        }
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    return resp


@pytest.fixture
async def fake_openai() -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    app = web.Application()
    app[SEEN] = []
    app.router.add_post("/v1/chat/completions", _chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = harness.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, app[SEEN]
    await runner.cleanup()


def _resources(port: int, upstream_port: int, key: str) -> list[pb.Resource]:
    bind = f"bind/{port}"
    listener = f"{bind}/http"
    return [
        pb.Resource(bind=pb.Bind(key=bind, port=port)),
        pb.Resource(
            listener=pb.Listener(
                key=listener,
                bind_key=bind,
                name="http",
                gateway_name="agentgateway-system/agentgateway-proxy",
            )
        ),
        pb.Resource(
            backend=pb.Backend(
                key="backend/agentgateway-system/openai",
                name="agentgateway-system/openai",
                ai=pb.AIBackend(
                    openai=pb.OpenAIProvider(model="gpt-4o"),
                    host="127.0.0.1",
                    port=upstream_port,
                    auth=pb.BackendAuth(key=key),
                ),
            )
        ),
        pb.Resource(
            route=pb.Route(
                key=f"{listener}/openai/0",
                listener_key=listener,
                name="openai",
                namespace="agentgateway-system",
                matches=[pb.RouteMatch(path=pb.PathMatch(prefix="/openai"))],
                backends=[
                    pb.RouteBackend(
                        ref=pb.BackendRef(backend_key="backend/agentgateway-system/openai"), weight=1
                    )
                ],
            )
        ),
    ]


@pytest.mark.parametrize("key", ["sk-from-secret", "Bearer sk-from-secret"])
async def test_openai_sdk_reaches_the_provider_with_the_backend_key_model_and_path(
    tmp_path: Path, fake_openai: tuple[int, list[dict[str, Any]]], key: str
) -> None:
    upstream_port, seen = fake_openai
    snapshots = cache.SnapshotCache()
    gateway = cache.GatewayKey("agentgateway-system", "agentgateway-proxy")
    port = harness.free_port()
    snapshots.publish(gateway, _resources(port, upstream_port, key))
    ads = server.DeltaAds(snapshots)
    grpc_server, xds_port = await server.start(ads, 0, "127.0.0.1")
    proxy = XdsProxy(tmp_path, xds_port, namespace="agentgateway-system", gateway="agentgateway-proxy")
    try:
        await asyncio.to_thread(proxy.start)
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/openai", api_key="client-key-not-forwarded", max_retries=0
        )
        reply = await client.chat.completions.create(
            model="whatever-the-client-says", messages=[{"role": "user", "content": "Explain agent gateways"}]
        )
        assert reply.choices[0].message.content == "hi there"
        assert seen[-1]["path"] == "/v1/chat/completions"
        assert seen[-1]["headers"]["Authorization"] == "Bearer sk-from-secret"
        assert seen[-1]["body"]["model"] == "gpt-4o"
        assert seen[-1]["body"]["messages"] == [{"role": "user", "content": "Explain agent gateways"}]

        stream = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "stream please"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
        assert text == "hi there"
        assert seen[-1]["body"]["stream"] is True
        await client.close()

        async with harness.client() as c, c.get(proxy.admin_url("/config_dump")) as r:
            dump = await r.text()
        assert "sk-from-secret" not in dump
    finally:
        await asyncio.to_thread(proxy.stop)
        async with asyncio.timeout(5):
            await ads.close_streams()
        await grpc_server.stop(0.5)


async def test_a_body_that_is_not_json_gets_400(
    tmp_path: Path, fake_openai: tuple[int, list[dict[str, Any]]]
) -> None:
    upstream_port, seen = fake_openai
    snapshots = cache.SnapshotCache()
    gateway = cache.GatewayKey("agentgateway-system", "agentgateway-proxy")
    port = harness.free_port()
    snapshots.publish(gateway, _resources(port, upstream_port, "sk"))
    ads = server.DeltaAds(snapshots)
    grpc_server, xds_port = await server.start(ads, 0, "127.0.0.1")
    proxy = XdsProxy(tmp_path, xds_port, namespace="agentgateway-system", gateway="agentgateway-proxy")
    try:
        await asyncio.to_thread(proxy.start)
        async with harness.client() as c, c.post(f"http://127.0.0.1:{port}/openai", data=b"not json") as r:
            assert r.status == 400
            assert "must be JSON" in await r.text()
        assert seen == []
    finally:
        await asyncio.to_thread(proxy.stop)
        async with asyncio.timeout(5):
            await ads.close_streams()
        await grpc_server.stop(0.5)
