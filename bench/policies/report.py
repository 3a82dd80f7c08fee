"""Summarise one `bench/policies/run.sh` run: parse the raw wrk outputs and the proxy's /metrics
scrape, print a markdown table of req/s per route, the cost of each policy against the route without
policies, and a PASS/FAIL line per policy against the target (each costs <= 15% of throughput).

Usage: report.py RESULTS_DIR

RESULTS_DIR holds (written by run.sh):
  meta.txt             key=value lines (date, commit, tools, load average)
  <route>.wrk<N>.txt   `wrk --latency` outputs, N = 1..rounds, route in ROUTES
  <route>.wrk<N>.cpu   the proxy's CPU seconds (user + system) during that wrk run
  metrics.txt          the proxy's Prometheus text scrape at the end of the run

Standard library only.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import sys
from pathlib import Path

MAX_COST = 0.15  # each policy costs at most 15% of the plain route's req/s
REFERENCE = "plain"
ROUTES = {
    "plain": "no policy",
    "jwt": "jwtAuth strict, RS256, same valid token (verified-token cache hit)",
    "authz": "authorization, 3 CEL rules (require, require, allow)",
    "ratelimit": "localRateLimit, bucket never empty",
}
# Refusals the run's functional checks cause on purpose before the load starts.
EXPECTED_REFUSALS = {"jwt": {"401": 2}, "authz": {"403": 1}}

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_METRIC = re.compile(r"^agentgw_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>[\d.eE+-]+)\s*$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass
class Wrk:
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non2xx: int
    requests: int = 0
    cpu_us: float | None = None
    """The proxy's CPU microseconds per request in this run."""


@dataclasses.dataclass
class Route:
    name: str
    runs: list[Wrk]
    problems: list[str]
    statuses: dict[str, int]  # from /metrics, the whole run (checks, warm-up, load)

    @property
    def median(self) -> Wrk | None:
        """The run with the median req/s (the lower middle one for an even count)."""
        if not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def cpu_us(self) -> float | None:
        """The median CPU microseconds per request over the runs."""
        values = [r.cpu_us for r in self.runs if r.cpu_us is not None]
        return statistics.median(values) if values else None

    @property
    def errors(self) -> int:
        return sum(r.socket_errors + r.non2xx for r in self.runs)

    @property
    def unexpected_refusals(self) -> dict[str, int]:
        expected = EXPECTED_REFUSALS.get(self.name, {})
        out = {}
        for status, count in self.statuses.items():
            extra = count - expected.get(status, 0)
            if not status.startswith("2") and extra:
                out[status] = extra
        return out


def _wrk_latency(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if not m:
        raise ValueError(f"no {pct}% latency line")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str, round_: int) -> Wrk:
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        raise ValueError("no Requests/sec line")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    return Wrk(
        round=round_,
        rps=float(m.group(1)),
        p50_ms=_wrk_latency(text, "50"),
        p99_ms=_wrk_latency(text, "99"),
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        requests=int(total.group(1)) if total else 0,
    )


def parse_statuses(text: str) -> dict[str, dict[str, int]]:
    """route name -> status -> requests, from `agentgw_requests_total` samples."""
    out: dict[str, dict[str, int]] = {}
    for m in _METRIC.finditer(text):
        labels = dict(_LABEL.findall(m.group("labels")))
        route = labels.get("route", "").rsplit("/", 1)[-1]
        per_route = out.setdefault(route, {})
        status = labels.get("status", "?")
        per_route[status] = per_route.get(status, 0) + int(float(m.group("value")))
    return out


def load(res: Path) -> tuple[dict[str, str], list[Route], bool]:
    meta: dict[str, str] = {}
    meta_file = res / "meta.txt"
    if meta_file.exists():
        for line in meta_file.read_text().splitlines():
            key, _, value = line.partition("=")
            meta[key] = value
    metrics_file = res / "metrics.txt"
    statuses = parse_statuses(metrics_file.read_text()) if metrics_file.exists() else {}
    routes = []
    for name in ROUTES:
        runs, problems = [], []
        for path in sorted(res.glob(f"{name}.wrk*.txt")):
            round_ = int(path.name.removeprefix(f"{name}.wrk").removesuffix(".txt"))
            try:
                run = parse_wrk(path.read_text(), round_)
                cpu = path.with_suffix(".cpu")
                if cpu.exists() and run.requests:
                    run.cpu_us = float(cpu.read_text()) / run.requests * 1e6
                runs.append(run)
            except ValueError as exc:
                problems.append(f"{path.name}: {exc}")
        if not runs:
            problems.append("no wrk run")
        routes.append(Route(name, runs, problems, statuses.get(name, {})))
    return meta, routes, metrics_file.exists()


def _cost(policy: Wrk | None, plain: Wrk | None) -> float | None:
    if policy is None or plain is None or plain.rps == 0:
        return None
    return 1.0 - policy.rps / plain.rps


