"""xDS propagation benchmark: publish in-process, time until a real proxy serves the change.

    propagation.py --out RESULTS.json --logdir DIR [--sizes 10 1000 10000] [--changes 50]
                   [--stage-sizes 1000 10000] [--stage-changes 10]

The controller's `SnapshotCache` and `DeltaAds` gRPC server run inside this process (uvloop), on
127.0.0.1. Per route-set size N (bench/xds/common.py: N direct-response routes /r/<i>):

1. publish the set for gateway bench/routes-N, then start `agentgw-proxy` subscribed to it
   (XDS_ADDRESS/NAMESPACE/GATEWAY, settings-only `-f` file) and time process start -> first
   readiness answer (process up) -> readiness 200 (first config applied): the initial sync;
   read the proxy's VmRSS/VmHWM;
2. CHANGES one-route edits, one at a time: route k's directResponse body becomes "v<i>"; time
   from `cache.publish(...)` returning to the first response from the proxy carrying "v<i>"
   (keep-alive client, GET /r/k in a loop with 1 ms sleeps, 10 s timeout per change; the longest
   single GET in that loop shows how long the proxy's event loop was blocked). After each
   change the ACK is awaited and the server's agentgw_xds_resources_sent_total (and
   agentgw_xds_pushes_total) are read from `Registry.render()`: a one-route edit should send
   exactly one resource in one push;
3. a stage pass (sizes --stage-sizes): the same changes through bench/xds/proxy_stages.py, the
   proxy with timing hooks, to say where the time goes (server push, transport, client decode +
   compile, worker compile + install).

`DeltaAds._push` is wrapped in this process (not in the source) to stamp each push. The results
(JSON) are read by bench/xds/report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import common
import uvloop

from controller.xds import cache, metrics, server, snapshot

NAMESPACE = "bench"
CHANGE_TIMEOUT = 10.0
SYNC_TIMEOUT = 60.0
POLL_SLEEP = 0.001
GAP = 0.05
"""Pause between changes, so each one starts from a quiet proxy."""


class PushLog:
    """Wraps `DeltaAds._push` of one server instance: (start, end, resources sent) per push."""

    def __init__(self, ads: server.DeltaAds) -> None:
        self.pushes: list[dict[str, Any]] = []
        orig = ads._push

        async def push(state: server.StreamState, snap: snapshot.Snapshot, context: Any) -> None:
            before = state.pushes
            t0 = time.monotonic()
            await orig(state, snap, context)
            if state.pushes != before:
                end = time.monotonic()
                # The stream's handler processes ACKs only after this returns, so the newest
                # pending push is this one.
                nonce = next(reversed(state.pending)) if state.pending else ""
                sent = len(state.pending[nonce].versions) if nonce else None
                self.pushes.append(
                    {"start": t0, "end": end, "nonce": nonce, "gateway": str(state.gateway), "sent": sent}
                )

        ads._push = push  # type: ignore[method-assign]

    def after(self, t: float, gateway: str) -> dict[str, Any] | None:
        for p in self.pushes:
            if p["start"] >= t and p["gateway"] == gateway:
                return p
        return None


def counters(stats: metrics.Registry) -> dict[str, float]:
    """Read the server's counters the way a scraper would: from the rendered text."""
    text = stats.render()
    return {
        "resources_sent": common.metric_sum(text, "agentgw_xds_resources_sent_total"),
        "resources_removed": common.metric_sum(text, "agentgw_xds_resources_removed_total"),
        "pushes": common.metric_sum(text, "agentgw_xds_pushes_total"),
        "acks": common.metric_sum(text, "agentgw_xds_acks_total"),
        "nacks": common.metric_sum(text, "agentgw_xds_nacks_total"),
    }


def acks_total(stats: metrics.Registry) -> float:
    """ACKs + NACKs received so far (read from the registry directly: polled every 2 ms)."""
    return sum(stats.acks.values.values()) + sum(stats.nacks.values.values())


