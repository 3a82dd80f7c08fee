"""AgentgatewayPolicy end to end: a real kube-apiserver, `agentgw-controller`, an xDS-fed proxy.

A module fixture runs `hack/apiserver.sh up` (its own state dir; `down` at the end), installs the
Gateway API CRDs and crds/, and starts `agentgw-controller` against it. One Gateway (class
`agentgateway`, one HTTP listener on a free port) gets HTTPRoutes `/`, `/jwt`, `/keys` and
`/inherit`, all to an `ExternalName` Service `echo` whose name is 127.0.0.1 and whose port is a
real echo upstream's (the controller turns such a Service into a static host:port). One proxy
process subscribes as that Gateway (XDS_ADDRESS, NAMESPACE, GATEWAY) and is never restarted:
every policy change below reaches it over xDS.

The tests run in file order and share the objects; a test that attaches a policy to the whole
Gateway deletes it before it ends. Waits poll, bounded in time; processes are stopped by PID.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dataplane.tests import harness
from e2e import k8s
from e2e.processes import XdsProxy

NS = "policies"
GATEWAY = "gw"
ISSUER = "https://issuer.test"
AUDIENCE = "agentgw"
POLICY_API = "agentgateway.dev/v1alpha1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "agentgateway.dev/agentgateway"

pytestmark = k8s.timeout(180)
Cluster = k8s.Cluster
Controller = k8s.Controller
wait_for = k8s.wait_for


# ----------------------------------------------------------------------------------- helpers


def conditions(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in entry.get("conditions", [])}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One GET on a fresh connection (nothing kept alive between requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def policy(name: str, target_kind: str, target_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": POLICY_API,
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRefs": [{"group": GATEWAY_GROUP, "kind": target_kind, "name": target_name}],
            **spec,
        },
    }


def route(name: str, prefix: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": GATEWAY}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                    "backendRefs": [{"name": "echo", "port": port}],
                }
            ],
        },
    }


def gateway_ancestor(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The policy's status entry for our Gateway, once the controller wrote one."""
    obj = cluster.get("agentgatewaypolicy", name)
    for entry in (obj.get("status") or {}).get("ancestors", []):
        if entry["ancestorRef"].get("kind") == "Gateway" and entry["ancestorRef"]["name"] == GATEWAY:
            return {**entry, "generation": obj["metadata"]["generation"]}
    return None


def wait_for_ancestor(
    cluster: Cluster, name: str, ready: Callable[[dict[str, dict[str, Any]]], bool]
) -> dict[str, Any]:
    """The Gateway ancestor entry of policy `name` once its conditions satisfy `ready` and are
    about the object's current generation."""

    def check() -> dict[str, Any] | None:
        entry = gateway_ancestor(cluster, name)
        if entry is None:
            return None
        conds = conditions(entry)
        current = all(c.get("observedGeneration") == entry["generation"] for c in conds.values())
        return entry if current and ready(conds) else None

    result: dict[str, Any] = wait_for(f"the status of AgentgatewayPolicy {name}", check)
    return result


def has_status(cond: dict[str, Any] | None, status: str, reason: str) -> bool:
    return cond is not None and (cond["status"], cond["reason"]) == (status, reason)


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


@pytest.fixture(scope="module")
def upstream() -> Iterator[harness.Upstream]:
    """The harness's echo server (it answers with the headers it saw), in a thread with its own
    event loop so that the tests can block on kubectl."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    up = harness.Upstream("echo")
    try:
        asyncio.run_coroutine_threadsafe(up.__aenter__(), loop).result(10)
        yield up
    finally:
        asyncio.run_coroutine_threadsafe(up.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Env:
    cluster: Cluster
    port: int
    """The Gateway listener's port on 127.0.0.1."""
    proxy: XdsProxy

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return request(self.port, path, headers)

    def status(self, path: str, headers: dict[str, str] | None = None) -> int:
        return self.get(path, headers).status

    def policy_keys(self) -> set[str]:
        """Keys of the Policy resources the proxy applied (its admin /config_dump)."""
        with urllib.request.urlopen(self.proxy.admin_url("/config_dump"), timeout=5) as reply:
            dump = json.loads(reply.read())
        return {res["policy"]["key"] for res in dump["resources"] if "policy" in res}

    def applied(self, name: str) -> bool:
        return any(k.startswith(f"policy/{NS}/{name}/") for k in self.policy_keys())

    def settled(self, name: str) -> bool:
        """The proxy applied policy `name`, or rejected it (NACK, logged with the resource key)."""
        return self.applied(name) or f"policy/{NS}/{name}/" in self.proxy.stderr_log.read_text()


