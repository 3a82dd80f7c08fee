"""TLS material: server certificates chosen by SNI for HTTPS listeners, and client contexts for backends.

Built once by the config compiler (this module does no network I/O and imports no event loop;
it reads certificate files), used by `server/listener` for handshakes and by `backends/http`
for upstream connections.

Server side: `server_cert(msg, where)` loads and checks one `pb.ListenerTls` now (a bad file,
bad PEM or a key that does not match its certificate is a `ConfigError` naming `where.field`).
`ServerTls` holds the certificates of one port by listener hostname; its listening context's
`sni_callback` switches each handshake to the certificate for the client's SNI: exact name,
then the longest wildcard suffix, then the "" listener, else the first. `PortTls` is the
per-port holder a listener keeps: its listening context never changes, `update` swaps the
`ServerTls` that new handshakes see (certificate rotation without a new socket). Certificates
from files are re-read when a file's mtime changes, checked at most every `FILE_RECHECK`
seconds from the handshake path; a broken new file keeps the last good context and logs an
error.

OpenSSL takes the verify mode and the protocol versions of a handshake from the listening
context, not from the one the SNI callback switches to; so a port whose hostnames differ
there requests client certificates optionally and accepts the loosest versions, and
`refusal(ssl_object)`, called once the handshake is done, enforces each hostname's own rule.

Client side: `client_tls(msg, host, where)` is a hashable `ClientTls` (pool keys tell specs
apart); `ClientTls.context()` builds the `ssl.SSLContext` once and rebuilds it when its files
change. With `subject_alt_names`, OpenSSL's hostname check is off and `peer_problem` is called
on the verified certificate after the handshake. `h2(spec)` is the same spec offering ALPN "h2"
(HTTP/2 backends). Listeners offer ALPN "h2" and "http/1.1".
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors

log = logging.getLogger(__name__)

FILE_RECHECK = 2.0
"""Seconds between checks of certificate files' mtimes (from the handshake or connect path)."""

ALPN = ["h2", "http/1.1"]
"""What the listeners speak, in order of preference (the client's ALPN list decides)."""

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_NEGOTIATED = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


# ------------------------------------------------------------------------------------------
# Loading PEM material


@dataclasses.dataclass(frozen=True, slots=True)
class _Pem:
    """One piece of PEM material: inline bytes, or a file (re-read when it changes)."""

    field: str
    """The proto field it came from (for errors): "cert_file" or "cert_pem"."""
    path: str = ""
    data: bytes = b""

    def read(self) -> bytes:
        if not self.path:
            return self.data
        with open(self.path, "rb") as f:
            return f.read()

    def stamp(self) -> tuple[int, int, int] | None:
        """What tells a changed file: (mtime ns, size, inode); None for inline PEM."""
        if not self.path:
            return None
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size, st.st_ino


def _pem(where: str, name: str, path: str, data: bytes) -> _Pem | None:
    if path and data:
        raise errors.ConfigError([f"{where}.{name}_file: set {name}_file or {name}_pem, not both"])
    if path:
        return _Pem(field=f"{name}_file", path=path)
    if data:
        return _Pem(field=f"{name}_pem", data=data)
    return None


def _version(where: str, field: str, value: str) -> ssl.TLSVersion | None:
    if not value:
        return None
    found = _VERSIONS.get(value)
    if found is None:
        raise errors.ConfigError([f'{where}.{field}: must be "1.2" or "1.3", not {value!r}'])
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class _Material:
    """PEM bytes read and checked: a certificate chain with its key, and trusted roots."""

    chain: bytes = b""
    key: bytes = b""
    roots: bytes = b""
    not_after: datetime.datetime | None = None


def _read(where: str, pem: _Pem) -> bytes:
    try:
        return pem.read()
    except OSError as exc:
        raise errors.ConfigError(
            [f"{where}.{pem.field}: cannot read {pem.path}: {exc.strerror or exc}"]
        ) from exc


