"""Summarise one bench/xds/run.sh run: markdown tables and PASS/FAIL lines for the xDS targets.

Usage: report.py RESULTS_DIR

RESULTS_DIR holds (written by run.sh): meta.txt (key=value lines), propagation.json
(bench/xds/propagation.py) and controller.json (bench/xds/controller_rss.py).

Standard library only.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

# The targets (see docs/benchmarks.md, "xDS propagation").
MAX_P99_MS_AT_1000 = 250.0
MAX_SYNC_S_AT_10000 = 5.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v * 1000:,.1f} ms" if v < 10 else f"{v:,.1f} s"


def sec(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.0f} MiB"


def seen(size: dict[str, Any]) -> list[float]:
    return [c["propagation_s"] for c in size["changes"] if c["propagation_s"] is not None]


def per_change(size: dict[str, Any], field: str) -> str:
    values = sorted({c[field] for c in size["changes"]})
    return ", ".join(f"{v:g}" for v in values) or "-"


def propagation_table(sizes: list[dict[str, Any]]) -> list[str]:
    out = [
        "| routes | changes seen | p50 | p99 | max | publish p50 | longest GET p50 "
        "| resources sent / change | pushes / change | proxy start → ready | proxy RSS (synced) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        vals = seen(s)
        n = len(s["changes"])
        stalls = [c["longest_get_s"] for c in s["changes"]]
        out.append(
            f"| {s['routes']:,} | {len(vals)}/{n} | {ms(pct(vals, 50))} | {ms(pct(vals, 99))} "
            f"| {ms(max(vals) if vals else None)} | {ms(pct([c['publish_s'] for c in s['changes']], 50))} "
            f"| {ms(pct(stalls, 50))} | {per_change(s, 'resources_sent')} | {per_change(s, 'pushes')} "
            f"| {sec(s['sync']['start_to_ready_s'])} | {mib(s['proxy_rss_after_sync_kib'])} |"
        )
    return out


def sync_table(big: dict[str, Any] | None, ctl: dict[str, Any] | None) -> list[str]:
    out = ["| measurement | value |", "|---|---:|"]
    if big is not None:
        n = f"{big['routes']:,}"
        sync = big["sync"]
        out += [
            f"| proxy start → readiness 200, {n} routes already published (in-process server) "
            f"| {sec(sync['start_to_ready_s'])} |",
            f"| … of which process start → readiness endpoint answers (imports, startup) "
            f"| {sec(sync['start_to_process_up_s'])} |",
            f"| … of which readiness answers → 200 (stream, first push, decode, compile, apply) "
            f"| {sec(sync['process_up_to_ready_s'])} |",
            f"| first push (diff + serialize {big['resources']:,} resources + write), server side "
            f"| {ms(sync['first_push_duration_s'])} |",
            f"| proxy RSS after initial sync, {n} routes | {mib(big['proxy_rss_after_sync_kib'])} |",
            f"| proxy RSS after {len(big['changes'])} changes (peak VmHWM) "
            f"| {mib(big['proxy_rss_after_changes_kib'])} ({mib(big['proxy_hwm_kib'])}) |",
        ]
    if ctl is not None:
        n = f"{ctl['routes']:,}"
        out += [
            f"| `agentgw-controller --from-file`, {n} routes: start → xDS port serving "
            f"| {sec(ctl['controller_start_to_serving_s'])} |",
            f"| controller RSS, {n} routes, no proxy | {mib(ctl['controller_rss_before_proxy_kib'])} |",
            f"| controller RSS, {n} routes, 1 proxy synced (peak VmHWM) "
            f"| {mib(ctl['controller_rss_after_sync_kib'])} ({mib(ctl['controller_hwm_kib'])}) |",
            f"| proxy start → ready against that controller | {sec(ctl['proxy_start_to_ready_s'])} |",
            f"| proxy RSS against that controller | {mib(ctl['proxy_rss_after_sync_kib'])} |",
        ]
    return out


def stage_rows(s: dict[str, Any]) -> dict[str, list[float]]:
    """Per-change stage durations (seconds), lined up by nonce with the proxy's records."""
    by_nonce = {c["nonce"]: c for c in s.get("client", [])}
    rows: dict[str, list[float]] = {}

    def add(name: str, v: float | None) -> None:
        if v is not None:
            rows.setdefault(name, []).append(v)

    for c in s["changes"]:
        cl = by_nonce.get(c["nonce"])
        if cl is None or c["propagation_s"] is None:
            continue
        pub = c["published_at"]
        add("publish: snapshot.build + swap (before t0, not in the total)", c["publish_s"])
        add("publish → server push starts (wake-up, scheduling)", c["push_start_s"])
        add(
            "server push starts → client handle() (diff, serialize, gRPC, deserialize)",
            cl["received_at"] - pub - c["push_start_s"],
        )
        compile1 = sum(cl.get("compile_evaluate_s", []))
        add("client evaluate(): merge + decode (without compiling)", cl["evaluate_s"] - compile1)
        add("client evaluate(): compile_resources, whole set (#1)", compile1)
        add("Worker.apply(): compile_resources, whole set (#2)", sum(cl.get("compile_apply_s", [])))
        add("Worker.install(): table swap + bind sync", cl.get("install_s"))
        add(
            "applied → first HTTP response with the change (poll)",
            pub + c["propagation_s"] - cl["applied_at"],
        )
        add("end to end (publish returned → change served)", c["propagation_s"])
    return rows


