"""GRPCRoute end to end: a real kube-apiserver, `agentgw-controller`, an xDS-fed proxy, grpcio.

A module fixture runs `hack/apiserver.sh up` (its own state dir; `down` at the end) with the
Gateway API CRDs (e2e/gateway-api, v1.6.1 standard channel) and crds/, and starts
`agentgw-controller` against it. A grpcio server with generic handlers (bytes in, bytes out: no
generated stubs) listens on 127.0.0.1; an ExternalName Service `grpc-echo` (externalName
127.0.0.1, port appProtocol `kubernetes.io/h2c`) stands for it, as pods would. A Gateway with
one HTTP listener on a free port and a GRPCRoute (`agentgw.e2e.Echo/Echo` exact, a request header
set by a filter) are applied; the statuses are checked, then a proxy starts with the env a
Deployment would carry and a grpcio client calls through it (HTTP/2 prior knowledge).

Every wait is bounded; every process and server is stopped.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from dataplane.tests import harness
from e2e import k8s
from e2e.processes import XdsProxy

NS = "grpc"
GATEWAY = "gw"
GROUP = "gateway.networking.k8s.io"
SERVICE = "agentgw.e2e.Echo"

pytestmark = k8s.timeout(180)
Cluster = k8s.Cluster
Controller = k8s.Controller
wait_for = k8s.wait_for


def conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry.get("conditions", [])}


def _identity(b: bytes) -> bytes:
    return b


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
class EchoServer:
    port: int


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    """`agentgw.e2e.Echo/Echo`: answers `echo:<request>|x-via=<header>` with trailing metadata
    `x-served-by: echo`; `agentgw.e2e.Echo/Fail` ends with NOT_FOUND."""

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        via = dict(context.invocation_metadata()).get("x-via", "")
        context.set_trailing_metadata((("x-served-by", "echo"),))
        return b"echo:" + request + b"|x-via=" + str(via).encode()

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return b""  # not reached: abort raises

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo, request_deserializer=_identity, response_serializer=_identity
            ),
            "Fail": grpc.unary_unary_rpc_method_handler(
                fail, request_deserializer=_identity, response_serializer=_identity
            ),
        },
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield EchoServer(port)
    finally:
        server.stop(grace=None).wait(10)
        pool.shutdown(wait=True)


@dataclass
class Env:
    cluster: Cluster
    port: int
    """The Gateway listener's port on 127.0.0.1."""


