"""`agentgw-proxy`: run the gateway from a standalone file or from a control plane over xDS.

    agentgw-proxy -f config.yaml               serve; the file is watched and hot-reloaded
    agentgw-proxy -f config.yaml --workers 2   two processes sharing every port (SO_REUSEPORT)
    agentgw-proxy --validate -f config.yaml    print every problem and exit 1, or exit 0
    XDS_ADDRESS=host:9978 NAMESPACE=ns GATEWAY=gw agentgw-proxy
                                               subscribe to the controller instead of a file
                                               (`-f` may still give the `config:` settings;
                                               XDS_TOKEN_FILE: a token to authenticate with)

With one worker (the default) this process serves traffic itself; with more, it becomes the
supervisor (`supervisor.Supervisor`). SIGTERM drains: readiness fails, listeners stop accepting,
in-flight requests get `connectionTerminationDeadline` to finish, then connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from dataplane import accel, admin, errors, runtime, settings, supervisor
from dataplane.config import local, watch
from dataplane.config import store as config_store
from dataplane.telemetry import metrics
from dataplane.xds import client as xds_client

log = logging.getLogger("agentgw")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agentgw-proxy", description="agentgw data-plane proxy")
    p.add_argument("-f", "--file", default=None, help="standalone config file (agentgateway format)")
    p.add_argument(
        "--xds-address", default=os.environ.get("XDS_ADDRESS") or None, help="host:port (env XDS_ADDRESS)"
    )
    p.add_argument("--namespace", default=os.environ.get("NAMESPACE", "default"), help="env NAMESPACE")
    p.add_argument("--gateway", default=os.environ.get("GATEWAY", "default"), help="env GATEWAY")
    p.add_argument(
        "--xds-token-file",
        default=os.environ.get("XDS_TOKEN_FILE") or None,
        help="ServiceAccount token sent to the controller, re-read at each connect (env XDS_TOKEN_FILE)",
    )
    p.add_argument("--validate", "--validate-only", action="store_true", help="check the file and exit")
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("AGENTGW_WORKERS", "1")),
        help="worker processes sharing each port (default 1; one per core is a good start)",
    )
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    p.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.file is None and args.xds_address is None and args.worker_fd is None:
        p.error("give a config file (-f FILE) or a control plane (--xds-address / XDS_ADDRESS)")
    if args.workers < 1:
        p.error(f"--workers must be at least 1 (got {args.workers})")
    return args


def xds_source(args: argparse.Namespace, apply: xds_client.Apply, stats: metrics.Registry) -> Source:
    """The controller as config source; the xDS client's metrics join the process's /metrics."""
    client = xds_client.XdsClient(
        args.xds_address, args.namespace, args.gateway, apply, token_file=args.xds_token_file
    )

    async def run() -> None:
        log.info("subscribing to %s as %s~%s", args.xds_address, args.namespace, args.gateway)
        await client.run()

    return Source(run=run, owned=client.stats.metrics)


@dataclasses.dataclass
class Source:
    """Where configuration comes from: a task to run, and the metrics that task owns."""

    run: Callable[[], Coroutine[Any, Any, None]]
    owned: list[metrics.Counter | metrics.Histogram] = dataclasses.field(default_factory=list)


def file_source(
    path: str,
    cfg: local.LocalConfig,
    seen: watch.Fingerprint | None,
    apply: watch.Apply,
    store: config_store.Store,
    stats: metrics.Registry,
) -> Source:
    source = watch.FileSource(path, apply, store, stats, cfg.settings, seen=seen)

    async def run() -> None:
        await source.load_initial(cfg)
        await source.run()

    return Source(run=run)


async def _serve_single(cfg: local.LocalConfig, make_source: SourceFactory) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = runtime.Worker(cfg.settings)
    source = make_source(worker.apply, worker.store, worker.stats)

    async def metrics_text() -> str:
        return worker.stats.render(owned=source.owned)

    # Operator endpoints first: a taken address fails before any traffic port opens, and
    # readiness answers 503 until the first config is applied.
    a = cfg.settings.admin
    runners = await admin.start(
        [("admin", a.admin_addr), ("stats", a.stats_addr), ("readiness", a.readiness_addr)],
        admin.Endpoints(worker.store, metrics_text, lambda: worker.store.ready and not stop.is_set()),
    )
    feeder = loop.create_task(source.run())
    gc_tuned = False
    while not stop.is_set() and not gc_tuned:
        if worker.store.ready:
            runtime.tune_gc()  # after the first config: its objects are frozen out of the GC
            gc_tuned = True
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await stop.wait()
    await stop.wait()
    log.info("shutting down: draining connections (deadline %.1fs)", cfg.settings.drain.deadline)
    await asyncio.sleep(cfg.settings.drain.min_deadline)
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feeder
    await worker.drain(cfg.settings.drain.deadline)
    for r in runners:
        await r.cleanup()
    return 0


SourceFactory = Callable[[watch.Apply, config_store.Store, metrics.Registry], Source]


def _startup(args: argparse.Namespace) -> tuple[local.LocalConfig, watch.Fingerprint | None]:
    """Read the file if there is one; in xDS mode it may only carry startup settings."""
    if args.file is None:
        return local.LocalConfig(settings=settings.Settings(), resources=[]), None
    seen = watch.fingerprint(args.file)  # before reading: an edit made meanwhile is reloaded
    cfg = watch.load(args.file)
    if args.xds_address and cfg.resources:
        raise errors.ConfigError(
            [
                "binds, backends: routing comes from the control plane in xDS mode; "
                "keep only `config:` in the file"
            ]
        )
    return cfg, seen


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper() if args.log_level.upper() in logging._nameToLevel else "INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.worker_fd is not None:
        # a worker of a supervisor: settings and resources come over the control socket, so a
        # file edited (or broken) since the supervisor started does not matter here
        return uvloop.run(supervisor.run_worker(args.worker_fd))
    label = args.file or args.xds_address
    try:
        cfg, seen = _startup(args)
    except errors.ConfigError as exc:
        print(f"{label}: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.validate:
        print(f"{label}: valid ({len(cfg.resources)} resources)")
        return 0

    def make_source(apply: watch.Apply, store: config_store.Store, stats: metrics.Registry) -> Source:
        if args.xds_address:
            return xds_source(args, apply, stats)
        return file_source(args.file, cfg, seen, apply, store, stats)

    level = logging.INFO if accel.STATE == "compiled" else logging.WARNING
    log.log(level, "request path: %s", accel.STATE)
    try:
        if args.workers > 1:
            sup = supervisor.Supervisor(cfg, args.workers, args.log_level, make_source)
            return uvloop.run(sup.run())
        return uvloop.run(_serve_single(cfg, make_source))
    except admin.AddressError as exc:
        print(f"{label}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
