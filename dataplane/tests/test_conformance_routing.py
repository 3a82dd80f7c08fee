"""Gateway API HTTPRoute conformance cases (conformance/*.yaml), checked against route selection.

Pure: each data file's `config` is loaded with made-up ports, compiled, and asked which route
answers each request. A case naming a `backend` must reach a route that sends only to it. A 404
case must find no route. A case naming a `route` and `rule` must select that rule. A weighted
case must split in the stated shares. Filter effects (header changes, rewrites, redirect
targets) need a real proxy and are left to the integration test that reads the same files.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
from typing import Any

import pytest
import yaml

from dataplane import routing, tables
from dataplane.config import compile as config_compile
from dataplane.config import local

DATA = pathlib.Path(__file__).parent / "conformance"
FILES = sorted(DATA.glob("httproute-*.yaml"))

_VAR = re.compile(r"\$\{?((?:BACKEND|GATEWAY_PORT)[A-Za-z0-9_]*)\}?")
_REQUEST_KEYS = {"host", "method", "path", "headers", "bind"}
_EXPECT_KEYS = {
    "backend",
    "status",
    "route",
    "rule",
    "request_path",
    "request_host",
    "request_headers",
    "absent_request_headers",
    "response_headers",
    "absent_response_headers",
    "redirect",
    "weights",
    "requests",
    "tolerance",
}


@dataclasses.dataclass(frozen=True)
class Loaded:
    """One data file, compiled."""

    spec: dict[str, Any]
    tables: tables.Tables
    problems: dict[str, str]
    env: dict[str, str]
    """Placeholder name -> the port given to it ("BACKEND_infra_backend_v1" -> "20000")."""
    rules: list[tuple[str, int]]
    """Creation order -> (route name, upstream rule index). The loader numbers routes in file
    order and stores that number as `Route.order[0]` (creation time), which is the index here."""

    def backend_port(self, name: str) -> int:
        return int(self.env["BACKEND_" + name.replace("-", "_")])


def _rules(config: dict[str, Any]) -> list[tuple[str, int]]:
    """Walk the routes in file order; the n-th route named X in a listener is rule n of X."""
    out: list[tuple[str, int]] = []
    for bind in config.get("binds", []):
        for listener in bind.get("listeners", []):
            seen: dict[str, int] = {}
            for route in listener.get("routes") or []:
                name = route.get("name", "")
                seen[name] = seen.get(name, -1) + 1
                out.append((name, seen[name]))
    return out


@functools.cache
def load(name: str) -> Loaded:
    spec = yaml.safe_load((DATA / name).read_text())
    text = spec["config"]
    names = sorted(set(_VAR.findall(text)))
    gateways = [n for n in names if n.startswith("GATEWAY_PORT")]
    backends = [n for n in names if n.startswith("BACKEND_")]
    env = {n: str(10000 + i) for i, n in enumerate(gateways)}
    env.update({n: str(20000 + i) for i, n in enumerate(backends)})
    compiled = config_compile.compile_resources(local.parse(text, env=env).resources)
    return Loaded(spec, compiled.tables, compiled.problems, env, _rules(yaml.safe_load(text)))


def route_for(loaded: Loaded, request: dict[str, Any]) -> routing.Match | None:
    """Select a listener by Host on the request's bind, then a route in it; None means 404."""
    port = int(loaded.env[request.get("bind", "GATEWAY_PORT")])
    host = routing.split_host(request.get("host", f"127.0.0.1:{port}"))
    path, _, query = request["path"].partition("?")
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    listener = loaded.tables.binds[port].listeners.first(host)
    if listener is None:
        return None
    return listener.routes.lookup(
        host, request.get("method", "GET"), routing.normalize_path(path), query, headers.get
    )


def _case_id(path: pathlib.Path, index: int, case: dict[str, Any]) -> str:
    request = case["request"]
    headers = " ".join(
        f"{k}={v}" for k, v in (request.get("headers") or {}).items() if k.lower() != "x-echo-set-header"
    )
    target = request.get("host", "") + request["path"]
    text = f"{path.stem.removeprefix('httproute-')}#{index} {request.get('method', 'GET')} {target}"
    return f"{text} {headers}".rstrip()


def _all_cases() -> list[Any]:
    params = []
    for path in FILES:
        spec = yaml.safe_load(path.read_text())
        for i, case in enumerate(spec["cases"]):
            params.append(pytest.param(path.name, i, id=_case_id(path, i, case)))
    return params


def _shares(route: tables.Route) -> dict[int, float]:
    """Backend port -> share of the route's traffic, from its cumulative weights."""
    cumulative = route.cumulative_weights
    total = cumulative[-1] if cumulative else 0
    out: dict[int, float] = {}
    for target, low, high in zip(route.targets, (0, *cumulative), cumulative, strict=False):
        out[target.port] = out.get(target.port, 0.0) + ((high - low) / total if total else 0.0)
    return out


def _live_ports(route: tables.Route) -> set[int]:
    """Ports of the targets that can receive traffic (weight above 0)."""
    return {port for port, share in _shares(route).items() if share > 0}


@pytest.mark.parametrize("name", [p.name for p in FILES])
def test_conformance_file_compiles_and_has_well_formed_cases(name: str) -> None:
    loaded = load(name)
    assert loaded.problems == {}
    assert {"description", "source", "config", "cases"} <= loaded.spec.keys()
    assert loaded.spec["source"]["tag"] == "v1.6.1"
    for case in loaded.spec["cases"]:
        assert set(case) == {"request", "expect"}
        assert set(case["request"]) <= _REQUEST_KEYS and "path" in case["request"]
        assert set(case["expect"]) <= _EXPECT_KEYS and case["expect"]
        assert ("route" in case["expect"]) == ("rule" in case["expect"])


@pytest.mark.parametrize(("name", "index"), _all_cases())
def test_conformance_case_selects_the_expected_route(name: str, index: int) -> None:
    loaded = load(name)
    expect = loaded.spec["cases"][index]["expect"]
    match = route_for(loaded, loaded.spec["cases"][index]["request"])

    if "weights" in expect:
        assert match is not None, "expected a weighted route, got no route (404)"
        want = {loaded.backend_port(n): w for n, w in expect["weights"].items()}
        assert _shares(match.route) == pytest.approx(want)
    elif "backend" in expect:
        assert match is not None, f"expected {expect['backend']}, got no route (404)"
        got = _live_ports(match.route)
        assert got == {loaded.backend_port(expect["backend"])}, (
            f"expected {expect['backend']}, got route {match.route.name!r} "
            f"rule {loaded.rules[match.route.order[0]][1]} with backend ports {sorted(got)}"
        )
    elif expect.get("status") == 404:
        assert match is None, (
            f"expected 404, got route {match.route.name!r} rule {loaded.rules[match.route.order[0]]}"
        )

    if "route" in expect:
        assert match is not None, f"expected rule {expect['rule']} of {expect['route']}, got no route (404)"
        assert loaded.rules[match.route.order[0]] == (expect["route"], expect["rule"])
    if "redirect" in expect:
        assert match is not None and match.route.policy.redirect is not None