def _cpu_cost(route: Route, plain: Route) -> float | None:
    """1 - plain CPU/request / route CPU/request: the req/s a saturated proxy loses."""
    if route.cpu_us is None or plain.cpu_us is None or route.cpu_us == 0:
        return None
    return 1.0 - plain.cpu_us / route.cpu_us


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _round_costs(route: Route, plain: Route) -> list[float]:
    """1 - policy/plain within each round (same minute of machine load)."""
    plain_by_round = {r.round: r for r in plain.runs}
    costs = []
    for r in sorted(route.runs, key=lambda w: w.round):
        c = _cost(r, plain_by_round.get(r.round))
        if c is not None:
            costs.append(c)
    return costs


def table(routes: list[Route]) -> list[str]:
    plain = next(r for r in routes if r.name == REFERENCE)
    lines = [
        "| route | policy | CPU µs/req | CPU cost | req/s | p50 | p99 | req/s cost | cost per round "
        "| wrk runs (req/s) | statuses | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in routes:
        m = r.median
        cells = ["n/a"] * 3 if m is None else [f"{m.rps:,.0f}", f"{m.p50_ms:.2f} ms", f"{m.p99_ms:.2f} ms"]
        cost = "—" if r is plain else _pct(_cost(m, plain.median))
        per_round = "—" if r is plain else ", ".join(_pct(c) for c in _round_costs(r, plain)) or "n/a"
        runs = ", ".join(f"{w.rps:,.0f}" for w in sorted(r.runs, key=lambda w: w.round)) or "n/a"
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(r.statuses.items())) or "n/a"
        cpu = "n/a" if r.cpu_us is None else f"{r.cpu_us:.1f}"
        cpu_cost = "—" if r is plain else _pct(_cpu_cost(r, plain))
        lines.append(
            f"| /{r.name} | {ROUTES[r.name]} | {cpu} | {cpu_cost} | {' | '.join(cells)} | {cost} "
            f"| {per_round} | {runs} "
            f"| {statuses} | {r.errors} |"
        )
    return lines


def checks(routes: list[Route], have_metrics: bool) -> list[tuple[bool, str]]:
    plain = next(r for r in routes if r.name == REFERENCE)
    out: list[tuple[bool, str]] = []
    for r in routes:
        if r is plain:
            continue
        name = f"/{r.name} costs <= {MAX_COST:.0%} of /{plain.name}'s throughput"
        m, p = r.median, plain.median
        cost = _cpu_cost(r, plain)
        rps_cost = _cost(m, p)
        if m is None or p is None or cost is None or rps_cost is None:
            out.append((False, f"{name}: not measured"))
            continue
        detail = (
            f"CPU {r.cpu_us:.1f} vs {plain.cpu_us:.1f} µs/request = {cost:.1%} cost; "
            f"req/s {m.rps:,.0f} vs {p.rps:,.0f} = {rps_cost:.1%}"
        )
        round_costs = _round_costs(r, plain)
        if len(round_costs) > 1:
            detail += f" (median per-round {statistics.median(round_costs):.1%})"
        refused = r.unexpected_refusals
        if r.errors or plain.errors:
            out.append((False, f"{name}: {detail}, but {r.errors + plain.errors} wrk errors/non-2xx"))
        elif refused:
            out.append((False, f"{name}: {detail}, but refusals under load {refused}"))
        elif not have_metrics:
            out.append((False, f"{name}: {detail}, but no /metrics scrape to confirm the statuses"))
        else:
            out.append((cost <= MAX_COST, f"{name}: {detail}"))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    res = Path(argv[1])
    meta, routes, have_metrics = load(res)
    print("## Policy cost benchmark")
    print()
    for key in ("date", "commit", "host", "mode", "wrk", "versions"):
        if key in meta:
            print(f"- {key}: {meta[key]}")
    if "load_start" in meta:
        # wrk, the upstream and the proxy share the cores: other work running shows here
        print(
            f"- load average (1/5/15 min) at start: {meta['load_start']}, at end: {meta.get('load_end', '?')}"
        )
    print()
    print("\n".join(table(routes)))
    print()
    print("(CPU µs/req: the proxy process's user+system CPU time per request, median over the runs; CPU cost")
    print(" = 1 - plain CPU/req / route CPU/req, the throughput a saturated proxy loses to the policy, and")
    print(" what PASS/FAIL judges. On a shared machine it varies from run to run as well (the per-run")
    print(" values are in the .cpu files), so judge a policy over several rounds, and see steps_micro.py")
    print(" for the policy steps' own cost in microseconds.)")
    print(
        " req/s, p50 and p99 come from the median wrk run per route;"
        " req/s cost = 1 - route req/s / plain req/s;"
    )
    print(" cost per round compares the runs of the same round; statuses are the proxy's own counts over the")
    print(" whole run, including the functional checks before the load (2 x 401 on /jwt, 1 x 403 on /authz);")
    print(" errors = wrk socket errors + non-2xx responses under load.)")
    print(
        "/jwt: every request carries the same valid token, so after the first request the proxy answers from"
    )
    print(
        "its cache of verified tokens: this measures the steady state of a client reusing its token, not an"
    )
    print("RS256 signature check per request.")
    print()
    for r in routes:
        for problem in r.problems:
            print(f"WARNING /{r.name}: {problem}")
    if not have_metrics:
        print("WARNING no metrics.txt: statuses unknown")
    for ok, line in checks(routes, have_metrics):
        print(f"{'PASS' if ok else 'FAIL'} {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