def _certificates(where: str, pem: _Pem, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise errors.ConfigError([f"{where}.{pem.field}: not a PEM certificate"]) from exc
    if not certs:  # pragma: no cover - cryptography raises on an empty input
        raise errors.ConfigError([f"{where}.{pem.field}: not a PEM certificate"])
    return certs


def _load(where: str, cert: _Pem | None, key: _Pem | None, root: _Pem | None) -> _Material:
    """Read and check the material now; errors name `where.field` and never include key bytes."""
    chain = key_data = roots = b""
    not_after = None
    if cert is not None and key is not None:
        chain, key_data = _read(where, cert), _read(where, key)
        leaf = _certificates(where, cert, chain)[0]
        try:
            private = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError) as exc:
            raise errors.ConfigError([f"{where}.{key.field}: not an unencrypted PEM private key"]) from exc
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if private.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
            raise errors.ConfigError([f"{where}.{key.field}: the private key does not match the certificate"])
        not_after = leaf.not_valid_after_utc
    elif cert is not None or key is not None:
        have, missing = ("cert", "key") if key is None else ("key", "cert")
        raise errors.ConfigError(
            [f"{where}.{missing}_file: {have} is set without its {missing} ({missing}_file or {missing}_pem)"]
        )
    if root is not None:
        roots = _read(where, root)
        _certificates(where, root, roots)
    return _Material(chain=chain, key=key_data, roots=roots, not_after=not_after)


def _load_chain(ctx: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """`load_cert_chain` takes only paths: hand OpenSSL the PEM through an anonymous memory
    file (a private temp file where memfd does not exist), so keys from Secrets never touch disk."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("agentgw-tls", os.MFD_CLOEXEC)
        try:
            _write_all(fd, chain + b"\n" + key)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover - non-Linux
        path = os.path.join(tmp, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, chain + b"\n" + key)
        finally:
            os.close(fd)
        ctx.load_cert_chain(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ssl_problem(where: str, exc: ssl.SSLError) -> errors.ConfigError:
    return errors.ConfigError([f"{where}: OpenSSL rejected the TLS material: {exc.reason or exc}"])


class _Reloading:
    """Rebuilds an SSLContext when the files it came from change (checked every FILE_RECHECK s)."""

    def __init__(self, where: str, pems: Sequence[_Pem], build: Callable[[], ssl.SSLContext]) -> None:
        self._where = where
        self._pems = [p for p in pems if p.path]
        self._build = build
        try:
            self._stamps = self._stamp()
        except OSError:
            self._stamps = ()  # a missing file: `build` says which, as a ConfigError
        self._checked = time.monotonic()
        self.current = build()

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        return tuple(p.stamp() for p in self._pems)

    def get(self) -> ssl.SSLContext:
        if self._pems:
            now = time.monotonic()
            if now - self._checked >= FILE_RECHECK:
                self._checked = now
                self._refresh()
        return self.current

    def _refresh(self) -> None:
        # A failure keeps serving with the last good material and is logged once per change
        # of the files (a half-written pair is retried when its second file lands).
        try:
            stamps = self._stamp()
        except OSError as exc:
            if self._stamps != ():
                self._stamps = ()
                log.error("%s: keeping the previous TLS material: %s", self._where, exc)
            return
        if stamps == self._stamps:
            return
        self._stamps = stamps
        try:
            self.current = self._build()
        except (OSError, errors.ConfigError, ssl.SSLError) as exc:
            log.error("%s: keeping the previous TLS material: %s", self._where, exc)
            return
        log.info("%s: reloaded TLS material from its files", self._where)


# ------------------------------------------------------------------------------------------
# Server side


class _CertContext(ssl.SSLContext):
    """A server context for one certificate, with the rules `refusal` checks after a handshake."""

    require_client_cert: bool
    minimum: ssl.TLSVersion | None
    maximum: ssl.TLSVersion | None


class ServerCert:
    """One listener's certificate (and client-certificate roots), loaded and checked."""

    def __init__(self, msg: pb.ListenerTls, where: str) -> None:
        self.where = where
        self.minimum = _version(where, "min_version", msg.min_version)
        self.maximum = _version(where, "max_version", msg.max_version)
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise errors.ConfigError([f"{where}.min_version: higher than max_version"])
        cert = _pem(where, "cert", msg.cert_file, msg.cert_pem)
        key = _pem(where, "key", msg.key_file, msg.key_pem)
        root = _pem(where, "root", msg.root_file, msg.root_pem)
        if cert is None:
            raise errors.ConfigError([f"{where}.cert_file: an HTTPS listener needs a certificate"])
        self._sources = (cert, key, root)
        self.require_client_cert = root is not None
        self._reloading = _Reloading(where, [p for p in self._sources if p is not None], self._build)

    def _build(self) -> _CertContext:
        material = _load(self.where, *self._sources)
        if material.not_after is not None and material.not_after < datetime.datetime.now(datetime.UTC):
            log.warning("%s: the certificate expired at %s", self.where, material.not_after.isoformat())
        ctx = _CertContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.require_client_cert = self.require_client_cert
        ctx.minimum, ctx.maximum = self.minimum, self.maximum
        ctx.minimum_version = self.minimum or ssl.TLSVersion.TLSv1_2
        if self.maximum is not None:
            ctx.maximum_version = self.maximum
        ctx.set_alpn_protocols(ALPN)
        try:
            _load_chain(ctx, material.chain, material.key)
            if material.roots:
                ctx.load_verify_locations(cadata=material.roots.decode("ascii"))
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, UnicodeDecodeError) as exc:
            if isinstance(exc, ssl.SSLError):
                raise _ssl_problem(self.where, exc) from exc
            raise errors.ConfigError([f"{self.where}.root_pem: not a PEM certificate"]) from exc
        return ctx

    def context(self) -> ssl.SSLContext:
        """The context for handshakes with this certificate (re-read if its files changed)."""
        return self._reloading.get()


