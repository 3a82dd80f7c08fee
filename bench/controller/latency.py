"""Route change -> served: `kubectl apply` of an HTTPRoute edit until the proxy answers 200 on the new path.

    latency.py --out RESULTS.json --logdir DIR --changes 20 --background 0 1000

Needs a running apiserver (bench/controller/run.sh starts one with hack/apiserver.sh) with the
Gateway API and agentgw CRDs installed; KUBECONFIG and KUBECTL in the environment.

Per background size B (a fresh namespace `bench-<B>`, and a fresh controller and proxy):
  1. an aiohttp upstream (echo_upstream.py) on a free 127.0.0.1 port;
  2. `python -m controller` in Kubernetes mode (KUBECONFIG; --xds-host 127.0.0.1, free --xds-port,
     --metrics-port 0 because that endpoint binds 0.0.0.0; default --debounce 0.1);
  3. `kubectl apply` of: the namespace, a Gateway `bench-gw` of class agentgateway with one HTTP
     listener on a free port, an AgentgatewayBackend `static` (host 127.0.0.1, the upstream's
     port), the HTTPRoute `bench` (PathPrefix /c0 -> that backend) and B background HTTPRoutes
     (/bg/<i> -> the same backend);
  4. an `agentgw-proxy` with XDS_ADDRESS / NAMESPACE / GATEWAY (as a Deployment would carry them),
     a settings-only file with operator endpoints on free 127.0.0.1 ports; wait for readiness and
     for /c0 to answer 200 (and, with background routes, /bg/<B-1>), then until the controller is
     idle (< 0.05 CPU-s in one second: it writes one status per route, and every write comes back
     as a watch event and another reconcile);
  5. one warm-up edit (path /w0; reported apart, not in the percentiles: kubectl's cache dir is
     fresh, so its first apply of an HTTPRoute also fetches discovery and OpenAPI documents), then
     `changes` times: edit HTTPRoute `bench` to PathPrefix /c<i>. t0 is taken just before the
     `kubectl apply -f -` process is started; a keep-alive client polls GET /c<i> on the listener
     (1 ms sleep between polls) until the first 200 from the upstream (body "echo /c<i>"); the
     latency is first-200 - t0. kubectl's own wall time (start -> exit) is recorded too, and the
     rest (kubectl exit -> first 200), which is the controller + xDS + proxy part (it can be
     negative if the proxy serves the change before kubectl has exited). 10 s timeout per change.
     The controller's CPU time (utime + stime) over the changes, per change, is recorded too.
Every process is started in its own session, its PID appended to $BENCH_XDS_PIDFILE (the file
run.sh reads to stop leftovers) and stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "xds"))
import common  # (bench/xds/common.py: processes, HTTP client, /proc, percentiles)

KUBECTL = os.environ.get("KUBECTL", "kubectl")
CHANGE_TIMEOUT = 10.0
SETUP_TIMEOUT = 120.0
GATEWAY = "bench-gw"
WARMUP = 1
"""Untimed-in-the-stats edits first: kubectl's first apply of an HTTPRoute fetches discovery and
OpenAPI documents into its (fresh, per-run) cache dir and takes ~1 s longer; reported apart."""


def route(ns: str, name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": GATEWAY}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [
                        {"group": "agentgateway.dev", "kind": "AgentgatewayBackend", "name": "static"}
                    ],
                }
            ],
        },
    }


def setup_docs(ns: str, listener_port: int, upstream_port: int, background: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": ns},
            "spec": {
                "gatewayClassName": "agentgateway",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": listener_port}],
            },
        },
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayBackend",
            "metadata": {"name": "static", "namespace": ns},
            "spec": {"static": {"host": "127.0.0.1", "port": upstream_port}},
        },
        route(ns, "bench", "/c0"),
    ]
    docs += [route(ns, f"bg-{i}", f"/bg/{i}") for i in range(background)]
    return docs


async def kubectl(*args: str, stdin: str | None = None, limit: float = 120.0) -> tuple[float, str]:
    """Run kubectl; (wall seconds, stdout). Raises on failure."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.monotonic() - t0, out.decode()


async def wait_200(client: common.KeepAlive, path: str, limit: float, body: bytes | None = None) -> float:
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, got = await client.get(path, limit=2.0)
            last = status
            if status == 200 and (body is None or got == body):
                return time.monotonic()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, common.HttpError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.001)
    raise TimeoutError(f"GET {path} not 200 after {limit}s (last: {last})")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_idle(pid: int, limit: float, busy: float = 0.05) -> float:
    """Wait until the process used less than `busy` CPU-seconds in one second; seconds waited."""
    t0 = time.monotonic()
    before = cpu_s(pid)
    while time.monotonic() - t0 < limit:
        await asyncio.sleep(1.0)
        now = cpu_s(pid)
        if now - before < busy:
            return time.monotonic() - t0
        before = now
    raise TimeoutError(f"pid {pid} still busy after {limit}s")


