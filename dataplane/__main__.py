"""`agentgw-proxy`: run the gateway from a standalone file, or validate one.

    agentgw-proxy -f config.yaml               serve; the file is watched and hot-reloaded
    agentgw-proxy -f config.yaml --workers 2   two processes sharing every port (SO_REUSEPORT)
    agentgw-proxy --validate -f config.yaml    print every problem and exit 1, or exit 0

With one worker (the default) this process serves traffic itself; with more, it becomes the
supervisor (`supervisor.Supervisor`). SIGTERM drains: readiness fails, listeners stop accepting,
in-flight requests get `connectionTerminationDeadline` to finish, then connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

import uvloop

from dataplane import admin, errors, runtime, supervisor
from dataplane.config import local, watch

log = logging.getLogger("agentgw")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agentgw-proxy", description="agentgw data-plane proxy")
    p.add_argument("-f", "--file", required=True, help="standalone config file (agentgateway format)")
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
    if args.workers < 1:
        p.error(f"--workers must be at least 1 (got {args.workers})")
    return args


async def _serve_single(path: str, cfg: local.LocalConfig, seen: watch.Fingerprint | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = runtime.Worker(cfg.settings)

    async def metrics_text() -> str:
        return worker.stats.render()

    # Operator endpoints first: a taken address fails before any traffic port opens, and
    # readiness answers 503 until the first config is applied.
    a = cfg.settings.admin
    runners = await admin.start(
        [("admin", a.admin_addr), ("stats", a.stats_addr), ("readiness", a.readiness_addr)],
        admin.Endpoints(worker.store, metrics_text, lambda: worker.store.ready and not stop.is_set()),
    )
    source = watch.FileSource(path, worker.apply, worker.store, worker.stats, cfg.settings, seen=seen)
    await source.load_initial(cfg)
    runtime.tune_gc()
    watcher = loop.create_task(source.run())
    await stop.wait()
    log.info("shutting down: draining connections (deadline %.1fs)", cfg.settings.drain.deadline)
    await asyncio.sleep(cfg.settings.drain.min_deadline)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await worker.drain(cfg.settings.drain.deadline)
    for r in runners:
        await r.cleanup()
    return 0


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
    seen = watch.fingerprint(args.file)  # before reading: an edit made meanwhile is reloaded
    try:
        cfg = watch.load(args.file)
    except errors.ConfigError as exc:
        print(f"{args.file}: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.validate:
        n = len(cfg.resources)
        print(f"{args.file}: valid ({n} resources)")
        return 0
    try:
        if args.workers > 1:
            sup = supervisor.Supervisor(args.file, cfg, args.workers, args.log_level, seen=seen)
            return uvloop.run(sup.run())
        return uvloop.run(_serve_single(args.file, cfg, seen))
    except admin.AddressError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