@pytest.fixture(scope="module")
def env(
    cluster: Cluster,
    controller: Controller,
    upstream: harness.Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    port = harness.free_port()
    cluster.apply(
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NS},
            "spec": {
                "gatewayClassName": "agentgateway",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": port}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo", "namespace": NS},
            "spec": {
                "type": "ExternalName",
                "externalName": "127.0.0.1",
                "ports": [{"name": "http", "port": upstream.port}],
            },
        },
        route("app", "/", upstream.port),
        route("jwt", "/jwt", upstream.port),
        route("keys", "/keys", upstream.port),
        route("inherit", "/inherit", upstream.port),
    )
    proxy = XdsProxy(tmp_path_factory.mktemp("proxy"), controller.xds_port, namespace=NS, gateway=GATEWAY)
    proxy.start(timeout=k8s.WAIT)
    try:
        e = Env(cluster, port, proxy)
        wait_for("the routes to answer 200", lambda: all(e.status(p) == 200 for p in ("/", "/inherit")))
        yield e
    finally:
        proxy.stop()


@dataclass(frozen=True)
class Issuer:
    key: Any
    jwks: str

    def token(self, sub: str) -> str:
        claims = {"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": int(time.time()) + 600}
        return pyjwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    return Issuer(key, json.dumps({"keys": [jwk]}))


# ----------------------------------------------------------------------------------- tests


def test_a_route_to_an_external_name_service_reaches_the_echo_upstream(env: Env) -> None:
    reply = env.get("/hello", {"x-probe": "1"})
    assert reply.status == 200
    seen = reply.json()
    assert (seen["backend"], seen["path"], seen["headers"]["x-probe"]) == ("echo", "/hello", "1")


def test_jwt_authentication_with_an_authorization_rule_on_a_route(env: Env, issuer: Issuer) -> None:
    env.cluster.apply(
        policy(
            "jwt",
            "HTTPRoute",
            "jwt",
            traffic={
                "jwtAuthentication": {
                    "mode": "Strict",
                    "providers": [
                        {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"inline": issuer.jwks}}
                    ],
                },
                "authorization": {
                    "action": "Require",
                    "policy": {"matchExpressions": ['jwt.sub == "alice"']},
                },
            },
        )
    )
    missing = wait_for("/jwt without a token to get 401", lambda: (r := env.get("/jwt")).status == 401 and r)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert b"jwt" in missing.body
    assert env.status("/jwt", bearer(issuer.token("bob"))) == 403
    assert env.status("/jwt", bearer("not.a.token")) == 401
    alice = env.get("/jwt/x", bearer(issuer.token("alice")))
    assert alice.status == 200
    assert "authorization" not in alice.json()["headers"]
    assert env.status("/") == 200  # other routes are not affected

    entry = wait_for_ancestor(
        env.cluster,
        "jwt",
        lambda c: (
            has_status(c.get("Accepted"), "True", "Valid")
            and has_status(c.get("Attached"), "True", "Attached")
        ),
    )
    assert entry["ancestorRef"] == {
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
        "namespace": NS,
        "name": GATEWAY,
    }
    assert entry["controllerName"] == CONTROLLER_NAME
    assert entry["generation"] == 1
    ancestors = env.cluster.get("agentgatewaypolicy", "jwt")["status"]["ancestors"]
    assert len(ancestors) == 1  # every target resolved: no StatusSummary entry


def test_a_local_rate_limit_on_the_gateway_answers_429_until_the_policy_is_deleted(env: Env) -> None:
    env.cluster.apply(
        policy(
            "limit",
            "Gateway",
            GATEWAY,
            traffic={"rateLimit": {"local": [{"requests": 3, "burst": 0, "unit": "Minutes"}]}},
        )
    )
    pid = env.proxy.proc.pid if env.proxy.proc else None
    try:
        wait_for("the proxy to apply the rate limit", lambda: env.applied("limit"))
        statuses = [env.status("/") for _ in range(3)]
        refused = env.get("/")
        assert statuses == [200, 200, 200]
        assert refused.status == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert env.status("/inherit") == 429  # one bucket for the whole Gateway
        wait_for_ancestor(
            env.cluster,
            "limit",
            lambda c: (
                has_status(c.get("Accepted"), "True", "Valid")
                and has_status(c.get("Attached"), "True", "Attached")
            ),
        )
    finally:
        env.cluster.delete("agentgatewaypolicy", "limit")
    wait_for("requests to pass once the policy is deleted", lambda: env.status("/") == 200)
    assert [env.status("/") for _ in range(5)] == [200] * 5
    assert not env.applied("limit")
    assert env.proxy.proc is not None and env.proxy.proc.pid == pid and env.proxy.proc.poll() is None


