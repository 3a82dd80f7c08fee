"""Translation + publish time and controller memory at N generated HTTPRoutes (bench/controller/run.sh).

    translate_bench.py --out RESULTS.json --sizes 1000 10000 [--repeats 3]
    translate_bench.py --child N --repeats 1     (internal: one size in a fresh process, JSON on stdout)

Objects (plain dicts, as the Kubernetes API returns them): one GatewayClass of our controller, one
Gateway with one HTTP listener (port 8080, allowedRoutes from Same), N Services `svc-<i>` (port 80)
and N HTTPRoutes `r-<i>`, each with one rule matching PathPrefix /r/<i> to its Service.

Per size, in a fresh child process (so the RSS is that of one size only):
  - VmRSS after the imports and after generating the objects ("before"),
  - `repeats` times: time `translate.translate(translate.Inputs.from_objects(objs), now)` and
    `cache.SnapshotCache().publish(gateway, resources)` (a fresh cache each time, so every publish
    serializes and hashes every resource), reported apart and summed; the median total is used,
  - VmRSS and VmHWM (peak) after the runs, with the last Output and snapshot still referenced.
The child also checks the output: one Gateway, N route resources, every route Accepted.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NS = "bench"
GATEWAY = "bench-gw"
CLASS = "agentgateway"


def objects(n: int) -> list[dict[str, Any]]:
    from controller import translate

    out: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": CLASS, "uid": "gc-uid", "generation": 1},
            "spec": {"controllerName": translate.CONTROLLER_NAME},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NS, "uid": "gw-uid", "generation": 1},
            "spec": {
                "gatewayClassName": CLASS,
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}],
            },
        },
    ]
    for i in range(n):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-{i}", "namespace": NS, "uid": f"svc-{i}"},
                "spec": {
                    "clusterIP": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                },
            }
        )
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": f"r-{i}", "namespace": NS, "uid": f"r-{i}", "generation": 1},
                "spec": {
                    "parentRefs": [{"name": GATEWAY}],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": f"/r/{i}"}}],
                            "backendRefs": [{"name": f"svc-{i}", "port": 80}],
                        }
                    ],
                },
            }
        )
    return out


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(n: int, repeats: int) -> dict[str, Any]:
    from controller import translate
    from controller.xds import cache

    rss_imports = rss_kib()
    t = time.perf_counter()
    objs = objects(n)
    gen_s = time.perf_counter() - t
    gc.collect()
    rss_before = rss_kib()
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    runs = []
    keep: Any = None
    for _ in range(repeats):
        keep = None
        gc.collect()
        t0 = time.perf_counter()
        inputs = translate.Inputs.from_objects(objs)
        out = translate.translate(inputs, now)
        t1 = time.perf_counter()
        snaps = cache.SnapshotCache()
        published = [
            snaps.publish(cache.GatewayKey(k.namespace, k.name), res) for k, res in out.resources.items()
        ]
        t2 = time.perf_counter()
        runs.append({"translate_s": t1 - t0, "publish_s": t2 - t1, "total_s": t2 - t0})
        keep = (out, snaps, published)
    out, _, _ = keep
    gc.collect()
    rss_after = rss_kib()
    # sanity: one Gateway, N routes, every route Accepted
    assert len(out.resources) == 1, list(out.resources)
    resources = next(iter(out.resources.values()))
    routes = [r for r in resources if r.WhichOneof("kind") == "route"]
    assert len(routes) == n, (len(routes), n)
    accepted = 0
    for ref, st in out.statuses.items():
        if ref.kind == "HTTPRoute":
            for p in st.get("parents", []):
                if any(c["type"] == "Accepted" and c["status"] == "True" for c in p.get("conditions", [])):
                    accepted += 1
    assert accepted == n, (accepted, n)
    med = statistics.median(r["total_s"] for r in runs)
    return {
        "routes": n,
        "objects": len(objs),
        "resources": len(resources),
        "generate_s": gen_s,
        "runs": runs,
        "median_total_s": med,
        "median_translate_s": statistics.median(r["translate_s"] for r in runs),
        "median_publish_s": statistics.median(r["publish_s"] for r in runs),
        "rss_after_imports_kib": rss_imports,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "hwm_kib": rss_kib("VmHWM"),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", type=int)
    args = p.parse_args()
    if args.child is not None:
        json.dump(child(args.child, args.repeats), sys.stdout)
        return 0
    results = []
    for n in args.sizes:
        print(
            f"[bench-controller {time.strftime('%H:%M:%S')}] translate+publish: {n} routes", file=sys.stderr
        )
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"translate child for {n} routes failed ({proc.returncode})")
        r = json.loads(proc.stdout)
        print(
            f"[bench-controller] {n} routes: median {r['median_total_s']:.2f}s "
            f"(translate {r['median_translate_s']:.2f}s, publish {r['median_publish_s']:.2f}s), "
            f"RSS {r['rss_before_kib'] / 1024:.0f} -> {r['rss_after_kib'] / 1024:.0f} MiB",
            file=sys.stderr,
        )
        results.append(r)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
