"""Tables and PASS/FAIL lines for a bench/controller run: report.py RESULTS_DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TRANSLATE_TARGET_S = 10.0  # 10,000 routes translated and published
TRANSLATE_TARGET_N = 10_000
LATENCY_TARGET_S = 1.0  # one change served, p99


def ms(s: float) -> str:
    return f"{s * 1000:,.0f} ms"


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main() -> int:
    res = Path(sys.argv[1])
    meta = dict(line.split("=", 1) for line in (res / "meta.txt").read_text().splitlines() if "=" in line)
    print(f"# Controller benchmark ({meta.get('mode', '?')})\n")
    for k in ("date", "commit", "host", "load_start", "command", "versions"):
        print(f"- {k}: {meta.get(k, '?')}")
    lines: list[str] = []

    tr = json.loads((res / "translate.json").read_text())
    print("\n## Translation + publish (in-process, median of runs)\n")
    print(
        "| routes | objects | resources | translate | publish | total | runs (total) "
        "| RSS before → after | peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in tr:
        runs = ", ".join(f"{x['total_s']:.2f}" for x in r["runs"])
        print(
            f"| {r['routes']:,} | {r['objects']:,} | {r['resources']:,} | {r['median_translate_s']:.2f} s "
            f"| {r['median_publish_s']:.2f} s | {r['median_total_s']:.2f} s | {runs} s "
            f"| {mib(r['rss_before_kib'])} → {mib(r['rss_after_kib'])} | {mib(r['hwm_kib'])} |"
        )
    big = [r for r in tr if r["routes"] == TRANSLATE_TARGET_N]
    if big:
        r = big[0]
        ok = r["median_total_s"] <= TRANSLATE_TARGET_S
        lines.append(
            f"{'PASS' if ok else 'FAIL'} {TRANSLATE_TARGET_N:,} routes translated + published <= "
            f"{TRANSLATE_TARGET_S:.0f} s: {r['median_total_s']:.2f} s "
            f"(translate {r['median_translate_s']:.2f} s, "
            f"publish {r['median_publish_s']:.2f} s)"
        )
    else:
        lines.append(f"SKIP {TRANSLATE_TARGET_N:,} routes translated + published (size not run)")

    lat_path = res / "latency.json"
    lat = json.loads(lat_path.read_text()) if lat_path.exists() else []
    print("\n## Route change → served (kubectl apply → first 200 from the proxy)\n")
    print(
        "| background routes | changes | p50 | p99 | max | kubectl p50 / p99 "
        "| after kubectl p50 / p99 | controller CPU / change | controller RSS | proxy RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in lat:
        print(
            f"| {r['background']:,} | {len(r['samples'])} | {ms(r['p50_s'])} | {ms(r['p99_s'])} "
            f"| {ms(r['max_s'])} "
            f"| {ms(r['kubectl_p50_s'])} / {ms(r['kubectl_p99_s'])} "
            f"| {ms(r['after_kubectl_p50_s'])} / {ms(r['after_kubectl_p99_s'])} "
            f"| {ms(r['controller_cpu_per_change_s'])} | {mib(r['controller_rss_kib'])} "
            f"| {mib(r['proxy_rss_kib'])} |"
        )
        ok = r["p99_s"] <= LATENCY_TARGET_S
        lines.append(
            f"{'PASS' if ok else 'FAIL'} one change served <= {LATENCY_TARGET_S:.0f} s p99 at "
            f"{r['background']:,} background routes: p99 {ms(r['p99_s'])} (p50 {ms(r['p50_s'])}, "
            f"kubectl p50 {ms(r['kubectl_p50_s'])})"
        )
    for r in lat:
        for w in r.get("warmup", []):
            print(
                f"\nWarm-up edit at {r['background']:,} background routes "
                "(not counted; kubectl's cache is cold): "
                f"{ms(w['latency_s'])}, kubectl {ms(w['kubectl_s'])}."
            )
    print("\n```")
    print("\n".join(lines))
    print("```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