def _key_secret(key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api-keys", "namespace": NS},
        "type": "Opaque",
        "stringData": {"client-a": json.dumps({"key": key, "metadata": {"team": "a"}})},
    }


def test_api_keys_from_a_secret_follow_changes_to_the_secret(env: Env) -> None:
    env.cluster.apply(
        _key_secret("key-one"),
        policy(
            "keys",
            "HTTPRoute",
            "keys",
            traffic={
                "apiKeyAuthentication": {"secretRef": {"name": "api-keys"}},
                "authorization": {
                    "action": "Require",
                    "policy": {"matchExpressions": ["apiKey.team == 'a'"]},
                },
            },
        ),
    )
    wait_for("/keys without a key to get 401", lambda: env.status("/keys") == 401)
    assert env.status("/keys", bearer("wrong-key")) == 401
    reply = env.get("/keys", bearer("key-one"))
    assert reply.status == 200
    assert "authorization" not in reply.json()["headers"]
    entry = wait_for_ancestor(env.cluster, "keys", lambda c: has_status(c.get("Accepted"), "True", "Valid"))
    assert "key-one" not in json.dumps(entry)

    env.cluster.apply(_key_secret("key-two"))
    wait_for("the new key to get 200", lambda: env.status("/keys", bearer("key-two")) == 200)
    assert env.status("/keys", bearer("key-one")) == 401
    assert env.status("/", bearer("key-one")) == 200  # the route without the policy


def test_an_override_gateway_policy_wins_over_a_route_policy_and_the_route_policy_says_so(env: Env) -> None:
    blocked = {"x-block": "yes"}
    route_policy = policy(
        "inherit-route",
        "HTTPRoute",
        "inherit",
        traffic={
            "authorization": {
                "action": "Allow",
                "policy": {"matchExpressions": ['request.path.startsWith("/inherit")']},
            }
        },
    )
    gateway_policy = policy(
        "block",
        "Gateway",
        GATEWAY,
        traffic={
            "authorization": {
                "action": "Deny",
                "policy": {"matchExpressions": ['request.headers["x-block"] == "yes"']},
            }
        },
    )
    try:
        # Default inheritance: the route's own authorization is more specific and wins there.
        env.cluster.apply(route_policy, gateway_policy)
        wait_for("the Gateway policy to deny on /", lambda: env.status("/", blocked) == 403)
        wait_for("the route policy to reach the proxy", lambda: env.applied("inherit-route"))
        assert env.status("/inherit", blocked) == 200
        wait_for_ancestor(
            env.cluster, "inherit-route", lambda c: has_status(c.get("Attached"), "True", "Attached")
        )

        # Override: the Gateway's authorization wins on every route, the route policy loses all it sets.
        gateway_policy["spec"]["strategy"] = {"inheritance": "Override"}
        env.cluster.apply(gateway_policy)
        wait_for("the Override policy to deny on /inherit", lambda: env.status("/inherit", blocked) == 403)
        assert env.status("/inherit") == 200
        assert env.status("/", blocked) == 403
        entry = wait_for_ancestor(
            env.cluster, "inherit-route", lambda c: has_status(c.get("Attached"), "False", "Overridden")
        )
        attached = conditions(entry)["Attached"]
        assert "authorization" in attached["message"]
        assert f"AgentgatewayPolicy {NS}/block" in attached["message"]
        assert has_status(conditions(entry)["Accepted"], "True", "Valid")
        block = wait_for_ancestor(
            env.cluster, "block", lambda c: has_status(c.get("Attached"), "True", "Attached")
        )
        assert block["generation"] == 2
        # The JWT route keeps its authentication but loses its authorization rule: Merged.
        jwt = wait_for_ancestor(env.cluster, "jwt", lambda c: has_status(c.get("Attached"), "True", "Merged"))
        assert "authorization" in conditions(jwt)["Attached"]["message"]
    finally:
        env.cluster.delete("agentgatewaypolicy", "block")
        env.cluster.delete("agentgatewaypolicy", "inherit-route")
    wait_for("/ to pass x-block again", lambda: env.status("/", blocked) == 200)
    wait_for_ancestor(env.cluster, "jwt", lambda c: has_status(c.get("Attached"), "True", "Attached"))


