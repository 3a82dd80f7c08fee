"""The seed, end to end: a real kube-apiserver, `agentgw-controller`, an xDS-fed proxy, the openai SDK.

A session fixture runs `hack/apiserver.sh up` (its own state dir; `down` at the end), installs
the Gateway API CRDs (e2e/gateway-api, v1.6.1 standard channel) and crds/, and starts
`agentgw-controller` (Kubernetes mode, free xDS and metrics ports, KUBECONFIG of that apiserver).
The seed manifests (api/tests/testdata/valid/seed-001-openai.yaml) are applied with a key in the
Secret and, on the AgentgatewayBackend, host/port overrides to a fake OpenAI server on 127.0.0.1.
A proxy starts with the env a Deployment would carry (XDS_ADDRESS, NAMESPACE, GATEWAY); the
Gateway's listener port 80 is used as is when it can be bound, else a free port replaces it.

Every wait is bounded; every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import yaml
from aiohttp import web

from dataplane.tests import harness
from e2e import k8s
from e2e.processes import XdsProxy

SEED = k8s.REPO / "api" / "tests" / "testdata" / "valid" / "seed-001-openai.yaml"
NS = "agentgateway-system"
KEY = "sk-from-the-secret"

pytestmark = k8s.timeout(180)
Cluster = k8s.Cluster
Controller = k8s.Controller
wait_for = k8s.wait_for


def conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry.get("conditions", [])}


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("apiserver") / "state"
    with k8s.apiserver(state, crds=(k8s.GATEWAY_API, k8s.CRDS), namespace=NS) as c:
        yield c


@pytest.fixture(scope="module")
def controller(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    with k8s.controller(cluster, tmp_path_factory.mktemp("controller")) as ctl:
        yield ctl


@dataclass
class FakeOpenAI:
    port: int
    seen: list[dict[str, Any]]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    """An OpenAI chat-completions endpoint on 127.0.0.1, in a thread with its own loop."""
    import asyncio

    seen: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"path": request.path, "headers": dict(request.headers), "body": body})
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

    port = harness.free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        r = web.AppRunner(app, access_log=None)
        await r.setup()
        await web.TCPSite(r, "127.0.0.1", port).start()
        runner.append(r)
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10)
    try:
        yield FakeOpenAI(port, seen)
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _port_80_free() -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", 80))
        except OSError:
            return False
    return True


@dataclass
class Seed:
    listener_port: int
    docs: list[dict[str, Any]]

    def doc(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.docs if d["kind"] == kind)


@pytest.fixture(scope="module")
def seed(cluster: Cluster, controller: Controller, fake_openai: FakeOpenAI) -> Seed:
    docs = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    port = 80 if _port_80_free() else harness.free_port()  # 80 needs root (or a free port 80)
    for d in docs:
        if d["kind"] == "Gateway":
            d["spec"]["listeners"][0]["port"] = port
        if d["kind"] == "Secret":
            d["stringData"]["Authorization"] = KEY
        if d["kind"] == "AgentgatewayBackend":
            d["spec"]["ai"]["provider"].update({"host": "127.0.0.1", "port": fake_openai.port})
    cluster.apply(*docs)  # into NS, which the cluster fixture created
    return Seed(port, docs)


@pytest.fixture(scope="module")
def proxy(seed: Seed, controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> Iterator[XdsProxy]:
    p = XdsProxy(
        tmp_path_factory.mktemp("proxy"), controller.xds_port, namespace=NS, gateway="agentgateway-proxy"
    )
    p.start(timeout=k8s.WAIT)
    try:
        yield p
    finally:
        p.stop()


def _chat(port: int, prefix: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}{prefix}", api_key="client-key", max_retries=0)
    with contextlib.closing(client):
        return client.chat.completions.create(
            model="whatever", messages=[{"role": "user", "content": "Explain agent gateways"}], timeout=10
        )


def _status_code(port: int, prefix: str) -> int:
    try:
        _chat(port, prefix)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


# ----------------------------------------------------------------------------------- tests


def test_the_seed_objects_get_accepted_and_programmed_statuses(cluster: Cluster, seed: Seed) -> None:
    def class_ok() -> Any:
        gc = cluster.get("gatewayclass", "agentgateway-v2", namespace=None)
        return conditions(gc.get("status", {})).get("Accepted") == ("True", "Accepted") and gc

    gc = wait_for("GatewayClass agentgateway-v2 Accepted", class_ok)
    assert gc["spec"]["controllerName"] == "agentgateway.dev/agentgateway"

    def gateway_ok() -> bool:
        c = conditions(cluster.get("gateway", "agentgateway-proxy").get("status", {}))
        return c.get("Accepted", ("",))[0] == "True" and c.get("Programmed", ("",))[0] == "True"

    wait_for("Gateway Accepted and Programmed", gateway_ok)

    def route_ok() -> bool:
        parents = cluster.get("httproute", "openai").get("status", {}).get("parents", [])
        return any(
            conditions(p).get("Accepted", ("",))[0] == "True"
            and conditions(p).get("ResolvedRefs", ("",))[0] == "True"
            for p in parents
        )

    wait_for("HTTPRoute parents Accepted and ResolvedRefs", route_ok)
    wait_for(
        "AgentgatewayBackend Accepted",
        lambda: (
            conditions(cluster.get("agentgatewaybackend", "openai").get("status", {})).get("Accepted", ("",))[
                0
            ]
            == "True"
        ),
    )


def test_the_gateway_gets_its_proxy_deployment_service_and_config(cluster: Cluster, seed: Seed) -> None:
    def deployment() -> dict[str, Any] | None:
        out = cluster.kubectl("get", "deployments", "-n", "agentgateway-system", "-o", "json")
        items = [
            d
            for d in json.loads(out.stdout)["items"]
            if d["metadata"].get("labels", {}).get("gateway.networking.k8s.io/gateway-name")
            == "agentgateway-proxy"
        ]
        return items[0] if items else None

    dep = wait_for("the proxy Deployment", deployment)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["NAMESPACE"] == "agentgateway-system"
    assert env["GATEWAY"] == "agentgateway-proxy"
    assert env["XDS_ADDRESS"]
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Gateway", "agentgateway-proxy")
    name = dep["metadata"]["name"]
    svc = json.loads(
        cluster.kubectl("get", "service", name, "-n", "agentgateway-system", "-o", "json").stdout
    )
    assert 80 in [p["port"] for p in svc["spec"]["ports"]]
    for kind in ("serviceaccount", "configmap"):
        cluster.kubectl("get", kind, name, "-n", "agentgateway-system")


def test_kopf_writes_nothing_but_statuses_to_the_objects(cluster: Cluster, seed: Seed) -> None:
    for kind, name in [
        ("gateway", "agentgateway-proxy"),
        ("httproute", "openai"),
        ("secret", "openai-secret"),
    ]:
        meta = cluster.get(kind, name)["metadata"]
        assert not meta.get("finalizers"), (kind, meta)
        assert not [a for a in meta.get("annotations", {}) if "kopf" in a], (kind, meta)


def test_an_openai_chat_request_reaches_the_provider_with_the_secret_key(
    seed: Seed, proxy: XdsProxy, fake_openai: FakeOpenAI
) -> None:
    reply = wait_for("a 200 through /openai", lambda: _try_chat(seed.listener_port, "/openai"))
    assert reply.choices[0].message.content == "hi there"
    last = fake_openai.seen[-1]
    assert last["path"] == "/v1/chat/completions"
    assert last["headers"]["Authorization"] == f"Bearer {KEY}"
    assert last["body"]["model"] == "gpt-4o"


def _try_chat(port: int, prefix: str) -> openai.types.chat.ChatCompletion | None:
    try:
        return _chat(port, prefix)
    except openai.APIError:
        return None


def test_the_proxy_follows_an_edited_route_path_without_restarting(
    cluster: Cluster, seed: Seed, proxy: XdsProxy
) -> None:
    pid = proxy.proc.pid if proxy.proc else None
    route = json.loads(json.dumps(seed.doc("HTTPRoute")))
    route["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/openai2"
    cluster.apply(route)
    wait_for("/openai2 to answer 200", lambda: _status_code(seed.listener_port, "/openai2") == 200)
    assert _status_code(seed.listener_port, "/openai") == 404
    assert proxy.proc is not None and proxy.proc.pid == pid and proxy.proc.poll() is None


def test_a_deleted_route_gets_404(cluster: Cluster, seed: Seed, proxy: XdsProxy) -> None:
    cluster.kubectl("delete", "httproute", "openai", "-n", NS)
    wait_for("/openai2 to answer 404", lambda: _status_code(seed.listener_port, "/openai2") == 404)


def test_a_route_to_a_missing_service_has_backend_not_found(cluster: Cluster, seed: Seed) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "missing", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "agentgateway-proxy"}],
            "rules": [{"backendRefs": [{"name": "no-such-service", "port": 8080}]}],
        },
    }
    cluster.apply(route)

    def resolved() -> tuple[str, str] | None:
        parents = cluster.get("httproute", "missing").get("status", {}).get("parents", [])
        return conditions(parents[0]).get("ResolvedRefs") if parents else None

    assert wait_for("ResolvedRefs on route missing", resolved) == ("False", "BackendNotFound")


def test_an_invalid_backend_is_rejected_by_the_apiserver_with_the_crd_message(
    cluster: Cluster, seed: Seed
) -> None:
    backend = json.loads(json.dumps(seed.doc("AgentgatewayBackend")))
    backend["metadata"]["name"] = "half-override"
    backend["spec"]["ai"]["provider"].pop("port")
    out = cluster.apply(backend, check=False)
    assert out.returncode != 0
    assert "both host and port must be set together" in out.stderr


def test_the_controller_serves_metrics_and_logged_no_errors(controller: Controller, seed: Seed) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{controller.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "agentgateway-system/agentgateway-proxy" in text
    assert controller.proc.poll() is None
    # kopf retries (and logs at ERROR) the 429s an apiserver answers right after a CRD install.
    errors = [
        line for line in controller.text().splitlines() if " ERROR " in line and "will retry" not in line
    ]
    assert errors == []
