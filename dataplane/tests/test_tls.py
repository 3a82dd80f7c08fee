"""TLS: HTTPS listeners (certificates by SNI, client certificates, rotation) and backend TLS/mTLS.

Every test generates its certificates (`certs.CA`) and talks over real sockets on 127.0.0.1:
`Listeners` with a trivial handler for the server side, `backends.http.Pool` against an
asyncio TLS upstream for the client side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import uvloop

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors, settings, tls
from dataplane.backends import http as upstream_http
from dataplane.server import http1, listener
from dataplane.telemetry import metrics
from dataplane.tests import certs, harness

SPIFFE = "spiffe://cluster.local/ns/apps/sa/api"


@pytest.fixture
def ca(tmp_path: Path) -> certs.CA:
    return certs.CA(tmp_path / "ca")


@pytest.fixture
def other_ca(tmp_path: Path) -> certs.CA:
    return certs.CA(tmp_path / "other", name="other CA")


@pytest.fixture
def fast_recheck(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Certificate files are checked on every handshake instead of every 2 s."""
    monkeypatch.setattr(tls, "FILE_RECHECK", 0.0)
    yield


def der(leaf: certs.Leaf) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_pem.decode())


def files(leaf: certs.Leaf, root: certs.CA | None = None, min_version: str = "") -> pb.ListenerTls:
    msg = pb.ListenerTls(cert_file=str(leaf.cert_file), key_file=str(leaf.key_file), min_version=min_version)
    if root is not None:
        msg.root_file = str(root.cert_file)
    return msg


def inline(leaf: certs.Leaf) -> pb.ListenerTls:
    return pb.ListenerTls(cert_pem=leaf.cert_pem, key_pem=leaf.key_pem)


def server_tls(*certs_by_host: tuple[str, pb.ListenerTls]) -> tls.ServerTls:
    return tls.ServerTls(
        [(host, tls.server_cert(msg, f"listener/{host or 'default'}")) for host, msg in certs_by_host]
    )


# ------------------------------------------------------------------------------------------
# Server side: a Listeners with a handler that answers "<scheme> <host>"


def answer(ex: http1.Exchange) -> None:
    ex.respond(200, [(b"content-type", b"text/plain")], f"{ex.conn.scheme} {ex.authority}".encode())


@contextlib.asynccontextmanager
async def serving(
    ports: set[int], tls_by_port: dict[int, tls.ServerTls]
) -> AsyncIterator[listener.Listeners]:
    listeners = listener.Listeners(answer, settings.Limits(), metrics.Registry(), host="127.0.0.1")
    try:
        await listeners.sync(ports, tls_by_port)
        yield listeners
    finally:
        await listeners.drain(0.5)