async def wait_acks(stats: metrics.Registry, at_least: float, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if acks_total(stats) >= at_least:
            return True
        await asyncio.sleep(0.002)
    return False


async def run_size(
    n: int,
    changes: int,
    *,
    snapshots: cache.SnapshotCache,
    stats: metrics.Registry,
    pushes: PushLog,
    xds_port: int,
    procs: common.Procs,
    logdir: Path,
    stages_file: Path | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Initial sync + `changes` one-route edits at `n` routes; returns the measurements."""
    tag = f"routes-{n}{label}"
    gw = cache.GatewayKey(NAMESPACE, tag)
    (bind_port,) = common.free_ports(1)
    t0 = time.perf_counter()
    resources = common.route_resources(n, bind_port)
    build_model_s = time.perf_counter() - t0
    index = common.route_index(resources)
    t0 = time.perf_counter()
    snapshots.publish(gw, resources)
    initial_publish_s = time.perf_counter() - t0
    common.log(
        f"{tag}: {len(resources)} resources (validate+lower {build_model_s:.2f}s, "
        f"publish {initial_publish_s * 1000:.0f} ms)"
    )

    settings = common.write_proxy_settings(logdir / f"proxy-{tag}.yaml")
    if stages_file is None:
        argv = [common.PROXY, "-f", str(settings.path)]
        env = common.proxy_env(xds_port, NAMESPACE, tag)
    else:
        argv = [common.PYTHON, str(Path(__file__).with_name("proxy_stages.py")), "-f", str(settings.path)]
        env = {**common.proxy_env(xds_port, NAMESPACE, tag), "BENCH_XDS_STAGES_FILE": str(stages_file)}
        if os.environ.get("BENCH_XDS_CPROFILE_DIR"):
            env["BENCH_XDS_CPROFILE"] = str(
                Path(os.environ["BENCH_XDS_CPROFILE_DIR"]) / f"proxy-{tag}.pstats"
            )
    acks0 = acks_total(stats)
    started = time.monotonic()
    proc = procs.start(f"proxy-{tag}", argv, env=env, logdir=logdir)
    result: dict[str, Any] = {"routes": n, "resources": len(resources), "label": label}
    try:
        ready = await common.wait_ready(proc, settings.ready, SYNC_TIMEOUT)
        assert ready.ready is not None and ready.answered is not None
        first_push = pushes.after(started, str(gw))
        result["sync"] = {
            "start_to_ready_s": ready.ready - started,
            "start_to_process_up_s": ready.answered - started,
            "process_up_to_ready_s": ready.ready - ready.answered,
            "first_push_written_s": (first_push["end"] - started) if first_push else None,
            "first_push_duration_s": (first_push["end"] - first_push["start"]) if first_push else None,
        }
        result["initial_publish_s"] = initial_publish_s
        await wait_acks(stats, acks0 + 1, CHANGE_TIMEOUT)
        result["proxy_rss_after_sync_kib"] = common.proc_status_kib(proc.pid, "VmRSS")
        common.log(
            f"{tag}: proxy ready {result['sync']['start_to_ready_s']:.2f}s after start "
            f"(up {result['sync']['start_to_process_up_s']:.2f}s, sync "
            f"{result['sync']['process_up_to_ready_s']:.2f}s), RSS "
            f"{result['proxy_rss_after_sync_kib'] / 1024:.0f} MiB"
        )

        client = common.KeepAlive(bind_port)
        status, body = await client.get("/r/0")
        if (status, body) != (200, b"v0"):
            raise RuntimeError(f"/r/0 answered {status} {body[:100]!r}, expected 200 b'v0'")

        samples: list[dict[str, Any]] = []
        stride = max(1, n // 7 + 1)
        for i in range(1, changes + 1):
            k = (i * stride + i // 7) % n
            expect = f"v{i}".encode()
            path = f"/r/{k}"
            resources = common.with_body(resources, index[k], f"v{i}")
            before = counters(stats)
            t_pub = time.perf_counter()
            snapshots.publish(gw, resources)
            published = time.monotonic()
            publish_s = time.perf_counter() - t_pub
            seen: float | None = None
            polls = 0
            longest_get = 0.0
            while True:
                sent = time.monotonic()
                status, body = await client.get(path)
                polls += 1
                now = time.monotonic()
                longest_get = max(longest_get, now - sent)
                if body == expect:
                    seen = now
                    break
                if now - published > CHANGE_TIMEOUT:
                    break
                await asyncio.sleep(POLL_SLEEP)
            acked = await wait_acks(stats, before["acks"] + before["nacks"] + 1, CHANGE_TIMEOUT)
            after = counters(stats)
            push = pushes.after(published - publish_s - 0.001, str(gw))
            sample = {
                "change": i,
                "route": k,
                "publish_s": publish_s,
                "published_at": published,
                "propagation_s": (seen - published) if seen is not None else None,
                "polls": polls,
                "longest_get_s": longest_get,
                "status": status,
                "acked": acked,
                "resources_sent": after["resources_sent"] - before["resources_sent"],
                "resources_removed": after["resources_removed"] - before["resources_removed"],
                "pushes": after["pushes"] - before["pushes"],
                "nacks": after["nacks"] - before["nacks"],
                "push_start_s": (push["start"] - published) if push else None,
                "push_written_s": (push["end"] - published) if push else None,
                "nonce": push["nonce"] if push else None,
                "push_sent": push["sent"] if push else None,
            }
            samples.append(sample)
            if seen is None:
                common.log(f"{tag}: change {i} (route {k}) not served after {CHANGE_TIMEOUT}s")
            await asyncio.sleep(GAP)
        client.close()
        result["changes"] = samples
        result["proxy_rss_after_changes_kib"] = common.proc_status_kib(proc.pid, "VmRSS")
        result["proxy_hwm_kib"] = common.proc_status_kib(proc.pid, "VmHWM")
        try:
            _, text = await common.http_get(settings.stats, "/metrics")
            body_text = text.decode()
            result["proxy_metrics"] = {
                "acks": common.metric_sum(body_text, "agentgw_xds_client_acks_total"),
                "nacks": common.metric_sum(body_text, "agentgw_xds_client_nacks_total"),
                "resources_received": common.metric_sum(
                    body_text, "agentgw_xds_client_resources_received_total"
                ),
            }
        except (OSError, TimeoutError, common.HttpError, asyncio.IncompleteReadError) as exc:
            result["proxy_metrics"] = {"error": repr(exc)}
        ok = [s["propagation_s"] for s in samples if s["propagation_s"] is not None]
        if ok:
            common.log(
                f"{tag}: {len(ok)}/{changes} changes seen, p50 {common.median(ok) * 1000:.1f} ms, "
                f"p99 {common.percentile(ok, 99) * 1000:.1f} ms, resources sent per change "
                f"{sorted({s['resources_sent'] for s in samples})}"
            )
    finally:
        procs.stop(proc)
        snapshots.clear(gw)
    return result


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    common.cancel_on_signals()
    stats = metrics.Registry()
    snapshots = cache.SnapshotCache(stats)
    ads = server.DeltaAds(snapshots, stats)
    pushes = PushLog(ads)
    grpc_server, xds_port = await server.start(ads, 0, common.HOST)
    common.log(f"in-process delta ADS server on {common.HOST}:{xds_port}")
    procs = common.Procs()
    out: dict[str, Any] = {"sizes": [], "stages": [], "changes": args.changes}
    logdir = Path(args.logdir)
    try:
        for n in args.sizes:
            out["sizes"].append(
                await run_size(
                    n,
                    args.changes,
                    snapshots=snapshots,
                    stats=stats,
                    pushes=pushes,
                    xds_port=xds_port,
                    procs=procs,
                    logdir=logdir,
                )
            )
            common.write_json(args.out, out)
        for n in args.stage_sizes:
            stages_file = logdir / f"stages-{n}.jsonl"
            stages_file.unlink(missing_ok=True)
            res = await run_size(
                n,
                args.stage_changes,
                snapshots=snapshots,
                stats=stats,
                pushes=pushes,
                xds_port=xds_port,
                procs=procs,
                logdir=logdir,
                stages_file=stages_file,
                label="-stages",
            )
            res["client"] = (
                [json.loads(line) for line in stages_file.read_text().splitlines()]
                if stages_file.exists()
                else []
            )
            out["stages"].append(res)
            common.write_json(args.out, out)
    finally:
        procs.stop_all()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await ads.close_streams()
        await grpc_server.stop(1.0)
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--sizes", type=int, nargs="*", default=[10, 1000, 10000])
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--stage-sizes", type=int, nargs="*", default=[])
    p.add_argument("--stage-changes", type=int, default=10)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        out = uvloop.run(amain(args))
    except asyncio.CancelledError:
        common.log("interrupted; every process started was stopped")
        return 143
    common.write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
