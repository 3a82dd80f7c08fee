"""Summarise one `bench/http/run.sh` run: parse the raw wrk and hey outputs, print a markdown table
and the PASS/FAIL lines for the HTTP proxy targets.

Usage: report.py RESULTS_DIR

RESULTS_DIR holds (written by run.sh):
  meta.txt            key=value lines (date, commit, tools)
  targets.tsv         slug <TAB> label, in table order
  <slug>.wrk<N>.txt   `wrk --latency` outputs, N = 1..runs
  <slug>.fixed.txt    `hey` output (or fixed_rate.py's hey-compatible summary)

Standard library only.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

# The targets (see docs/benchmarks.md).
MIN_RATIO_TO_NGINX = 0.5  # agentgw 1 worker req/s >= 0.5 x nginx 1 worker req/s
MAX_FIXED_P99_MS = 2.0  # agentgw p99 <= 2 ms at 1,000 req/s
FIXED_RATE = 1000.0
MIN_FIXED_RATE = 0.95 * FIXED_RATE  # below this the generator did not get the rate through

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclasses.dataclass
class Wrk:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx/3xx responses


@dataclasses.dataclass
class Fixed:
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int  # 2xx responses
    errors: int  # other status codes + transport errors


def _wrk_latency(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if not m:
        raise ValueError(f"no {pct}% latency line")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str) -> Wrk:
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        raise ValueError("no Requests/sec line")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return Wrk(float(m.group(1)), _wrk_latency(text, "50"), _wrk_latency(text, "99"), errors)


def parse_hey(text: str) -> Fixed:
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise ValueError("no Requests/sec line")
    pct = {p: float(v) * 1000.0 for p, v in re.findall(r"^\s*(\d+)%+ in ([\d.]+) secs", text, re.M)}
    if "50" not in pct or "99" not in pct:
        raise ValueError("no latency distribution (did every request fail?)")
    ok = errors = 0
    for code, count in re.findall(r"^\s*\[(\d+)\]\s+(\d+) responses", text, re.M):
        if code.startswith("2"):
            ok += int(count)
        else:
            errors += int(count)
    err_section = text.split("Error distribution:", 1)
    if len(err_section) == 2:
        errors += sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", err_section[1], re.M))
    return Fixed(float(m.group(1)), pct["50"], pct["99"], ok, errors)


@dataclasses.dataclass
class Target:
    slug: str
    label: str
    runs: list[Wrk]
    fixed: Fixed | None
    problems: list[str]
    even: Fixed | None = None
    """The same rate evenly spaced (fixed_rate.py), when `fixed` came from hey."""

    @property
    def median(self) -> Wrk | None:
        if not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs) + (self.fixed.errors if self.fixed else 0)


def load(res: Path) -> tuple[dict[str, str], list[Target]]:
    meta: dict[str, str] = {}
    meta_file = res / "meta.txt"
    if meta_file.exists():
        for line in meta_file.read_text().splitlines():
            key, _, value = line.partition("=")
            meta[key] = value
    targets = []
    for line in (res / "targets.tsv").read_text().splitlines():
        if not line.strip():
            continue
        slug, label = line.split("\t", 1)
        runs, problems = [], []
        for path in sorted(res.glob(f"{slug}.wrk*.txt")):
            try:
                runs.append(parse_wrk(path.read_text()))
            except ValueError as exc:
                problems.append(f"{path.name}: {exc}")
        fixed = None
        fixed_path = res / f"{slug}.fixed.txt"
        if fixed_path.exists():
            try:
                fixed = parse_hey(fixed_path.read_text())
            except ValueError as exc:
                problems.append(f"{fixed_path.name}: {exc}")
        else:
            problems.append(f"{fixed_path.name}: missing")
        even = None
        even_path = res / f"{slug}.even.txt"
        if even_path.exists():
            try:
                even = parse_hey(even_path.read_text())
            except ValueError as exc:
                problems.append(f"{even_path.name}: {exc}")
        targets.append(Target(slug, label, runs, fixed, problems, even))
    return meta, targets


def _ratio(a: Wrk | None, b: Wrk | None) -> str:
    if a is None or b is None or b.rps == 0:
        return "n/a"
    return f"{a.rps / b.rps:.2f}"


def _latency(f: Fixed | None) -> str:
    return f"{f.p50_ms:.2f} / {f.p99_ms:.2f} ms ({f.rps:,.0f} req/s)" if f else "n/a"


def table(targets: list[Target]) -> list[str]:
    by_slug = {t.slug: t for t in targets}
    nginx = by_slug["nginx-1w"].median if "nginx-1w" in by_slug else None
    direct = by_slug["direct"].median if "direct" in by_slug else None
    lines = [
        "| target | req/s | p50 | p99 | / nginx 1w | / direct "
        "| 1,000 req/s p50 / p99 | evenly spaced p50 / p99 | wrk runs (req/s) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for t in targets:
        m = t.median
        fixed = _latency(t.fixed)
        even = _latency(t.even)
        runs = ", ".join(f"{r.rps:,.0f}" for r in t.runs) or "n/a"
        if m is None:
            cells = ["n/a", "n/a", "n/a"]
        else:
            cells = [f"{m.rps:,.0f}", f"{m.p50_ms:.2f} ms", f"{m.p99_ms:.2f} ms"]
        lines.append(
            f"| {t.label} | {' | '.join(cells)} | {_ratio(m, nginx)} | {_ratio(m, direct)} "
            f"| {fixed} | {even} | {runs} | {t.errors} |"
        )
    return lines


def checks(targets: list[Target]) -> list[tuple[bool, str]]:
    by_slug = {t.slug: t for t in targets}
    out: list[tuple[bool, str]] = []
    agw1, nginx = by_slug.get("agentgw-1w"), by_slug.get("nginx-1w")
    name = "agentgw 1w req/s >= 0.5 x nginx 1w req/s"
    if agw1 is None or nginx is None or agw1.median is None or nginx.median is None:
        out.append((False, f"{name}: not measured"))
    else:
        ratio = agw1.median.rps / nginx.median.rps
        detail = f"{agw1.median.rps:,.0f} vs {nginx.median.rps:,.0f} req/s = {ratio:.2f}x"
        wrk_errors = sum(r.errors for r in agw1.runs)
        if wrk_errors:
            out.append((False, f"{name}: {detail}, but {wrk_errors} wrk errors"))
        else:
            out.append((ratio >= MIN_RATIO_TO_NGINX, f"{name}: {detail}"))
    for slug, kind in [(s, k) for k in ("fixed", "even") for s in ("agentgw-1w", "agentgw-2w")]:
        t = by_slug.get(slug)
        label = t.label if t else slug
        if kind == "even":
            how = " (evenly spaced, fixed_rate.py)"
        else:
            how = " (hey: 10 workers sending in bursts)" if t is not None and t.even is not None else ""
        name = f"{label} p99 <= {MAX_FIXED_P99_MS:g} ms at 1,000 req/s{how}"
        f = None if t is None else (t.fixed if kind == "fixed" else t.even)
        if f is None:
            if kind == "fixed":
                out.append((False, f"{name}: not measured"))
            continue
        detail = f"p99 {f.p99_ms:.2f} ms (p50 {f.p50_ms:.2f} ms, {f.rps:,.0f} req/s)"
        if f.errors:
            out.append((False, f"{name}: {detail}, but {f.errors} errors"))
        elif f.rps < MIN_FIXED_RATE:
            out.append((False, f"{name}: {detail}, but the rate fell short of {FIXED_RATE:,.0f}"))
        else:
            out.append((f.p99_ms <= MAX_FIXED_P99_MS, f"{name}: {detail}"))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    res = Path(argv[1])
    meta, targets = load(res)
    print("## HTTP proxy benchmark")
    print()
    for key in ("date", "commit", "host", "mode", "wrk", "fixed", "versions"):
        if key in meta:
            print(f"- {key}: {meta[key]}")
    if "load_start" in meta:
        # wrk, the upstream and the proxy share the cores: other work running before the start shows here
        print(f"- load average at start (1/5/15 min): {meta['load_start']}")
    if meta.get("standin") == "1":
        print("- **agentgw slots run nginx (BENCH_AGENTGW_STANDIN=1): harness test, not agentgw**")
    print()
    print("\n".join(table(targets)))
    print()
    print("(req/s, p50 and p99 come from the median wrk run; / nginx 1w and / direct are req/s ratios;")
    print(" errors = wrk socket errors + non-2xx/3xx responses + fixed-rate failures)")
    print()
    for t in targets:
        for problem in t.problems:
            print(f"WARNING {t.label}: {problem}")
    for ok, line in checks(targets):
        print(f"{'PASS' if ok else 'FAIL'} {line}")
    h2 = h2_lines(res)
    if h2:
        print()
        print("\n".join(h2))
    return 0


def parse_h2load(text: str) -> tuple[float, int, int]:
    """(req/s, succeeded, failed + errored) from h2load's summary."""
    m = re.search(r"^finished in [\d.]+s, ([\d.]+) req/s", text, re.M)
    r = re.search(r"^requests: .*?(\d+) succeeded, (\d+) failed, (\d+) errored", text, re.M)
    if not m or not r:
        raise ValueError("no h2load summary")
    return float(m.group(1)), int(r.group(1)), int(r.group(2)) + int(r.group(3))


def h2_lines(res: Path) -> list[str]:
    """The HTTP/2 section: h2load req/s through nginx and agentgw over h2c, and their ratio."""
    found = {}
    for name in ("nginx", "agentgw"):
        path = res / f"h2-{name}.txt"
        if path.exists():
            try:
                found[name] = parse_h2load(path.read_text())
            except ValueError as exc:
                return [f"HTTP/2 (h2load): {path.name}: {exc}"]
    if not found:
        return []
    lines = ["HTTP/2, h2c prior knowledge (h2load -c 16 -m 10, GET /, HTTP/1.1 upstream; no target):"]
    for name, (rps, ok, bad) in found.items():
        lines.append(f"  {name} 1w: {rps:,.0f} req/s ({ok:,} succeeded, {bad} failed)")
    if "nginx" in found and "agentgw" in found and found["nginx"][0]:
        lines.append(f"  agentgw / nginx: {found['agentgw'][0] / found['nginx'][0]:.2f}x")
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv))
