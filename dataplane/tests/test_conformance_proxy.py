"""Gateway API HTTPRoute conformance cases (conformance/*.yaml) through a real proxy process.

For each data file: start one echo backend per conformance Service, run the gateway on the
file's config, send every case's request and check everything under `expect` — status, which
backend answered, what it saw (path, Host, headers), response headers, redirect Locations and
weight shares. The pure routing half of these cases is in test_conformance_routing.py.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from dataplane.tests import echo_server, harness

DATA = Path(__file__).parent / "conformance"
VAR = re.compile(r"\$\{?((?:BACKEND|GATEWAY_PORT)[A-Za-z0-9_]*)\}?")
FILES = sorted(DATA.glob("httproute-*.yaml"))


def _subst(value: str, env: dict[str, str]) -> str:
    return VAR.sub(lambda m: env[m.group(1)], value)


async def _check(session: aiohttp.ClientSession, case: dict[str, Any], env: dict[str, str]) -> list[str]:
    req, exp = case["request"], case["expect"]
    port = int(env[req.get("bind", "GATEWAY_PORT")])
    headers = dict(req.get("headers") or {})
    if "host" in req:
        headers["Host"] = req["host"]
    url = f"http://127.0.0.1:{port}{req['path']}"
    errs: list[str] = []
    if "weights" in exp:
        counts: dict[str, int] = {}
        for _ in range(exp["requests"]):
            async with session.get(url, headers=headers, allow_redirects=False) as r:
                backend = (await r.json())["backend"]
                counts[backend] = counts.get(backend, 0) + 1
        for backend, weight in exp["weights"].items():
            share = counts.get(backend, 0) / exp["requests"]
            if abs(share - weight) > exp["tolerance"] or (weight == 0 and counts.get(backend)):
                errs.append(f"share of {backend} {share:.3f} vs {weight}")
        return errs
    async with session.request(
        req.get("method", "GET"),
        url,
        headers=headers,
        allow_redirects=False,
        skip_auto_headers=["Accept-Encoding"],
    ) as r:
        body = await r.read()
        status = exp.get("status", 200)
        if r.status != status:
            return [f"status {r.status} != {status}: {body[:120]!r}"]
        if status == 200:
            echo = yaml.safe_load(body)
            if "backend" in exp and echo["backend"] != exp["backend"]:
                errs.append(f"backend {echo['backend']} != {exp['backend']}")
            if "request_path" in exp and echo["path"].split("?")[0] != exp["request_path"]:
                errs.append(f"backend path {echo['path']} != {exp['request_path']}")
            if "request_host" in exp and echo["host"] != exp["request_host"]:
                errs.append(f"backend host {echo['host']} != {exp['request_host']}")
            for name, value in (exp.get("request_headers") or {}).items():
                got = ",".join(echo["headers"].get(name.lower(), []))
                if got != value:
                    errs.append(f"request header {name}: {got!r} != {value!r}")
            for name in exp.get("absent_request_headers") or []:
                if name.lower() in echo["headers"]:
                    errs.append(f"request header {name} should be absent")
        for name, value in (exp.get("response_headers") or {}).items():
            got = ",".join(r.headers.getall(name, []))
            if got != value:
                errs.append(f"response header {name}: {got!r} != {value!r}")
        for name in exp.get("absent_response_headers") or []:
            if name in r.headers:
                errs.append(f"response header {name} should be absent")
        if "redirect" in exp:
            location = r.headers.get("Location", "")
            u = urllib.parse.urlsplit(location)
            rd = exp["redirect"]
            default = {"http": 80, "https": 443}[rd["scheme"]]
            want_port = int(_subst(str(rd["port"]), env)) if "port" in rd else default
            if u.scheme != rd["scheme"]:
                errs.append(f"redirect scheme {u.scheme!r} != {rd['scheme']!r} ({location})")
            if "host" in rd and u.hostname != rd["host"]:
                errs.append(f"redirect host {u.hostname!r} != {rd['host']!r} ({location})")
            if u.path != rd["path"]:
                errs.append(f"redirect path {u.path!r} != {rd['path']!r} ({location})")
            if (u.port if u.port is not None else default) != want_port:
                errs.append(f"redirect port != {want_port} ({location})")
    return errs


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_conformance_file_passes_through_a_real_proxy(path: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    names = sorted(set(VAR.findall(spec["config"])))
    env: dict[str, str] = {}
    runners = []
    for name in names:
        if name.startswith("BACKEND_"):
            runner, port = await echo_server.start(name.removeprefix("BACKEND_").replace("_", "-"))
            runners.append(runner)
            env[name] = str(port)
        else:
            env[name] = str(harness.free_port())
    gw = harness.GatewayProcess(tmp_path, _subst(spec["config"], env))
    try:
        gw.start()
        failures = []
        async with aiohttp.ClientSession() as session:
            for i, case in enumerate(spec["cases"]):
                errs = await _check(session, case, env)
                if errs:
                    req = case["request"]
                    failures.append(
                        f"#{i} {req.get('method', 'GET')} {req.get('host', '')}{req['path']}: {errs}"
                    )
        assert not failures, "\n".join(failures)
    finally:
        gw.stop()
        for runner in runners:
            await runner.cleanup()
