"""`agentgw-controller`: the control plane, against Kubernetes or from one file.

    agentgw-controller [--xds-port 9978] [--metrics-port 9092]
                       [--gateway-classes agentgateway,agentgateway-v2]

watches the cluster (KUBECONFIG, or the in-cluster service account) with kopf, translates Gateway
API and agentgateway.dev objects into one xDS snapshot per Gateway of our classes, serves them
over delta xDS to the proxies, writes statuses, and creates the `--gateway-classes` that are
missing (controllerName agentgateway.dev/agentgateway). Flow: controller.k8s.operator (kopf event
handlers) -> controller.k8s.store -> controller.reconcile -> controller.xds.cache + status.

    agentgw-controller --from-file config.yaml --xds-port 9978

serves the standalone file's resources over delta xDS to every proxy that connects
(`agentgw-proxy` with XDS_ADDRESS=host:9978) and republishes them when the file changes.

Both: `--metrics-port` (default 9092) serves /metrics and /healthz. SIGTERM stops it: proxies keep
serving their last good config and reconnect when a controller is back.

`--xds-auth tokenreview` (Kubernetes mode; default `none`): every xDS stream must carry
`authorization: Bearer <ServiceAccount token>` of the proxy ServiceAccount of the Gateway it asks
for, checked by TokenReview (controller.k8s.tokenreview; `--xds-token-audience` when the proxies'
projected tokens name an audience). `--leader-elect`: replicas campaign for the Lease
`agentgw-controller` in `--leader-elect-namespace` (default env POD_NAMESPACE) as POD_NAME (else
hostname-pid); only the leader writes statuses and deploys proxies, every replica serves xDS
(controller.k8s.leader).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

import kopf
import uvloop
from aiohttp import web

from api import errors
from controller import deployer, filesource, reconcile, translate
from controller.k8s import client, deploy, leader, operator, status, store, tokenreview
from controller.xds import cache, metrics, server

log = logging.getLogger("agentgw.controller")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agentgw-controller", description="agentgw control plane")
    p.add_argument("--from-file", help="serve this standalone config file to every proxy (no Kubernetes)")
    p.add_argument("--xds-port", type=int, default=9978, help="delta xDS (gRPC) port (default 9978)")
    p.add_argument("--xds-host", default="0.0.0.0")
    p.add_argument("--metrics-port", type=int, default=9092, help="/metrics and /healthz (0 disables)")
    p.add_argument(
        "--xds-auth",
        choices=["none", "tokenreview"],
        default="none",
        help="proxy authentication: none, or tokenreview (Kubernetes mode; the chart passes it)",
    )
    p.add_argument(
        "--xds-token-audience",
        action="append",
        default=[],
        help="audience the proxies' tokens must carry (repeatable; default: the apiserver's own)",
    )
    p.add_argument(
        "--gateway-classes",
        default="agentgateway,agentgateway-v2",
        help="GatewayClasses to create if missing (comma-separated; empty: none)",
    )
    p.add_argument("--controller-name", default=translate.CONTROLLER_NAME, help=argparse.SUPPRESS)
    defaults = deployer.DeployerSettings()
    p.add_argument(
        "--xds-address",
        default=defaults.xds_address,
        help=f"the address proxies dial, set in their Deployment (default {defaults.xds_address})",
    )
    p.add_argument("--proxy-image-registry", default=defaults.image_registry)
    p.add_argument("--proxy-image-repository", default=defaults.image_repository)
    p.add_argument("--proxy-image-tag", default=defaults.image_tag)
    p.add_argument("--proxy-image-pull-policy", default="")
    p.add_argument("--proxy-replicas", type=int, default=defaults.replicas)
    p.add_argument(
        "--leader-elect", action="store_true", help="only the holder of the Lease writes statuses and deploys"
    )
    p.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("POD_NAMESPACE") or "",
        help="namespace of the Lease (default env POD_NAMESPACE)",
    )
    p.add_argument("--leader-elect-lease", type=float, default=15.0, help=argparse.SUPPRESS)
    p.add_argument("--leader-elect-renew", type=float, default=5.0, help=argparse.SUPPRESS)
    p.add_argument("--leader-elect-retry", type=float, default=2.0, help=argparse.SUPPRESS)
    p.add_argument("--debounce", type=float, default=0.1, help="seconds to wait for more changes (0.1)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def _metrics_server(stats: metrics.Registry, port: int) -> web.AppRunner:
    async def render(_: web.Request) -> web.Response:
        return web.Response(text=stats.render(), content_type="text/plain")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", render)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port, reuse_address=True).start()
    return runner


async def _stopped() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run_kubernetes(args: argparse.Namespace) -> int:
    try:
        info = client.credentials()
    except kopf.LoginError as exc:
        print(f"agentgw-controller: {exc}", file=sys.stderr)
        return 1
    if args.leader_elect and not args.leader_elect_namespace:
        print(
            "agentgw-controller: --leader-elect needs --leader-elect-namespace or POD_NAMESPACE",
            file=sys.stderr,
        )
        return 1
    stop = await _stopped()
    stats = metrics.Registry()
    snapshots = cache.SnapshotCache(stats)
    api = client.Client(info)
    auth = (
        tokenreview.ServiceAccountAuthorizer(tokenreview.ApiReviewer(api, args.xds_token_audience))
        if args.xds_auth == "tokenreview"
        else None
    )
    ads = server.DeltaAds(snapshots, stats, auth)
    grpc_server, port = await server.start(ads, args.xds_port, args.xds_host)
    log.info("xDS on %s:%d (auth: %s)", args.xds_host, port, args.xds_auth)
    runner = await _metrics_server(stats, args.metrics_port) if args.metrics_port else None

    objects = store.Store()
    writer = status.Writer(api, args.controller_name)
    kopf_stop = asyncio.Event()
    kopf_task = asyncio.create_task(
        kopf.operator(
            registry=operator.registry(objects, info),
            settings=operator.settings(),
            clusterwide=True,
            standalone=True,
            stop_flag=kopf_stop,
        )
    )
    proxies = deploy.Deployer(
        api,
        deployer.DeployerSettings(
            image_registry=args.proxy_image_registry,
            image_repository=args.proxy_image_repository,
            image_tag=args.proxy_image_tag,
            image_pull_policy=args.proxy_image_pull_policy or None,
            xds_address=args.xds_address,
            replicas=args.proxy_replicas,
            # the proxies' projected token carries the audience the xDS server checks
            xds_token_audience=(args.xds_token_audience or [deployer.DeployerSettings.xds_token_audience])[0],
        ),
    )
    reconciler = reconcile.Reconciler(
        objects,
        snapshots,
        None if args.leader_elect else writer.write,
        controller_name=args.controller_name,
        debounce=args.debounce,
        deploy=None if args.leader_elect else proxies.sync,
        rejections=ads.rejections,
    )
    ads.on_nack = reconciler.poke
    classes = [c.strip() for c in args.gateway_classes.split(",") if c.strip()]
    elector: leader.Elector | None = None
    if args.leader_elect:

        def leading(now: bool) -> None:
            reconciler.set_writers(writer.write if now else None, proxies.sync if now else None)

        elector = leader.Elector(
            api,
            args.leader_elect_namespace,
            os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            lease=args.leader_elect_lease,
            renew=args.leader_elect_renew,
            retry=args.leader_elect_retry,
            renew_deadline=max(args.leader_elect_lease * 2 / 3, args.leader_elect_renew),
            on_change=leading,
        )

    async def main_loop() -> None:
        await operator.wait_synced(api, objects)
        log.info("initial state loaded (%d objects); reconciling", sum(1 for _ in objects.objects()))
        background = [asyncio.create_task(_ensure_classes(api, classes, args.controller_name))]
        if elector is not None:
            background.append(asyncio.create_task(elector.run()))
        try:
            await reconciler.run()
        finally:
            for task in background:
                task.cancel()

    work = asyncio.create_task(main_loop())
    stop_task = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({work, kopf_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in (work, kopf_task):
        if task in done and not task.cancelled() and task.exception() is not None:
            log.error("stopping: %r", task.exception())
            code = 1
    work.cancel()
    stop_task.cancel()
    kopf_stop.set()
    with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
        async with asyncio.timeout(5):
            await kopf_task
    kopf_task.cancel()
    if elector is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                await elector.release()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await ads.close_streams()
    await grpc_server.stop(1.0)
    await api.close()
    if runner is not None:
        await runner.cleanup()
    return code


async def _ensure_classes(api: client.Client, names: list[str], controller_name: str) -> None:
    """Retry every 5 s until they exist (the GatewayClass CRD may be installed later)."""
    while True:
        if not names or await operator.ensure_gateway_classes(api, names, controller_name):
            return
        await asyncio.sleep(5)


async def _run(args: argparse.Namespace) -> int:
    if args.from_file is None:
        return await _run_kubernetes(args)
    if args.xds_auth != "none":
        print("agentgw-controller: --xds-auth tokenreview needs Kubernetes mode", file=sys.stderr)
        return 1
    try:
        model = filesource.load(args.from_file)
    except errors.ConfigError as exc:
        print(f"{args.from_file}: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    stats = metrics.Registry()
    snapshots = cache.SnapshotCache(stats)
    gateway = filesource.gateway_of(model)
    source = filesource.FileSource(args.from_file, snapshots, gateway)
    if not source.publish():
        return 1
    ads = server.DeltaAds(filesource.AnyGateway(snapshots, gateway), stats)
    grpc_server, port = await server.start(ads, args.xds_port, args.xds_host)
    log.info("serving %s as gateway %s over xDS on %s:%d", args.from_file, gateway, args.xds_host, port)
    runner = await _metrics_server(stats, args.metrics_port) if args.metrics_port else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(source.run())
    await stop.wait()
    watcher.cancel()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await ads.close_streams()
    await grpc_server.stop(1.0)
    if runner is not None:
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        # kopf logs every handled watch event at INFO ("Handler 'store-...' succeeded").
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return uvloop.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