def server_cert(msg: pb.ListenerTls, where: str) -> ServerCert:
    """Load and check a listener certificate now; `ConfigError` names `where.field` on a problem."""
    return ServerCert(msg, where)


def _normalize(name: str) -> str:
    return name.lower().rstrip(".")


class ServerTls:
    """The certificates of one port by listener hostname; SNI picks one per handshake."""

    def __init__(self, certs: Sequence[tuple[str, ServerCert]]) -> None:
        if not certs:
            raise ValueError("ServerTls needs at least one certificate")
        self.certs = tuple(certs)
        self._exact: dict[str, ServerCert] = {}
        self._wildcard: dict[str, ServerCert] = {}
        self._default: ServerCert | None = None
        for hostname, cert in self.certs:
            name = _normalize(hostname)
            if not name:
                self._default = self._default or cert
            elif name.startswith("*."):
                self._wildcard.setdefault(name[1:], cert)
            else:
                self._exact.setdefault(name, cert)
        self.fallback = self._default or self.certs[0][1]
        self.require_client_cert = {c.require_client_cert for _, c in self.certs}
        """{True}, {False} or both: whether hostnames on this port ask for client certificates."""
        self._port: PortTls | None = None

    def select(self, server_name: str | None) -> ServerCert:
        """The certificate for an SNI name: exact, then longest wildcard suffix, then default."""
        if server_name:
            name = _normalize(server_name)
            found = self._exact.get(name)
            if found is not None:
                return found
            if self._wildcard:
                dot = name.find(".")
                while dot >= 0:
                    found = self._wildcard.get(name[dot:])
                    if found is not None:
                        return found
                    dot = name.find(".", dot + 1)
        return self.fallback

    def versions(self) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
        """The loosest bounds over the certificates: OpenSSL negotiates before SNI is known."""
        low = min(
            (c.minimum or ssl.TLSVersion.TLSv1_2 for _, c in self.certs), default=ssl.TLSVersion.TLSv1_2
        )
        maxima = [c.maximum for _, c in self.certs]
        high = ssl.TLSVersion.MAXIMUM_SUPPORTED if None in maxima else max(m for m in maxima if m is not None)
        return low, high

    def context(self) -> ssl.SSLContext:
        """The listening context; its sni_callback switches to the right certificate's context."""
        if self._port is None:
            self._port = PortTls(self)
        return self._port.context()