def _route(name: str, backend: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": GATEWAY}],
            "rules": [
                {
                    "matches": [{"method": {"service": SERVICE}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-via", "value": "agentgw"}]},
                        }
                    ],
                    "backendRefs": [{"name": backend, "port": port}],
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def env(cluster: Cluster, controller: Controller, echo_server: EchoServer) -> Env:
    port = harness.free_port()
    cluster.apply(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NS},
            "spec": {
                "gatewayClassName": "agentgateway",
                "listeners": [{"name": "grpc", "protocol": "HTTP", "port": port}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "grpc-echo", "namespace": NS},
            "spec": {
                "type": "ExternalName",
                "externalName": "127.0.0.1",
                "ports": [{"name": "grpc", "port": echo_server.port, "appProtocol": "kubernetes.io/h2c"}],
            },
        },
        _route("echo", "grpc-echo", echo_server.port),
    )
    return Env(cluster, port)


@pytest.fixture(scope="module")
def proxy(env: Env, controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> Iterator[XdsProxy]:
    p = XdsProxy(tmp_path_factory.mktemp("proxy"), controller.xds_port, namespace=NS, gateway=GATEWAY)
    p.start(timeout=k8s.WAIT)
    try:
        yield p
    finally:
        p.stop()


def _call(port: int, method: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """One unary call through the proxy: (response, trailing metadata)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(
            f"/{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
        )
        reply, call = stub.with_call(body, timeout=5)
        return reply, {k: str(v) for k, v in call.trailing_metadata() or ()}


def _try_call(port: int) -> tuple[bytes, dict[str, str]] | None:
    try:
        return _call(port, "Echo", b"hi")
    except grpc.RpcError:
        return None


def _code(port: int, method: str) -> grpc.StatusCode:
    try:
        _call(port, method, b"x")
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


# ----------------------------------------------------------------------------------- tests


def test_the_grpcroute_is_accepted_with_resolved_refs_and_attached_to_the_listener(env: Env) -> None:
    def route_ok() -> bool:
        parents = env.cluster.get("grpcroute", "echo", NS).get("status", {}).get("parents", [])
        return any(
            conditions(p).get("Accepted") == ("True", "Accepted")
            and conditions(p).get("ResolvedRefs") == ("True", "ResolvedRefs")
            for p in parents
        )

    wait_for("GRPCRoute echo Accepted and ResolvedRefs", route_ok)
    route = env.cluster.get("grpcroute", "echo", NS)
    parent = route["status"]["parents"][0]
    assert parent["controllerName"] == "agentgateway.dev/agentgateway"
    assert parent["parentRef"]["name"] == GATEWAY
    generation = route["metadata"]["generation"]
    assert {c["observedGeneration"] for c in parent["conditions"]} == {generation}

    def listener() -> dict[str, Any] | None:
        found = env.cluster.get("gateway", GATEWAY, NS).get("status", {}).get("listeners", [])
        return found[0] if found and found[0]["attachedRoutes"] == 1 else None

    status = wait_for("the listener to count the GRPCRoute", listener)
    assert {"group": GROUP, "kind": "GRPCRoute"} in status["supportedKinds"]


def test_the_gateway_class_advertises_grpcroute(env: Env) -> None:
    def features() -> list[str]:
        gc = env.cluster.get("gatewayclass", "agentgateway", namespace=None)
        return [f["name"] for f in gc.get("status", {}).get("supportedFeatures", [])]

    found = wait_for("GatewayClass supportedFeatures", features)
    assert {"GRPCRoute", "GRPCRouteNamedRouteRule", "HTTPRouteBackendProtocolH2C"} <= set(found)
    assert found == sorted(found)


def test_a_grpcroute_to_a_missing_service_has_backend_not_found(env: Env) -> None:
    env.cluster.apply(_route("missing", "no-such-service", 9000))

    def resolved() -> tuple[str, str] | None:
        parents = env.cluster.get("grpcroute", "missing", NS).get("status", {}).get("parents", [])
        return conditions(parents[0]).get("ResolvedRefs") if parents else None

    assert wait_for("ResolvedRefs on GRPCRoute missing", resolved) == ("False", "BackendNotFound")
    env.cluster.kubectl("delete", "grpcroute", "missing", "-n", NS)


def test_a_grpc_call_reaches_the_backend_through_the_proxy_with_the_filter_header(
    env: Env, proxy: XdsProxy
) -> None:
    reply, trailers = wait_for("a gRPC call through the proxy", lambda: _try_call(env.port))
    assert reply == b"echo:hi|x-via=agentgw"
    assert trailers.get("x-served-by") == "echo"


def test_a_server_error_status_reaches_the_client_unchanged(env: Env, proxy: XdsProxy) -> None:
    wait_for("a gRPC call through the proxy", lambda: _try_call(env.port))
    assert _code(env.port, "Fail") == grpc.StatusCode.NOT_FOUND


def test_a_call_no_rule_matches_is_unimplemented(env: Env, proxy: XdsProxy) -> None:
    wait_for("a gRPC call through the proxy", lambda: _try_call(env.port))
    with grpc.insecure_channel(f"127.0.0.1:{env.port}") as channel:
        stub = channel.unary_unary(
            "/other.Service/Call", request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub(b"x", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_proxy_config_dump_shows_an_http2_backend(env: Env, proxy: XdsProxy) -> None:
    import urllib.request

    def routes() -> list[dict[str, Any]]:
        with urllib.request.urlopen(proxy.admin_url("/config_dump"), timeout=5) as reply:
            dump = json.loads(reply.read())
        return [r["route"] for r in dump["resources"] if "route" in r and r["route"]["name"] == "echo"]

    (route,) = wait_for("the GRPCRoute's Route on the proxy", routes)
    assert route["matches"][0]["path"] == {"regex": f"/{re.escape(SERVICE)}/[^/]+"}
    assert route["matches"][0]["precedence"] == len(SERVICE) << 16
    assert route["backends"][0]["policies"]["httpVersion"] == "HTTP_VERSION_HTTP2"


def test_the_controller_logged_no_errors(controller: Controller, env: Env) -> None:
    assert controller.proc.poll() is None
    # kopf retries (and logs at ERROR) the 429s an apiserver answers right after a CRD install.
    errors = [
        line for line in controller.text().splitlines() if " ERROR " in line and "will retry" not in line
    ]
    assert errors == []
