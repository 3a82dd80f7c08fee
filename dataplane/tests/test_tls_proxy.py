"""TLS end to end: a real gateway process with HTTPS listeners and TLS backends.

One gateway (started once for the module) serves:

- port `https`: a listener without hostname (certificate `gw.crt`, rotated by a test) whose
  routes reach the echo upstream, one of them through ext_authz;
- port `sni`: two HTTPS listeners, a.example.com and b.example.com, each with its own
  certificate and upstream;
- port `mtls`: an HTTPS listener that requires a client certificate signed by the test CA;
- port `plain`: HTTP routes to TLS upstreams (aiohttp servers with certificates from `certs`)
  with backendTLS: the right root, a wrong root, and client certificates for an mTLS upstream.

Certificates are generated into the module's tmp dir; clients are raw asyncio TLS connections
so a test can see the certificate the gateway presented.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from dataplane.tests import certs, harness
from dataplane.tests import extauthz_servers as authz

pytestmark = pytest.mark.asyncio(loop_scope="module")


# --------------------------------------------------------------------------------------------
# TLS upstreams and a raw HTTPS client


class TlsUpstream:
    """An aiohttp echo server on 127.0.0.1 serving TLS (optionally requiring client certificates)."""

    def __init__(self, name: str, leaf: certs.Leaf, client_ca: certs.CA | None = None) -> None:
        self.name = name
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(leaf.cert_file, leaf.key_file)
        if client_ca is not None:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca.cert_file)
        self.port = harness.free_port()
        self.runner: web.AppRunner | None = None
        self.client_subjects: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            self.client_subjects.append(dict(x[0] for x in peer["subject"])["commonName"])
        return await harness.echo(request)

    async def __aenter__(self) -> TlsUpstream:
        app = web.Application()
        app[harness.NAME] = self.name
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ctx).start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def client_context(ca: certs.CA, leaf: certs.Leaf | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.cert_file))
    if leaf is not None:
        ctx.load_cert_chain(leaf.cert_file, leaf.key_file)
    return ctx


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    peer_der: bytes
    peer_sans: tuple[tuple[str, str], ...]

    def json(self) -> Any:
        return json.loads(self.body)


class HttpsConnection:
    """One keep-alive TLS connection to the gateway on 127.0.0.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        ssl_object = writer.get_extra_info("ssl_object")
        self.peer_der: bytes = ssl_object.getpeercert(binary_form=True)
        peer = ssl_object.getpeercert()
        self.peer_sans: tuple[tuple[str, str], ...] = tuple(peer.get("subjectAltName", ())) if peer else ()

    @classmethod
    async def open(cls, port: int, sni: str, ctx: ssl.SSLContext) -> HttpsConnection:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
        return cls(reader, writer, sni)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nhost: {self.host}\r\n{extra}\r\n".encode())
        async with asyncio.timeout(5):
            await self.writer.drain()
            status, got, body = await harness.read_response(self.reader)
        return Reply(status, got, body, self.peer_der, self.peer_sans)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()


async def https_get(
    port: int, sni: str, path: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None
) -> Reply:
    conn = await HttpsConnection.open(port, sni, ctx)
    try:
        return await conn.get(path, headers)
    finally:
        await conn.close()


async def http_get(port: int, path: str) -> tuple[int, Any]:
    async with harness.client() as c, c.get(f"http://127.0.0.1:{port}{path}") as r:
        body = await r.read()
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.status, json.loads(body)
        return r.status, body


def der(leaf: certs.Leaf) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_pem.decode())


# --------------------------------------------------------------------------------------------
# The gateway


