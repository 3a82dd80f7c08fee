"""`agentgw-controller`: the control plane. Today: `--from-file` mode, one gateway from a file.

    agentgw-controller --from-file config.yaml --xds-port 9978

serves the standalone file's resources over delta xDS to every proxy that connects
(`agentgw-proxy` with XDS_ADDRESS=host:9978) and republishes them when the file changes.
`--metrics-port` (default 9092) serves /metrics and /healthz. SIGTERM stops it: proxies keep
serving their last good config and reconnect when a controller is back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import uvloop
from aiohttp import web

from api import errors
from controller import filesource
from controller.xds import cache, metrics, server

log = logging.getLogger("agentgw.controller")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agentgw-controller", description="agentgw control plane")
    p.add_argument("--from-file", required=True, help="serve this standalone config file to every proxy")
    p.add_argument("--xds-port", type=int, default=9978, help="delta xDS (gRPC) port (default 9978)")
    p.add_argument("--xds-host", default="0.0.0.0")
    p.add_argument("--metrics-port", type=int, default=9092, help="/metrics and /healthz (0 disables)")
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


async def _run(args: argparse.Namespace) -> int:
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
    return uvloop.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