def test_the_apiserver_rejects_an_unknown_jwt_mode_with_the_crd_message(env: Env, issuer: Issuer) -> None:
    bad = policy(
        "sometimes",
        "HTTPRoute",
        "app",
        traffic={
            "jwtAuthentication": {
                "mode": "Sometimes",
                "providers": [{"issuer": ISSUER, "jwks": {"inline": issuer.jwks}}],
            }
        },
    )
    out = env.cluster.apply(bad, check=False)
    assert out.returncode != 0
    assert 'spec.traffic.jwtAuthentication.mode: Unsupported value: "Sometimes"' in out.stderr
    assert '"Strict", "Optional", "Permissive"' in out.stderr
    assert env.cluster.get("agentgatewaypolicy", "sometimes") == {}


def test_a_bad_cel_expression_is_reported_on_the_policy_and_other_routes_keep_working(
    env: Env, issuer: Issuer
) -> None:
    try:
        env.cluster.apply(
            policy(
                "bad-cel",
                "HTTPRoute",
                "inherit",
                traffic={
                    "authorization": {
                        "action": "Require",
                        "policy": {
                            "matchExpressions": ['request.headers["x-ok"] == "yes"', "request.path =="]
                        },
                    }
                },
            )
        )
        entry = wait_for_ancestor(
            env.cluster, "bad-cel", lambda c: has_status(c.get("Accepted"), "False", "Invalid")
        )
        message = conditions(entry)["Accepted"]["message"]
        assert "traffic.authorization.policy.matchExpressions[1]: invalid CEL expression" in message
        assert "matchExpressions[0]" not in message
        wait_for("the proxy to take or refuse the policy", lambda: env.settled("bad-cel"))
        assert env.status("/") == 200
        assert env.status("/jwt", bearer(issuer.token("alice"))) == 200
        assert env.status("/jwt", bearer(issuer.token("bob"))) == 403
        assert env.status("/keys", bearer("key-two")) == 200
        assert env.proxy.proc is not None and env.proxy.proc.poll() is None
    finally:
        env.cluster.delete("agentgatewaypolicy", "bad-cel")
    wait_for("the proxy to drop the policy", lambda: not env.applied("bad-cel"))


def test_a_new_policy_with_a_cel_typo_does_not_leave_its_route_open(env: Env) -> None:
    try:
        env.cluster.apply(
            policy(
                "typo",
                "HTTPRoute",
                "inherit",
                traffic={
                    "apiKeyAuthentication": {"secretRef": {"name": "api-keys"}},
                    "authorization": {
                        "action": "Require",
                        "policy": {"matchExpressions": ["apiKey.team =="]},
                    },
                },
            )
        )
        wait_for_ancestor(env.cluster, "typo", lambda c: has_status(c.get("Accepted"), "False", "Invalid"))
        wait_for("the proxy to take or refuse the policy", lambda: env.settled("typo"))
        assert env.status("/inherit") in (401, 403)  # no API key: refused, as the policy asks
    finally:
        env.cluster.delete("agentgatewaypolicy", "typo")
        wait_for("the proxy to drop the policy", lambda: not env.applied("typo"))


def test_an_expression_only_the_proxy_rejects_is_reported_in_the_policy_status(env: Env) -> None:
    # Parses (the controller's check passes) but names an unknown variable: the proxy's type check
    # rejects it, puts a deny-all stand-in on the route, and the controller reports the NACK.
    try:
        env.cluster.apply(
            policy(
                "unknown-var",
                "HTTPRoute",
                "inherit",
                traffic={
                    "authorization": {
                        "action": "Require",
                        "policy": {"matchExpressions": ['nope.sub == "x"']},
                    }
                },
            )
        )
        entry = wait_for_ancestor(
            env.cluster, "unknown-var", lambda c: has_status(c.get("Accepted"), "False", "Invalid")
        )
        message = conditions(entry)["Accepted"]["message"]
        assert message.startswith("rejected by the proxy: ") and "nope" in message
        assert env.status("/inherit") == 403
        assert env.status("/") == 200
    finally:
        env.cluster.delete("agentgatewaypolicy", "unknown-var")
        wait_for("the proxy to drop the policy", lambda: not env.applied("unknown-var"))


def test_the_proxy_config_dump_does_not_show_api_keys(env: Env) -> None:
    wait_for("the key policy in the proxy", lambda: env.applied("keys"))
    with urllib.request.urlopen(env.proxy.admin_url("/config_dump"), timeout=5) as r:
        dump = r.read().decode()
    assert "key-two" not in dump


def test_the_controller_logged_no_errors(controller: Controller, env: Env) -> None:
    assert controller.proc.poll() is None
    # kopf retries (and logs at ERROR) the 429s an apiserver answers right after a CRD install.
    errors = [
        line for line in controller.text().splitlines() if " ERROR " in line and "will retry" not in line
    ]
    assert errors == []