@dataclasses.dataclass
class Env:
    tmp: Path
    ca: certs.CA
    other_ca: certs.CA
    gw: harness.GatewayProcess
    ports: dict[str, int]
    leaves: dict[str, certs.Leaf]
    authz: authz.GrpcAuthzServer
    mtls_upstream: TlsUpstream

    def client(self, leaf: str | None = None, ca: certs.CA | None = None) -> ssl.SSLContext:
        return client_context(ca or self.ca, self.leaves[leaf] if leaf else None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = Path(tmp_path_factory.mktemp("tls"))
    ca = certs.CA(tmp / "ca")
    other_ca = certs.CA(tmp / "other", name="other CA")
    leaves = {
        "gw": ca.issue("gw", dns=["gw.example.com"]),
        "a": ca.issue("a", dns=["a.example.com"]),
        "b": ca.issue("b", dns=["b.example.com"]),
        "mtls": ca.issue("mtls", dns=["mtls.example.com"]),
        "upstream": ca.issue("upstream", dns=["upstream.internal"]),
        "gw-client": ca.issue("gw-client", client=True),
        "client": ca.issue("client", client=True),
        "stranger": other_ca.issue("stranger", client=True),
    }
    ports = {name: harness.free_port() for name in ("https", "sni", "mtls", "plain")}
    grpc_authz = await authz.GrpcAuthzServer.start()
    try:
        async with (
            harness.Upstream("main") as up,
            harness.Upstream("up-a") as up_a,
            harness.Upstream("up-b") as up_b,
            TlsUpstream("tls-up", leaves["upstream"]) as tls_up,
            TlsUpstream("mtls-up", leaves["upstream"], client_ca=ca) as mtls_up,
        ):
            f = {name: (leaf.cert_file, leaf.key_file) for name, leaf in leaves.items()}
            config = f"""\
binds:
- port: {ports["https"]}
  listeners:
  - name: secure
    protocol: HTTPS
    tls: {{cert: {f["gw"][0]}, key: {f["gw"][1]}}}
    routes:
    - name: authz
      matches: [{{path: {{pathPrefix: /authz}}}}]
      policies:
        extAuthz: {{host: '127.0.0.1:{grpc_authz.port}'}}
        transformations: {{request: {{set: {{x-cel-scheme: request.scheme}}}}}}
      backends: [{{host: {up.address}}}]
    - name: main
      backends: [{{host: {up.address}}}]
- port: {ports["sni"]}
  listeners:
  - name: a
    hostname: a.example.com
    protocol: HTTPS
    tls: {{cert: {f["a"][0]}, key: {f["a"][1]}}}
    routes: [{{backends: [{{host: {up_a.address}}}]}}]
  - name: b
    hostname: b.example.com
    protocol: HTTPS
    tls: {{cert: {f["b"][0]}, key: {f["b"][1]}}}
    routes: [{{backends: [{{host: {up_b.address}}}]}}]
- port: {ports["mtls"]}
  listeners:
  - name: mutual
    protocol: HTTPS
    tls: {{cert: {f["mtls"][0]}, key: {f["mtls"][1]}, root: {ca.cert_file}}}
    routes: [{{backends: [{{host: {up.address}}}]}}]
- port: {ports["plain"]}
  listeners:
  - name: plain
    routes:
    - name: good
      matches: [{{path: {{pathPrefix: /good}}}}]
      backends: [{{backend: tls-good}}]
    - name: wrong-root
      matches: [{{path: {{pathPrefix: /wrong-root}}}}]
      backends: [{{backend: tls-wrong-root}}]
    - name: mtls
      matches: [{{path: {{pathPrefix: /mtls}}}}]
      backends: [{{backend: tls-mtls}}]
    - name: mtls-no-cert
      matches: [{{path: {{pathPrefix: /no-client-cert}}}}]
      backends: [{{backend: tls-mtls-no-cert}}]
backends:
- name: tls-good
  host: {tls_up.address}
  policies: {{backendTLS: {{root: {ca.cert_file}, hostname: upstream.internal}}}}
- name: tls-wrong-root
  host: {tls_up.address}
  policies: {{backendTLS: {{root: {other_ca.cert_file}, hostname: upstream.internal}}}}
- name: tls-mtls
  host: {mtls_up.address}
  policies:
    backendTLS:
      root: {ca.cert_file}
      hostname: upstream.internal
      cert: {f["gw-client"][0]}
      key: {f["gw-client"][1]}
- name: tls-mtls-no-cert
  host: {mtls_up.address}
  policies: {{backendTLS: {{root: {ca.cert_file}, hostname: upstream.internal}}}}
"""
            gw = harness.GatewayProcess(tmp, config).start()
            try:
                yield Env(tmp, ca, other_ca, gw, ports, leaves, grpc_authz, mtls_up)
            finally:
                gw.stop()
    finally:
        await grpc_authz.stop()


# --------------------------------------------------------------------------------------------
# HTTPS listeners


async def test_an_https_listener_serves_the_route_and_tells_the_upstream_it_was_https(env: Env) -> None:
    reply = await https_get(env.ports["https"], "gw.example.com", "/hello?x=1", env.client())
    assert reply.status == 200, reply.body
    seen = reply.json()
    assert seen["backend"] == "main"
    assert (seen["path"], seen["query"]) == ("/hello", "x=1")
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert ("DNS", "gw.example.com") in reply.peer_sans


async def test_a_plain_http_request_on_the_https_port_gets_no_http_answer(env: Env) -> None:
    raw = await harness.raw_request(env.ports["https"], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", read_timeout=2)
    assert not raw.startswith(b"HTTP/1.1 200")


async def test_ext_authz_on_an_https_listener_reports_the_https_scheme(env: Env) -> None:
    reply = await https_get(env.ports["https"], "gw.example.com", "/authz", env.client())
    assert reply.status == 200, reply.body
    http = env.authz.requests[-1].attributes.request.http
    assert http.scheme == "https"
    assert http.path == "/authz"


async def test_cel_request_scheme_is_https_on_an_https_listener(env: Env) -> None:
    reply = await https_get(env.ports["https"], "gw.example.com", "/authz", env.client())
    assert reply.status == 200, reply.body
    assert reply.json()["headers"]["x-cel-scheme"] == "https"


async def test_sni_chooses_each_listeners_certificate_and_routes(env: Env) -> None:
    for name in ("a", "b"):
        host = f"{name}.example.com"
        reply = await https_get(env.ports["sni"], host, "/", env.client())
        assert reply.status == 200, reply.body
        assert reply.peer_sans == (("DNS", host),)
        assert reply.peer_der == der(env.leaves[name])
        assert reply.json()["backend"] == f"up-{name}"


async def test_a_rotated_certificate_is_served_to_new_connections_and_old_ones_keep_working(
    env: Env,
) -> None:
    port, host = env.ports["https"], "gw.example.com"
    old = env.leaves["gw"]
    kept = await HttpsConnection.open(port, host, env.client())
    try:
        first = await kept.get("/before")
        assert first.status == 200 and first.peer_der == der(old)

        new = env.ca.issue("gw-rotated", dns=["gw.example.com"], stem="gw")  # same file names
        assert new.cert_file == old.cert_file and new.key_file == old.key_file
        env.leaves["gw"] = new
        await asyncio.sleep(2.2)
        seen = b""
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            reply = await https_get(port, host, "/after", env.client())
            assert reply.status == 200
            seen = reply.peer_der
            if seen == der(new):
                break
            await asyncio.sleep(0.25)
        assert seen == der(new), "new connections still get the old certificate"

        again = await kept.get("/still-open")
        assert again.status == 200
        assert again.json()["path"] == "/still-open"
    finally:
        await kept.close()
    assert env.gw.proc is not None and env.gw.proc.poll() is None  # never restarted


async def test_an_mtls_listener_refuses_a_client_without_a_certificate(env: Env) -> None:
    try:
        reply = await https_get(env.ports["mtls"], "mtls.example.com", "/", env.client())
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return
    assert 400 <= reply.status < 500, reply


async def test_an_mtls_listener_refuses_a_certificate_from_another_ca(env: Env) -> None:
    try:
        reply = await https_get(env.ports["mtls"], "mtls.example.com", "/", env.client("stranger"))
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return
    assert 400 <= reply.status < 500, reply


async def test_an_mtls_listener_accepts_a_client_certificate_signed_by_its_root(env: Env) -> None:
    reply = await https_get(env.ports["mtls"], "mtls.example.com", "/", env.client("client"))
    assert reply.status == 200, reply.body
    assert reply.json()["headers"]["x-forwarded-proto"] == "https"


# --------------------------------------------------------------------------------------------
# Backend TLS


async def test_backend_tls_with_the_right_root_and_hostname_reaches_the_upstream(env: Env) -> None:
    status, seen = await http_get(env.ports["plain"], "/good/x")
    assert status == 200, seen
    assert seen["backend"] == "tls-up"
    assert seen["path"] == "/good/x"


async def test_backend_tls_with_a_wrong_root_is_a_503_that_says_why(env: Env) -> None:
    status, body = await http_get(env.ports["plain"], "/wrong-root")
    assert status == 503
    text = body.decode() if isinstance(body, bytes) else json.dumps(body)
    assert "TLS handshake" in text and "certificate verify failed" in text, text
    assert "BEGIN" not in text


async def test_backend_mtls_presents_the_configured_client_certificate(env: Env) -> None:
    status, seen = await http_get(env.ports["plain"], "/mtls")
    assert status == 200, seen
    assert seen["backend"] == "mtls-up"
    assert env.mtls_upstream.client_subjects[-1] == "gw-client"


async def test_backend_mtls_without_a_client_certificate_fails_with_503(env: Env) -> None:
    before = len(env.mtls_upstream.client_subjects)
    status, body = await http_get(env.ports["plain"], "/no-client-cert")
    assert status in (502, 503), body  # TLS 1.3: the refusal arrives after the handshake
    assert len(env.mtls_upstream.client_subjects) == before


# --------------------------------------------------------------------------------------------
# Validation


async def test_validate_names_the_listener_tls_field_when_the_certificate_is_not_pem(tmp_path: Path) -> None:
    leaf = certs.CA(tmp_path / "ca").issue("gw", dns=["gw.example.com"])
    bad = tmp_path / "bad.crt"
    bad.write_text("this is not a certificate\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        "binds:\n- port: 8443\n  listeners:\n  - name: secure\n    protocol: HTTPS\n"
        f"    tls: {{cert: {bad}, key: {leaf.key_file}}}\n"
        "    routes: [{backends: [{host: '127.0.0.1:9000'}]}]\n"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dataplane", "--validate", "-f", str(config)],
        cwd=harness.REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "secure" in output and "tls.cert" in output, output
    assert "not a PEM certificate" in output