async def measure(background: int, changes: int, procs: common.Procs, logdir: Path) -> dict[str, Any]:
    ns = f"bench-{background}"
    upstream_port, listener_port, xds_port = common.free_ports(3)
    upstream = procs.start(
        f"upstream-{background}",
        [common.PYTHON, str(Path(__file__).with_name("echo_upstream.py")), str(upstream_port)],
        logdir=logdir,
    )
    await common.wait_port(upstream, upstream_port, 30)
    ctl = procs.start(
        f"controller-{background}",
        [
            common.PYTHON,
            "-m",
            "controller",
            "--xds-host",
            common.HOST,
            "--xds-port",
            str(xds_port),
            "--metrics-port",
            "0",
            "--gateway-classes",
            "agentgateway",
            "--log-level",
            "warning",
        ],
        logdir=logdir,
    )
    await common.wait_port(ctl, xds_port, SETUP_TIMEOUT)
    out: dict[str, Any] = {"background": background, "namespace": ns}
    docs = setup_docs(ns, listener_port, upstream_port, background)
    t = time.monotonic()
    await kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), limit=300)
    out["setup_apply_s"] = time.monotonic() - t
    common.log(f"{background} background routes: applied {len(docs)} objects in {out['setup_apply_s']:.1f}s")

    settings = common.write_proxy_settings(logdir / f"proxy-{background}.yaml")
    proxy = procs.start(
        f"proxy-{background}",
        [common.PROXY, "-f", str(settings.path)],
        env=common.proxy_env(xds_port, ns, GATEWAY),
        logdir=logdir,
    )
    await common.wait_ready(proxy, settings.ready, SETUP_TIMEOUT)
    client = common.KeepAlive(listener_port)
    await wait_200(client, "/c0", SETUP_TIMEOUT)
    if background:
        await wait_200(client, f"/bg/{background - 1}", SETUP_TIMEOUT)
    out["setup_served_s"] = time.monotonic() - t
    common.log(
        f"{background} background routes: everything served {out['setup_served_s']:.1f}s after the apply"
    )
    # let status writes and deploys from the setup settle: the controller writes one status per
    # route, and each write comes back as a watch event and another (debounced) reconcile
    out["settle_s"] = await wait_idle(ctl.pid, SETUP_TIMEOUT)
    common.log(f"{background} background routes: controller idle after {out['settle_s']:.1f}s more")
    cpu0 = cpu_s(ctl.pid)

    samples = []
    for i in range(0 - WARMUP + 1, changes + 1):
        path = f"/c{i}" if i > 0 else f"/w{-i}"
        text = yaml.safe_dump(route(ns, "bench", path))
        t0 = time.monotonic()
        apply_task = asyncio.create_task(kubectl("apply", "-f", "-", stdin=text, limit=30))
        try:
            served = await wait_200(client, path, CHANGE_TIMEOUT, body=f"echo {path}".encode())
        finally:
            kubectl_s, _ = await apply_task
        total = served - t0
        sample = {"i": i, "latency_s": total, "kubectl_s": kubectl_s, "after_kubectl_s": total - kubectl_s}
        if i > 0:
            samples.append(sample)
        else:
            out.setdefault("warmup", []).append(sample)
        what = f"change {i}" if i > 0 else "warm-up change (not counted)"
        common.log(f"  {what}: {total * 1000:.0f} ms (kubectl {kubectl_s * 1000:.0f} ms)")
        await asyncio.sleep(0.2)
    out["controller_cpu_per_change_s"] = (cpu_s(ctl.pid) - cpu0) / (changes + WARMUP)
    lat = [s["latency_s"] for s in samples]
    kub = [s["kubectl_s"] for s in samples]
    aft = [s["after_kubectl_s"] for s in samples]
    out.update(
        samples=samples,
        p50_s=common.percentile(lat, 50),
        p99_s=common.percentile(lat, 99),
        max_s=max(lat),
        kubectl_p50_s=common.percentile(kub, 50),
        kubectl_p99_s=common.percentile(kub, 99),
        after_kubectl_p50_s=common.percentile(aft, 50),
        after_kubectl_p99_s=common.percentile(aft, 99),
        controller_rss_kib=common.proc_status_kib(ctl.pid),
        controller_hwm_kib=common.proc_status_kib(ctl.pid, "VmHWM"),
        proxy_rss_kib=common.proc_status_kib(proxy.pid),
    )
    client.close()
    for p in (proxy, ctl, upstream):
        procs.stop(p)
    try:
        await kubectl("delete", "namespace", ns, "--wait=false", limit=60)
    except RuntimeError as exc:
        common.log(f"namespace {ns} not deleted: {exc}")
    return out


async def amain(args: argparse.Namespace) -> None:
    common.cancel_on_signals()
    procs = common.Procs()
    logdir = Path(args.logdir)
    results = []
    try:
        for b in args.background:
            results.append(await measure(b, args.changes, procs, logdir))
            common.write_json(args.out, results)
    finally:
        procs.stop_all()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--background", type=int, nargs="+", default=[0])
    args = p.parse_args()
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