class PortTls:
    """The TLS of one listening port. The listening context is made once; `update` swaps the
    certificates that new handshakes see, so rotation needs no new socket."""

    def __init__(self, server: ServerTls) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_alpn_protocols(ALPN)
        ctx.sni_callback = self._sni
        self._context = ctx
        self.current = server
        self.update(server)

    def update(self, server: ServerTls) -> None:
        """Use `server` for handshakes from now on (connections already open keep theirs)."""
        self.current = server
        ctx = self._context
        low, high = server.versions()
        # Lower the floor before raising the ceiling (and back) so min <= max always holds.
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = high
        ctx.minimum_version = low
        required = server.require_client_cert
        if required == {True}:
            ctx.verify_mode = ssl.CERT_REQUIRED
        elif True in required:
            ctx.verify_mode = ssl.CERT_OPTIONAL  # `refusal` enforces it for the hostnames that need it
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if True in required:
            # Session resumption would skip the client-certificate check of a new hostname.
            ctx.options |= ssl.OP_NO_TICKET
            ctx.num_tickets = 0
        else:
            ctx.options &= ~ssl.OP_NO_TICKET
            ctx.num_tickets = 2

    def context(self) -> ssl.SSLContext:
        return self._context

    def _sni(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _listening: ssl.SSLContext
    ) -> int | None:
        # Runs inside OpenSSL's handshake: it must never raise (an exception here is unraisable).
        try:
            if server_name:
                _server_names[ssl_object] = server_name
            ssl_object.context = self.current.select(server_name).context()
        except Exception:
            log.exception("TLS: choosing a certificate for SNI %r failed", server_name)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None


_server_names: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()


def server_name(ssl_object: ssl.SSLObject | None) -> str | None:
    """The SNI name a client sent in a server handshake on a `PortTls` port (None: no SNI)."""
    return _server_names.get(ssl_object) if ssl_object is not None else None


def refusal(ssl_object: ssl.SSLObject | None) -> str | None:
    """After a server handshake: why the chosen hostname refuses this client, or None.

    OpenSSL applied the port's loosest rules; this applies the chosen certificate's own: a
    client certificate when it has roots (OpenSSL has verified any certificate presented), and
    its protocol version bounds."""
    if ssl_object is None:
        return None
    ctx = ssl_object.context
    if not isinstance(ctx, _CertContext):
        return None
    if ctx.require_client_cert and not ssl_object.getpeercert(binary_form=True):
        return "client certificate required"
    if ctx.minimum is not None or ctx.maximum is not None:
        version = _NEGOTIATED.get(ssl_object.version() or "")
        if version is None:
            return f"protocol {ssl_object.version()} not allowed"
        if (ctx.minimum is not None and version < ctx.minimum) or (
            ctx.maximum is not None and version > ctx.maximum
        ):
            return f"protocol {ssl_object.version()} not allowed for this hostname"
    return None


# ------------------------------------------------------------------------------------------
# Client side


_system_context: ssl.SSLContext | None = None


def _system() -> ssl.SSLContext:
    """The system-trust context (loading the system CAs costs milliseconds: do it once)."""
    global _system_context
    if _system_context is None:
        _system_context = ssl.create_default_context()
    return _system_context


