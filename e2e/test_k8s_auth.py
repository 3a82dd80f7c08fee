"""xDS authorization and leader election against a real kube-apiserver (hack/apiserver.sh).

ServiceAccount tokens are minted with `kubectl create token`; the xDS server runs in this process
with the TokenReview authorizer (`--xds-auth tokenreview`'s wiring) and the proxy's own
`XdsClient` reads its token from a file. Two leader `Elector`s campaign on a real Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.k8s import client, leader, tokenreview
from controller.tests import xds_fixtures as fx
from controller.xds import cache, server
from dataplane.xds import client as xds_client
from e2e import k8s

WAIT = 15.0
GW = cache.GatewayKey("team-a", "gw")

pytestmark = k8s.timeout(120)
Cluster = k8s.Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with k8s.apiserver(tmp_path_factory.mktemp("apiserver") / "state") as c:
        for ns in ("team-a", "team-b", "agentgw-system"):
            c.kubectl("create", "namespace", ns)
        c.kubectl("create", "serviceaccount", "gw", "-n", "team-a")
        c.kubectl("create", "serviceaccount", "other", "-n", "team-a")
        c.kubectl("create", "serviceaccount", "gw", "-n", "team-b")
        yield c


@pytest.fixture
async def api(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[client.Client]:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    c = client.Client(client.credentials())
    try:
        yield c
    finally:
        await c.close()


@dataclass
class Xds:
    port: int
    ads: server.DeltaAds
    auth: tokenreview.ServiceAccountAuthorizer


@pytest.fixture
async def xds(api: client.Client) -> AsyncIterator[Xds]:
    c = cache.SnapshotCache()
    c.publish(GW, fx.gateway("a"))
    auth = tokenreview.ServiceAccountAuthorizer(tokenreview.ApiReviewer(api))
    ads = server.DeltaAds(c, c.stats, auth)
    srv, port = await server.start(ads, 0, "127.0.0.1")
    try:
        yield Xds(port, ads, auth)
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await ads.close_streams()
        await srv.stop(None)


def _token(cluster: Cluster, tmp_path: Path, namespace: str, sa: str) -> Path:
    path = tmp_path / f"{namespace}-{sa}.token"
    path.write_text(cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=10m").stdout)
    return path


async def _proxy_outcome(xds: Xds, token_file: Path | None) -> str:
    """Run the proxy's XdsClient as team-a/gw: 'synced', or the code of the stream's first refusal."""

    async def apply(resources: list[Any], compiled: Any = None) -> None:
        pass

    proxy = xds_client.XdsClient(
        f"127.0.0.1:{xds.port}",
        GW.namespace,
        GW.name,
        apply,
        token_file=str(token_file) if token_file else None,
        backoff=xds_client.Backoff(initial=0.05, maximum=0.2),
    )
    before = dict(xds.ads.denied.values)
    task = asyncio.create_task(proxy.run())
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if proxy.synced:
                    return "synced"
                for labels, n in xds.ads.denied.values.items():
                    if n > before.get(labels, 0):
                        return labels[1]
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_gateways_service_account_token_is_served(
    cluster: Cluster, xds: Xds, tmp_path: Path
) -> None:
    assert await _proxy_outcome(xds, _token(cluster, tmp_path, "team-a", "gw")) == "synced"
    assert xds.auth.reviews == 1


async def test_another_service_account_is_denied(cluster: Cluster, xds: Xds, tmp_path: Path) -> None:
    assert await _proxy_outcome(xds, _token(cluster, tmp_path, "team-a", "other")) == "PERMISSION_DENIED"


async def test_another_namespaces_proxy_is_denied(cluster: Cluster, xds: Xds, tmp_path: Path) -> None:
    assert await _proxy_outcome(xds, _token(cluster, tmp_path, "team-b", "gw")) == "PERMISSION_DENIED"


async def test_a_forged_or_missing_token_is_unauthenticated(xds: Xds, tmp_path: Path) -> None:
    forged = tmp_path / "forged"
    forged.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert await _proxy_outcome(xds, forged) == "UNAUTHENTICATED"
    assert await _proxy_outcome(xds, None) == "UNAUTHENTICATED"


async def test_one_of_two_electors_holds_the_real_lease(api: client.Client) -> None:
    a = leader.Elector(api, "agentgw-system", "replica-a")
    b = leader.Elector(api, "agentgw-system", "replica-b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.try_acquire_or_renew()  # renewal
    lease = await api.get(a.path)
    assert lease["spec"]["holderIdentity"] == "replica-a"
    a.is_leader = True
    await a.release()
    assert await b.try_acquire_or_renew()
    lease = await api.get(a.path)
    assert lease["spec"]["holderIdentity"] == "replica-b"
    assert lease["spec"]["leaseTransitions"] == 0  # a released: the holder was empty when b took it
