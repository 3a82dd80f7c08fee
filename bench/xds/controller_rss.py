"""Controller-side memory: `agentgw-controller --from-file` serving N routes to one proxy.

    controller_rss.py --out RESULTS.json --logdir DIR [--sizes 10 10000]

Per size: write the route file (bench/xds/common.py), start the controller on 127.0.0.1 (metrics
endpoint disabled: it would bind 0.0.0.0), time until its xDS port accepts connections (the
file is loaded, lowered and published before the gRPC server starts), read its VmRSS; then start
one `agentgw-proxy` subscribed to it, wait for readiness 200, let both settle for 1 s and read
VmRSS (and the peak, VmHWM) of both processes. Both are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import common
import uvloop

START_TIMEOUT = 120.0
SETTLE = 1.0


async def measure(n: int, procs: common.Procs, logdir: Path) -> dict[str, Any]:
    bind_port, xds_port = common.free_ports(2)
    path = logdir / f"controller-{n}.yaml"
    path.write_text(common.route_yaml(n, bind_port))
    started = time.monotonic()
    ctl = procs.start(
        f"controller-{n}",
        [
            common.CONTROLLER,
            "--from-file",
            str(path),
            "--xds-port",
            str(xds_port),
            "--xds-host",
            common.HOST,
            "--metrics-port",
            "0",
            "--log-level",
            "warning",
        ],
        logdir=logdir,
    )
    proxy = None
    try:
        listening = await common.wait_port(ctl, xds_port, START_TIMEOUT)
        out: dict[str, Any] = {
            "routes": n,
            "controller_start_to_serving_s": listening - started,
            "controller_rss_before_proxy_kib": common.proc_status_kib(ctl.pid),
        }
        common.log(
            f"controller {n} routes: serving {out['controller_start_to_serving_s']:.2f}s after start, "
            f"RSS {out['controller_rss_before_proxy_kib'] / 1024:.0f} MiB"
        )
        settings = common.write_proxy_settings(logdir / f"controller-{n}-proxy.yaml")
        t0 = time.monotonic()
        proxy = procs.start(
            f"controller-{n}-proxy",
            [common.PROXY, "-f", str(settings.path)],
            env=common.proxy_env(xds_port, "default", "default"),
            logdir=logdir,
        )
        ready = await common.wait_ready(proxy, settings.ready, START_TIMEOUT)
        assert ready.ready is not None
        out["proxy_start_to_ready_s"] = ready.ready - t0
        await asyncio.sleep(SETTLE)
        status, body = await common.http_get(bind_port, f"/r/{n - 1}")
        if (status, body) != (200, b"v0"):
            raise RuntimeError(f"/r/{n - 1} answered {status} {body[:100]!r}")
        _, text = await common.http_get(settings.stats, "/metrics")
        out["proxy_resources_received"] = common.metric_sum(
            text.decode(), "agentgw_xds_client_resources_received_total"
        )
        out["controller_rss_after_sync_kib"] = common.proc_status_kib(ctl.pid)
        out["controller_hwm_kib"] = common.proc_status_kib(ctl.pid, "VmHWM")
        out["proxy_rss_after_sync_kib"] = common.proc_status_kib(proxy.pid)
        out["proxy_hwm_kib"] = common.proc_status_kib(proxy.pid, "VmHWM")
        common.log(
            f"controller {n} routes + 1 proxy: controller RSS "
            f"{out['controller_rss_after_sync_kib'] / 1024:.0f} MiB "
            f"(peak {out['controller_hwm_kib'] / 1024:.0f}),"
            f" proxy RSS {out['proxy_rss_after_sync_kib'] / 1024:.0f} MiB "
            f"(ready {out['proxy_start_to_ready_s']:.2f}s after start)"
        )
        return out
    finally:
        if proxy is not None:
            procs.stop(proxy)
        procs.stop(ctl)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    common.cancel_on_signals()
    procs = common.Procs()
    out: dict[str, Any] = {"sizes": []}
    try:
        for n in args.sizes:
            out["sizes"].append(await measure(n, procs, Path(args.logdir)))
            common.write_json(args.out, out)
    finally:
        procs.stop_all()
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--sizes", type=int, nargs="*", default=[10, 10000])
    args = p.parse_args()
    try:
        out = uvloop.run(amain(args))
    except asyncio.CancelledError:
        common.log("interrupted; every process started was stopped")
        return 143
    common.write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