@dataclasses.dataclass(frozen=True, eq=True)
class ClientTls:
    """How to speak TLS to one backend. Hashable and compared by value: the pool keys its
    connections by it, so connections made with different specs are never shared."""

    server_hostname: str
    """SNI, and the name the certificate must carry (unless `insecure`/`insecure_host`)."""
    where: str = dataclasses.field(default="", compare=False)
    root: _Pem | None = None
    cert: _Pem | None = None
    key: _Pem | None = None
    insecure: bool = False
    insecure_host: bool = False
    subject_alt_names: tuple[str, ...] = ()
    alpn: tuple[str, ...] = ()
    _hash: int = dataclasses.field(default=0, init=False, compare=False, repr=False)
    _state: list[_Reloading] = dataclasses.field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        fields = (self.server_hostname, self.root, self.cert, self.key, self.insecure, self.insecure_host)
        object.__setattr__(self, "_hash", hash((*fields, self.subject_alt_names, self.alpn)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def custom(self) -> bool:
        """Anything beyond system trust and hostname verification."""
        return bool(
            self.root
            or self.cert
            or self.key
            or self.insecure
            or self.insecure_host
            or self.subject_alt_names
            or self.alpn
        )

    @property
    def checks_names_after_handshake(self) -> bool:
        """`peer_problem` must run on the verified certificate (the SAN list replaces OpenSSL's check)."""
        return bool(self.subject_alt_names) and not self.insecure

    def context(self) -> ssl.SSLContext:
        """The context for new connections: built once, rebuilt when its files change."""
        if not self.custom:
            return _system()
        if not self._state:
            self._state.append(
                _Reloading(self.where, [p for p in (self.root, self.cert, self.key) if p], self._build)
            )
        return self._state[0].get()

    def _build(self) -> ssl.SSLContext:
        material = _load(self.where, self.cert, self.key, self.root)
        try:
            if material.roots:
                ctx = ssl.create_default_context(cadata=material.roots.decode("ascii"))
            else:
                ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.insecure_host or self.subject_alt_names:
                ctx.check_hostname = False  # the chain is still verified; names by peer_problem
            if material.chain:
                _load_chain(ctx, material.chain, material.key)
        except ssl.SSLError as exc:
            raise _ssl_problem(self.where, exc) from exc
        except UnicodeDecodeError as exc:
            raise errors.ConfigError([f"{self.where}.root_pem: not a PEM certificate"]) from exc
        if self.alpn:
            ctx.set_alpn_protocols(list(self.alpn))
        return ctx

    def peer_problem(self, peercert: Mapping[str, Any] | None) -> str | None:
        """With `subject_alt_names`: None when a SAN (DNS or URI) equals one of them or, unless
        `insecure_host`, the certificate matches `server_hostname`; else what is wrong."""
        if not self.checks_names_after_handshake:
            return None
        sans = [(kind, value) for kind, value in (peercert or {}).get("subjectAltName", ())]
        wanted = set(self.subject_alt_names)
        for kind, value in sans:
            if kind in ("DNS", "URI") and value in wanted:
                return None
        if not self.insecure_host and _hostname_matches(self.server_hostname, sans):
            return None
        return f"certificate names do not match {self.server_hostname!r} nor the subject_alt_names list"


def _hostname_matches(hostname: str, sans: Sequence[tuple[str, str]]) -> bool:
    """RFC 6125 matching of a host against DNS / IP SANs (a wildcard only as the whole left label)."""
    host = _normalize(hostname)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for kind, value in sans:
        if ip is not None:
            if kind == "IP Address":
                try:
                    if ipaddress.ip_address(value.strip()) == ip:
                        return True
                except ValueError:
                    continue
            continue
        if kind != "DNS":
            continue
        pattern = _normalize(value)
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host:
            label, rest = host.split(".", 1)
            if label and rest == pattern[2:]:
                return True
    return False


def system(host: str) -> ClientTls:
    """System trust, SNI and verification against `host` (what `tls: true` means)."""
    found = _system_specs.get(host)
    if found is None:
        if len(_system_specs) > 4096:
            _system_specs.clear()
        found = _system_specs[host] = ClientTls(server_hostname=host)
    return found


_system_specs: dict[str, ClientTls] = {}
_h2_specs: dict[ClientTls, ClientTls] = {}


def h2(spec: ClientTls) -> ClientTls:
    """`spec` offering ALPN "h2" (for HTTP/2 backends) unless it already names protocols; one
    derived spec per original, so its context is built once."""
    if spec.alpn:
        return spec
    found = _h2_specs.get(spec)
    if found is None:
        if len(_h2_specs) > 4096:
            _h2_specs.clear()
        found = _h2_specs[spec] = dataclasses.replace(spec, alpn=("h2",))
    return found


def client_tls(msg: pb.BackendTls | None, host: str, where: str) -> ClientTls:
    """The TLS spec for a backend at `host`; None means system trust verified against `host`.
    Files and PEM are loaded and checked now: a problem is a `ConfigError` naming `where.field`."""
    if msg is None:
        return system(host)
    spec = ClientTls(
        server_hostname=msg.hostname or host,
        where=where,
        root=_pem(where, "root", msg.root_file, msg.root_pem),
        cert=_pem(where, "cert", msg.cert_file, msg.cert_pem),
        key=_pem(where, "key", msg.key_file, msg.key_pem),
        insecure=msg.insecure,
        insecure_host=msg.insecure_host,
        subject_alt_names=tuple(msg.subject_alt_names),
        alpn=tuple(msg.alpn),
    )
    if spec.custom:
        spec.context()  # load now: problems surface at config time, not on the first request
    return spec