def client_context(
    root: certs.CA | None, cert: certs.Leaf | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(root.cert_file)) if root else ssl.create_default_context()
    ctx.check_hostname = False  # the tests check the served certificate themselves
    if cert is not None:
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class Client:
    """One keep-alive connection to a listener."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext | None = None, sni: str | None = None) -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni if ctx else None), 5
        )
        return cls(reader, writer)

    @property
    def served_cert(self) -> bytes:
        ssl_object = self.writer.get_extra_info("ssl_object")
        return bytes(ssl_object.getpeercert(binary_form=True))

    async def get(self, host: str = "h") -> tuple[int, bytes]:
        self.writer.write(f"GET / HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        return status, await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def fetch(
    port: int, ctx: ssl.SSLContext | None, sni: str | None, host: str = "h"
) -> tuple[bytes, bytes]:
    """(served certificate, body) of one request on a new connection."""
    client = await Client.open(port, ctx, sni)
    try:
        status, body = await client.get(host)
        assert status == 200
        return (client.served_cert if ctx else b""), body
    finally:
        await client.close()


async def refused(port: int, ctx: ssl.SSLContext, sni: str | None) -> bool:
    """True when the listener does not serve this client (handshake or connection cut)."""
    try:
        await fetch(port, ctx, sni)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
        return True
    return False


async def test_an_https_listener_serves_each_hostname_its_own_certificate_chosen_by_sni(ca: certs.CA) -> None:
    a = ca.issue("a", dns=["a.example.com"])
    b = ca.issue("b", dns=["b.example.com"])
    port = harness.free_port()
    sni = server_tls(("a.example.com", files(a)), ("b.example.com", inline(b)))
    async with serving({port}, {port: sni}) as listeners:
        ctx = client_context(ca)
        ctx.check_hostname = True
        served_a, body = await fetch(port, ctx, "a.example.com", host="a.example.com")
        served_b, _ = await fetch(port, ctx, "B.Example.COM")
        kept = await Client.open(port, ctx, "b.example.com")
        await kept.get()
        assert "b.example.com" in {getattr(c, "sni", None) for c in listeners.connections[port]}
        await kept.close()
    assert served_a == der(a)
    assert served_b == der(b)
    assert body == b"https a.example.com"


async def test_an_unknown_or_missing_sni_gets_the_default_certificate(ca: certs.CA) -> None:
    a = ca.issue("a", dns=["a.example.com"])
    default = ca.issue("default", dns=["default.example.com"])
    port = harness.free_port()
    async with serving({port}, {port: server_tls(("a.example.com", files(a)), ("", files(default)))}):
        unknown, _ = await fetch(port, client_context(ca), "unknown.example.org")
        missing, _ = await fetch(port, client_context(ca), None)
    assert unknown == der(default)
    assert missing == der(default)


def test_sni_picks_the_exact_name_then_the_longest_wildcard_then_the_default_then_the_first(
    ca: certs.CA,
) -> None:
    msgs = {
        name: files(ca.issue(name.replace("*", "star") or "empty", dns=["x.test"])) for name in ("a", "*", "")
    }
    exact, wild, longer, default = (tls.server_cert(msgs[n], "l") for n in ("a", "*", "*", ""))
    chosen = tls.ServerTls(
        [("api.example.com", exact), ("*.example.com", wild), ("*.eu.example.com", longer), ("", default)]
    )
    assert chosen.select("api.example.com") is exact
    assert chosen.select("API.example.com.") is exact
    assert chosen.select("x.example.com") is wild
    assert chosen.select("a.b.example.com") is wild
    assert chosen.select("x.eu.example.com") is longer
    assert chosen.select("example.com") is default
    assert chosen.select(None) is default
    no_default = tls.ServerTls([("*.example.com", wild), ("api.example.com", exact)])
    assert no_default.select("other.org") is wild


async def test_a_new_certificate_applies_to_new_handshakes_while_an_open_connection_keeps_working(
    ca: certs.CA, tmp_path: Path
) -> None:
    old = ca.issue("old", dns=["a.example.com"])
    new = certs.CA(tmp_path / "ca2", name="second").issue("new", dns=["a.example.com"])
    port, plain_port = harness.free_port(), harness.free_port()
    async with serving({port, plain_port}, {port: server_tls(("a.example.com", files(old)))}) as listeners:
        ctx = client_context(None)
        ctx.verify_mode = ssl.CERT_NONE
        kept = await Client.open(port, ctx, "a.example.com")
        assert (await kept.get())[0] == 200
        assert kept.served_cert == der(old)

        await listeners.sync({port, plain_port}, {port: server_tls(("a.example.com", inline(new)))})

        served, _ = await fetch(port, ctx, "a.example.com")
        assert served == der(new)
        assert await kept.get() == (200, b"https h")
        assert listeners.tls_ports() == [port]
        await kept.close()


async def test_rewritten_certificate_files_are_picked_up_by_new_handshakes(
    ca: certs.CA, fast_recheck: None
) -> None:
    first = ca.issue("a", dns=["a.example.com"])
    port = harness.free_port()
    async with serving({port}, {port: server_tls(("a.example.com", files(first)))}):
        served, _ = await fetch(port, client_context(ca), "a.example.com")
        assert served == der(first)
        second = ca.issue("a", dns=["a.example.com"])  # same file names, new certificate and key
        served, _ = await fetch(port, client_context(ca), "a.example.com")
        assert served == der(second)


def test_certificate_files_are_checked_at_most_every_two_seconds(ca: certs.CA) -> None:
    leaf = ca.issue("a", dns=["a.example.com"])
    cert = tls.server_cert(files(leaf), "listener/a")
    first = cert.context()
    ca.issue("a", dns=["a.example.com"])
    assert tls.FILE_RECHECK == 2.0
    assert cert.context() is first  # rewritten, but checked less than 2 s ago


async def test_a_broken_certificate_file_keeps_the_last_good_certificate_and_logs_an_error(
    ca: certs.CA, fast_recheck: None, caplog: pytest.LogCaptureFixture
) -> None:
    good = ca.issue("a", dns=["a.example.com"])
    port = harness.free_port()
    async with serving({port}, {port: server_tls(("a.example.com", files(good)))}):
        good.cert_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        with caplog.at_level(logging.ERROR, logger="dataplane.tls"):
            served, _ = await fetch(port, client_context(ca), "a.example.com")
            again, _ = await fetch(port, client_context(ca), "a.example.com")
        assert served == again == der(good)
        assert caplog.text.count("keeping the previous TLS material") == 1  # once per change
        assert "listener/a.example.com.cert_file: not a PEM certificate" in caplog.text
        good.key_file.unlink()
        with caplog.at_level(logging.ERROR, logger="dataplane.tls"):
            served, _ = await fetch(port, client_context(ca), "a.example.com")
        assert served == der(good)
        assert "No such file" in caplog.text
        fixed = ca.issue("a", dns=["a.example.com"])
        served, _ = await fetch(port, client_context(ca), "a.example.com")
        assert served == der(fixed)


async def test_an_mtls_listener_refuses_a_client_without_a_certificate_and_accepts_one_with(
    ca: certs.CA, other_ca: certs.CA
) -> None:
    server = ca.issue("api", dns=["api.example.com"])
    client = ca.issue("client", client=True)
    stranger = other_ca.issue("stranger", client=True)
    port = harness.free_port()
    async with serving({port}, {port: server_tls(("api.example.com", files(server, root=ca)))}):
        assert await refused(port, client_context(ca), "api.example.com")
        assert await refused(port, client_context(ca, stranger), "api.example.com")
        _, body = await fetch(port, client_context(ca, client), "api.example.com")
    assert body == b"https h"


async def test_a_port_mixing_mtls_and_plain_hostnames_asks_for_the_certificate_only_where_configured(
    ca: certs.CA, other_ca: certs.CA
) -> None:
    public = ca.issue("public", dns=["www.example.com"])
    private = ca.issue("private", dns=["internal.example.com"])
    client = ca.issue("client", client=True)
    stranger = other_ca.issue("stranger", client=True)
    port = harness.free_port()
    both = server_tls(("www.example.com", files(public)), ("internal.example.com", files(private, root=ca)))
    async with serving({port}, {port: both}):
        served, _ = await fetch(port, client_context(ca), "www.example.com")
        assert served == der(public)
        assert await refused(port, client_context(ca), "internal.example.com")
        assert await refused(port, client_context(ca, stranger), "internal.example.com")
        served, _ = await fetch(port, client_context(ca, client), "internal.example.com")
        assert served == der(private)


async def test_a_hostname_whose_minimum_is_tls_1_3_refuses_tls_1_2_clients_while_its_neighbour_serves_them(
    ca: certs.CA,
) -> None:
    modern = ca.issue("modern", dns=["modern.example.com"])
    legacy = ca.issue("legacy", dns=["legacy.example.com"])
    port = harness.free_port()
    mixed = server_tls(
        ("modern.example.com", files(modern, min_version="1.3")), ("legacy.example.com", files(legacy))
    )
    async with serving({port}, {port: mixed}):
        old_client = client_context(ca, maximum=ssl.TLSVersion.TLSv1_2)
        assert await refused(port, old_client, "modern.example.com")
        served, _ = await fetch(port, old_client, "legacy.example.com")
        assert served == der(legacy)
        served, _ = await fetch(port, client_context(ca), "modern.example.com")
        assert served == der(modern)


async def test_a_port_switches_between_plain_and_tls_without_dropping_other_ports_connections(
    ca: certs.CA,
) -> None:
    leaf = ca.issue("a", dns=["a.example.com"])
    stay, switch = harness.free_port(), harness.free_port()
    async with serving({stay, switch}, {}) as listeners:
        kept = await Client.open(stay)
        assert await kept.get() == (200, b"http h")
        assert (await fetch(switch, None, None))[1] == b"http h"

        await listeners.sync({stay, switch}, {switch: server_tls(("", files(leaf)))})
        served, body = await fetch(switch, client_context(ca), "a.example.com")
        assert (served, body) == (der(leaf), b"https h")
        assert await kept.get() == (200, b"http h")

        await listeners.sync({stay, switch})
        assert (await fetch(switch, None, None))[1] == b"http h"
        assert await kept.get() == (200, b"http h")
        assert listeners.ports == sorted([stay, switch])
        assert listeners.tls_ports() == []
        await kept.close()


async def test_a_failed_handshake_does_not_disturb_other_connections(
    ca: certs.CA, other_ca: certs.CA
) -> None:
    leaf = ca.issue("a", dns=["a.example.com"])
    port = harness.free_port()
    async with serving({port}, {port: server_tls(("", files(leaf)))}):
        kept = await Client.open(port, client_context(ca), "a.example.com")
        assert (await kept.get())[0] == 200
        # a client that distrusts the server, then one that speaks plain HTTP to the TLS port
        assert await refused(port, client_context(other_ca), "a.example.com")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        with contextlib.suppress(OSError):
            assert b"HTTP/1.1 200" not in await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert await kept.get() == (200, b"https h")
        await kept.close()


def test_the_listener_side_works_under_uvloop(ca: certs.CA) -> None:
    a = ca.issue("a", dns=["a.example.com"])
    b = ca.issue("b", dns=["b.example.com"])
    client = ca.issue("client", client=True)
    port = harness.free_port()

    async def scenario() -> tuple[bytes, bytes, bool, bytes]:
        mixed = server_tls(("a.example.com", files(a)), ("b.example.com", files(b, root=ca)))
        async with serving({port}, {port: mixed}) as listeners:
            served_a, body = await fetch(port, client_context(ca), "a.example.com")
            without = await refused(port, client_context(ca), "b.example.com")
            kept = await Client.open(port, client_context(ca, client), "b.example.com")
            await kept.get()
            served_b = kept.served_cert
            sni = {str(getattr(c, "sni", None)) for c in listeners.connections[port]} & {"b.example.com"}
            await kept.close()
        return served_a, served_b, without, body + b" " + ",".join(sni).encode()

    served_a, served_b, without, body = uvloop.run(scenario())
    assert (served_a, served_b, without, body) == (der(a), der(b), True, b"https h b.example.com")


async def test_a_plain_listener_reports_the_http_scheme() -> None:
    port = harness.free_port()
    async with serving({port}, {}):
        assert (await fetch(port, None, None))[1] == b"http h"


def test_listener_certificate_problems_name_the_field_and_never_the_key(ca: certs.CA, tmp_path: Path) -> None:
    leaf = ca.issue("a", dns=["a.example.com"])
    other = ca.issue("b", dns=["b.example.com"])
    cases = {
        "listener/x.cert_file: cannot read": pb.ListenerTls(
            cert_file=str(tmp_path / "missing.crt"), key_file="k"
        ),
        "listener/x.cert_pem: not a PEM certificate": pb.ListenerTls(
            cert_pem=b"garbage", key_pem=leaf.key_pem
        ),
        "listener/x.key_pem: not an unencrypted PEM private key": pb.ListenerTls(
            cert_pem=leaf.cert_pem, key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ),
        "listener/x.key_pem: the private key does not match the certificate": pb.ListenerTls(
            cert_pem=leaf.cert_pem, key_pem=other.key_pem
        ),
        "listener/x.key_file: cert is set without its key": pb.ListenerTls(cert_pem=leaf.cert_pem),
        "listener/x.cert_file: an HTTPS listener needs a certificate": pb.ListenerTls(),
        "listener/x.root_pem: not a PEM certificate": pb.ListenerTls(
            cert_pem=leaf.cert_pem, key_pem=leaf.key_pem, root_pem=b"nope"
        ),
        'listener/x.min_version: must be "1.2" or "1.3"': pb.ListenerTls(
            cert_pem=leaf.cert_pem, key_pem=leaf.key_pem, min_version="1.1"
        ),
        "listener/x.min_version: higher than max_version": pb.ListenerTls(
            cert_pem=leaf.cert_pem, key_pem=leaf.key_pem, min_version="1.3", max_version="1.2"
        ),
        "listener/x.cert_file: set cert_file or cert_pem, not both": pb.ListenerTls(
            cert_file=str(leaf.cert_file), cert_pem=leaf.cert_pem, key_pem=leaf.key_pem
        ),
    }
    for expected, msg in cases.items():
        with pytest.raises(errors.ConfigError) as caught:
            tls.server_cert(msg, "listener/x")
        assert str(caught.value).startswith(expected), (expected, str(caught.value))
        assert b"PRIVATE" not in str(caught.value).encode()


# ------------------------------------------------------------------------------------------
# Client side: the pool against a TLS upstream


class TlsUpstream:
    """An HTTP/1.1 keep-alive server over TLS; answers "sni=<sni> client=<client cert CN>"."""

    def __init__(self, leaf: certs.Leaf, client_root: certs.CA | None = None) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(leaf.cert_file, leaf.key_file)
        if client_root is not None:
            self.ctx.load_verify_locations(cafile=str(client_root.cert_file))
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.sni_callback = self._sni
        self.sni: list[str | None] = []
        self.handshakes = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _sni(self, _obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def __aenter__(self) -> TlsUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await asyncio.sleep(0.05)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        self._writers.add(writer)
        peer = writer.get_extra_info("peercert") or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "-")
        sni = self.sni[-1] if self.sni else None
        body = f"sni={sni} client={cn}".encode()
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@contextlib.asynccontextmanager
async def pool() -> AsyncIterator[upstream_http.Pool]:
    p = upstream_http.Pool(settings.Upstream(), metrics.Registry())
    try:
        yield p
    finally:
        p.close()
        await asyncio.sleep(0.05)


async def get(p: upstream_http.Pool, port: int, spec: upstream_http.TlsArg, fresh: bool = False) -> bytes:
    host = "127.0.0.1"
    conn = await (p.connect(host, port, 5.0, spec) if fresh else p.acquire(host, port, 5.0, spec))
    resp = upstream_http.UpstreamResponse(conn, head_only=False)
    conn.write(b"GET / HTTP/1.1\r\nhost: upstream\r\n\r\n")
    await asyncio.wait_for(resp.head_waiter, 5)
    assert resp.status == 200
    body = b""
    while chunk := await resp.body.read():
        body += chunk
    return body


def backend(
    root: certs.CA | None = None,
    cert: certs.Leaf | None = None,
    *,
    hostname: str = "",
    sans: Sequence[str] = (),
    host: str = "127.0.0.1",
    insecure: bool = False,
    insecure_host: bool = False,
) -> tls.ClientTls:
    msg = pb.BackendTls(
        hostname=hostname, subject_alt_names=list(sans), insecure=insecure, insecure_host=insecure_host
    )
    if root is not None:
        msg.root_pem = root.cert_pem
    if cert is not None:
        msg.cert_file, msg.key_file = str(cert.cert_file), str(cert.key_file)
    return tls.client_tls(msg, host, "backend/b.policies.tls")


async def test_the_pool_reaches_a_tls_upstream_trusted_through_a_custom_root_with_the_hostname_as_sni(
    ca: certs.CA,
) -> None:
    leaf = ca.issue("upstream", dns=["api.internal"])
    async with TlsUpstream(leaf) as up, pool() as p:
        assert await get(p, up.port, backend(ca, hostname="api.internal")) == b"sni=api.internal client=-"
        from_file = tls.client_tls(
            pb.BackendTls(root_file=str(ca.cert_file), hostname="api.internal"), "127.0.0.1", "b"
        )
        assert await get(p, up.port, from_file) == b"sni=api.internal client=-"


async def test_an_upstream_that_requires_a_client_certificate_gets_ours(ca: certs.CA) -> None:
    leaf = ca.issue("upstream", dns=["api.internal"])
    client = ca.issue("gateway", client=True)
    async with TlsUpstream(leaf, client_root=ca) as up, pool() as p:
        assert await get(p, up.port, backend(ca, client, hostname="api.internal")) == (
            b"sni=api.internal client=gateway"
        )
        with pytest.raises(errors.UpstreamError):
            await get(p, up.port, backend(ca, hostname="api.internal"))


async def test_a_subject_alt_names_list_accepts_a_spiffe_uri_and_rejects_other_names(ca: certs.CA) -> None:
    leaf = ca.issue("workload", uris=[SPIFFE])
    async with TlsUpstream(leaf) as up, pool() as p:
        ok = backend(ca, hostname="api.internal", sans=[SPIFFE])
        assert await get(p, up.port, ok) == b"sni=api.internal client=-"
        wrong = backend(ca, hostname="api.internal", sans=["spiffe://cluster.local/ns/apps/sa/other"])
        with pytest.raises(
            errors.UpstreamUnavailable, match=r"certificate names do not match 'api\.internal'"
        ):
            await get(p, up.port, wrong)
        with pytest.raises(errors.UpstreamUnavailable, match="certificate verify failed"):
            await get(p, up.port, backend(ca, hostname="api.internal"))  # no SAN list: the name must match


async def test_a_subject_alt_names_list_still_accepts_the_hostname(ca: certs.CA) -> None:
    leaf = ca.issue("upstream", dns=["*.internal"])
    async with TlsUpstream(leaf) as up, pool() as p:
        spec = backend(ca, hostname="api.internal", sans=[SPIFFE])
        assert await get(p, up.port, spec) == b"sni=api.internal client=-"


async def test_an_upstream_signed_by_another_ca_fails_with_a_clear_error(
    ca: certs.CA, other_ca: certs.CA
) -> None:
    leaf = other_ca.issue("upstream", dns=["api.internal"])
    async with TlsUpstream(leaf) as up, pool() as p:
        with pytest.raises(errors.UpstreamUnavailable) as caught:
            await get(p, up.port, backend(ca, hostname="api.internal"))
    message = str(caught.value)
    assert message.startswith(f"TLS handshake with tls:127.0.0.1:{up.port} failed: certificate verify failed")
    assert caught.value.status == 503


async def test_tls_true_verifies_against_the_system_trust_and_the_host(ca: certs.CA) -> None:
    leaf = ca.issue("upstream", dns=["api.internal"])
    async with TlsUpstream(leaf) as up, pool() as p:
        with pytest.raises(errors.UpstreamUnavailable, match="certificate verify failed"):
            await get(p, up.port, True)


async def test_insecure_skips_verification_and_insecure_host_verifies_only_the_chain(
    ca: certs.CA, other_ca: certs.CA
) -> None:
    stranger = other_ca.issue("upstream", dns=["elsewhere.test"])
    ours = ca.issue("ours", dns=["elsewhere.test"])
    async with TlsUpstream(stranger) as bad, TlsUpstream(ours) as good, pool() as p:
        assert await get(p, bad.port, backend(ca, hostname="api.internal", insecure=True)) == (
            b"sni=api.internal client=-"
        )
        assert await get(p, good.port, backend(ca, hostname="api.internal", insecure_host=True)) == (
            b"sni=api.internal client=-"
        )
        with pytest.raises(errors.UpstreamUnavailable, match="certificate verify failed"):
            await get(p, bad.port, backend(ca, hostname="api.internal", insecure_host=True))


async def test_two_different_client_tls_specs_never_share_a_pooled_connection(ca: certs.CA) -> None:
    leaf = ca.issue("upstream", dns=["api.internal"])
    one, two = ca.issue("one", client=True), ca.issue("two", client=True)
    async with TlsUpstream(leaf, client_root=ca) as up, pool() as p:
        spec_one, spec_two = (
            backend(ca, one, hostname="api.internal"),
            backend(ca, two, hostname="api.internal"),
        )
        assert await get(p, up.port, spec_one) == b"sni=api.internal client=one"
        assert await get(p, up.port, spec_two) == b"sni=api.internal client=two"
        assert up.handshakes == 2
        assert p.take_idle("127.0.0.1", up.port, True) is None
        assert p.take_idle("127.0.0.1", up.port, False) is None
        # the same spec, compiled again (a config reload), reuses the pooled connection
        again = backend(ca, one, hostname="api.internal")
        assert again == spec_one and hash(again) == hash(spec_one) and again is not spec_one
        assert await get(p, up.port, again) == b"sni=api.internal client=one"
        assert await get(p, up.port, spec_two) == b"sni=api.internal client=two"
        assert up.handshakes == 2


async def test_a_rewritten_client_certificate_is_used_by_new_connections(
    ca: certs.CA, fast_recheck: None
) -> None:
    leaf = ca.issue("upstream", dns=["api.internal"])
    async with TlsUpstream(leaf, client_root=ca) as up, pool() as p:
        spec = backend(ca, ca.issue("gateway", client=True), hostname="api.internal")
        first = spec.context()
        assert spec.context() is first  # unchanged files: the same context
        assert await get(p, up.port, spec) == b"sni=api.internal client=gateway"
        ca.issue("gateway-renewed", client=True, stem="gateway")  # same files, new certificate and key
        assert spec.context() is not first
        assert await get(p, up.port, spec, fresh=True) == b"sni=api.internal client=gateway-renewed"


def test_backend_tls_problems_name_the_field(ca: certs.CA, tmp_path: Path) -> None:
    leaf = ca.issue("a", client=True)
    cases = {
        "b.root_file: cannot read": pb.BackendTls(root_file=str(tmp_path / "none.pem")),
        "b.root_pem: not a PEM certificate": pb.BackendTls(root_pem=b"junk"),
        "b.key_file: cert is set without its key": pb.BackendTls(cert_pem=leaf.cert_pem),
        "b.cert_file: key is set without its cert": pb.BackendTls(key_pem=leaf.key_pem),
    }
    for expected, msg in cases.items():
        with pytest.raises(errors.ConfigError) as caught:
            tls.client_tls(msg, "api.internal", "b")
        assert str(caught.value).startswith(expected), (expected, str(caught.value))


def test_no_backend_tls_message_means_system_trust_checked_against_the_host() -> None:
    spec = tls.client_tls(None, "api.openai.com", "backend/openai")
    assert spec.server_hostname == "api.openai.com"
    assert spec is tls.system("api.openai.com")
    ctx = spec.context()
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert tls.client_tls(pb.BackendTls(), "api.openai.com", "b") == spec
    assert tls.client_tls(pb.BackendTls(hostname="other"), "api.openai.com", "b").server_hostname == "other"