def stage_table(stages: list[dict[str, Any]]) -> list[str]:
    if not stages:
        return []
    heads = [f"{s['routes']:,} routes: p50 (max)" for s in stages]
    out = ["| stage | " + " | ".join(heads) + " |", "|---" + "|---:" * len(stages) + "|"]
    tables = [stage_rows(s) for s in stages]
    names: list[str] = []
    for t in tables:
        names += [n for n in t if n not in names]
    for name in names:
        cells = []
        for t in tables:
            v = t.get(name, [])
            cells.append(f"{ms(pct(v, 50))} ({ms(max(v) if v else None)})")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    first = [(s, s["client"][0]) for s in stages if s.get("client")]
    if first:
        out.append("")
        out.append("Initial sync in the stage pass (the first response, the whole route set):")
        out.append("")
        out.append(
            "| routes | bytes | deserialize | evaluate (compile #1) | apply (compile #2 + install) | handle |"
        )
        out.append("|---:|---:|---:|---:|---:|---:|")
        for s, cl in first:
            out.append(
                f"| {s['routes']:,} | {cl.get('bytes', 0):,} | {ms(cl.get('deserialize_s'))} "
                f"| {ms(cl.get('evaluate_s'))} | {ms(cl.get('apply_s'))} | {ms(cl.get('handle_s'))} |"
            )
    return out


def verdicts(prop: dict[str, Any], quick: bool) -> list[str]:
    lines = []
    sizes = {s["routes"]: s for s in prop.get("sizes", [])}
    s1k = sizes.get(1000)
    if s1k is None:
        lines.append(f"SKIP p99 <= {MAX_P99_MS_AT_1000:.0f} ms at 1,000 routes: not measured")
    else:
        vals = seen(s1k)
        missing = len(s1k["changes"]) - len(vals)
        p99 = pct(vals, 99) * 1000
        ok = missing == 0 and p99 <= MAX_P99_MS_AT_1000
        lines.append(
            f"{'PASS' if ok else 'FAIL'} propagation p99 <= {MAX_P99_MS_AT_1000:.0f} ms at 1,000 routes: "
            f"p99 {p99:.1f} ms, p50 {pct(vals, 50) * 1000:.1f} ms over {len(vals)} changes"
            + (f", {missing} not served within 10 s" if missing else "")
        )
    all_changes = [c for s in prop.get("sizes", []) for c in s["changes"]]
    bad = [c for c in all_changes if c["resources_sent"] != 1 or c["pushes"] != 1 or c["resources_removed"]]
    lines.append(
        f"{'PASS' if all_changes and not bad else 'FAIL'} a one-route change sends one resource: "
        f"{len(all_changes) - len(bad)}/{len(all_changes)} changes (all sizes) sent exactly 1 resource "
        f"in 1 push (agentgw_xds_resources_sent_total, agentgw_xds_pushes_total)"
    )
    s10k = sizes.get(10000)
    if s10k is None:
        lines.append(
            f"SKIP 10,000-route initial sync <= {MAX_SYNC_S_AT_10000:.0f} s: not measured"
            + (" (BENCH_QUICK=1)" if quick else "")
        )
    else:
        t = s10k["sync"]["start_to_ready_s"]
        lines.append(
            f"{'PASS' if t <= MAX_SYNC_S_AT_10000 else 'FAIL'} 10,000-route initial sync <= "
            f"{MAX_SYNC_S_AT_10000:.0f} s: {t:.2f} s from proxy start to readiness 200"
        )
    return lines


def main() -> int:
    res = Path(sys.argv[1])
    meta = dict(line.split("=", 1) for line in (res / "meta.txt").read_text().splitlines() if "=" in line)
    prop = json.loads((res / "propagation.json").read_text())
    ctl_path = res / "controller.json"
    ctl = json.loads(ctl_path.read_text()) if ctl_path.exists() else {"sizes": []}
    quick = meta.get("quick") == "1"
    out = [f"# xDS propagation ({meta.get('date', '?')})", ""]
    for key in ("commit", "host", "load_start", "mode", "command", "versions"):
        if key in meta:
            out.append(f"- {key}: {meta[key]}")
    out += ["", f"## Propagation ({prop.get('changes')} one-route changes per size)", ""]
    out += propagation_table(prop.get("sizes", []))
    big = max(prop.get("sizes", []), key=lambda s: s["routes"], default=None)
    big_ctl = max(ctl.get("sizes", []), key=lambda s: s["routes"], default=None)
    out += ["", "## Initial sync and memory", ""]
    out += sync_table(big, big_ctl)
    small_ctl = [c for c in ctl.get("sizes", []) if big_ctl is None or c["routes"] != big_ctl["routes"]]
    for c in small_ctl:
        out.append(
            f"| controller RSS, {c['routes']:,} routes, 1 proxy synced (baseline) "
            f"| {mib(c['controller_rss_after_sync_kib'])} |"
        )
    if prop.get("stages"):
        out += ["", "## Where the time goes (stage pass, proxy with timing hooks)", ""]
        out += stage_table(prop["stages"])
    out += ["", "```", *verdicts(prop, quick), "```"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
