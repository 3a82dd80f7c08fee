"""TLS material from Secrets and ConfigMaps: listener certificates and backend TLS settings.

In: a Gateway listener's `tls` stanza (or a `backend.tls` policy) and the `Index`. Out:

- `listener_certificate`: the `ListenerTls` (certificate and key PEM) an HTTPS listener serves,
  and the listener's `ResolvedRefs` problem, as Gateway API v1.6 words it: a certificateRef to
  another namespace without a ReferenceGrant (from Gateways, to Secrets) is `RefNotPermitted`;
  a ref of another kind than core Secret, a missing Secret, a Secret whose type is not
  `kubernetes.io/tls`, or whose `tls.crt`/`tls.key` are missing, not PEM, or do not belong
  together is `InvalidCertificateRef`. The first usable ref is served (agentgw serves one
  certificate per listener); a listener with none is not programmed. `tls.mode: Passthrough` is
  not supported (`Accepted=False/UnsupportedValue`).
- `backend_tls`: the `BackendTls` of a `backend.tls` policy: CA bundle (`ca.crt` of a ConfigMap or
  Secret), client certificate (`tls.crt`/`tls.key`, and `ca.crt` when no CA ref is given), SNI,
  subject alt names, verification switches and ALPN. A reference that does not resolve is left
  out and reported (`Unresolved`): TLS stays on, verified against the system roots and without a
  client certificate, so a broken reference fails closed rather than falling back to plaintext.

Messages name objects and keys, never their contents. Pure (the `cryptography` package parses
PEM in memory); used by `gateways` (listeners), `policyspec` and `agwbackends` (backend TLS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from api.gateway import conditions
from api.gateway import v1 as gw
from api.proto.agentgw.v1 import resource_pb2 as pb
from api.v1alpha1 import backendpolicy
from controller.translate import index, refs, secretdata, status

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"

INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
UNSUPPORTED_VALUE = "UnsupportedValue"


# --------------------------------------------------------------------------------------------
# Listener certificates


@dataclasses.dataclass(frozen=True)
class Certificate:
    """What a listener's `tls` resolves to."""

    tls: pb.ListenerTls | None
    """The certificate served; None when no ref is usable."""
    problem: status.Problem | None = None
    """For the listener's `ResolvedRefs` condition."""
    unsupported: status.Problem | None = None
    """For the listener's `Accepted` condition (a TLS mode agentgw cannot serve)."""


def listener_certificate(spec: gw.Listener, gateway_namespace: str, idx: index.Index) -> Certificate:
    """The certificate of an HTTPS listener (see the module docstring)."""
    tls: Mapping[str, Any] = spec.tls or {}
    mode = str(tls.get("mode") or "Terminate")
    if mode != "Terminate":
        message = f"tls.mode {mode} is not supported on {spec.protocol} listeners (only Terminate)"
        return Certificate(None, unsupported=status.Problem(UNSUPPORTED_VALUE, message))
    found: pb.ListenerTls | None = None
    problems: list[status.Problem] = []
    for i, ref in enumerate(tls.get("certificateRefs") or ()):
        cert, problem = _certificate_ref(ref, f"tls.certificateRefs[{i}]", gateway_namespace, idx)
        if problem is not None:
            problems.append(problem)
        elif found is None:
            found = cert
    if found is None and not problems:
        problems.append(status.Problem(INVALID_CERTIFICATE_REF, "tls.certificateRefs: no certificate"))
    problem = None
    if problems:
        problem = status.Problem(problems[0].reason, "; ".join(p.message for p in problems))
    return Certificate(found, problem)


def _certificate_ref(
    ref: Mapping[str, Any], where: str, gateway_namespace: str, idx: index.Index
) -> tuple[pb.ListenerTls | None, status.Problem | None]:
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Secret")
    name = str(ref.get("name") or "")
    namespace = str(ref.get("namespace") or gateway_namespace)
    if (group, kind) != ("", "Secret"):
        shown = f"{group}/{kind}" if group else kind
        return None, _invalid(f"{where}: unsupported kind {shown} (only core Secrets)")
    reference = refs.Reference(gw.GROUP, "Gateway", gateway_namespace, "", "Secret", namespace, name)
    if not idx.grants.allows(reference):
        message = (
            f"{where}: Secret {namespace}/{name} is not accessible to Gateways in namespace "
            f'"{gateway_namespace}" (missing a ReferenceGrant?)'
        )
        return None, status.Problem(conditions.REF_NOT_PERMITTED, message)
    secret = idx.secrets.get((namespace, name))
    if secret is None:
        return None, _invalid(f"{where}: Secret {namespace}/{name} not found")
    if secretdata.secret_type(secret) != secretdata.TLS_TYPE:
        return None, _invalid(
            f"{where}: Secret {namespace}/{name} is of type {secretdata.secret_type(secret)}, "
            f"not {secretdata.TLS_TYPE}"
        )
    try:
        cert_pem, key_pem = key_pair(secret)
    except Invalid as exc:
        return None, _invalid(f"{where}: {exc}")
    return pb.ListenerTls(cert_pem=cert_pem, key_pem=key_pem), None


def _invalid(message: str) -> status.Problem:
    return status.Problem(INVALID_CERTIFICATE_REF, message)


class Invalid(Exception):
    """A Secret does not hold what it should; the message names it and the key, not the value."""


def key_pair(secret: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """`tls.crt` and `tls.key` of a Secret, checked: PEM, a certificate chain, a private key that
    belongs to the first certificate."""
    what = f"Secret {index.namespace_of(secret)}/{index.name_of(secret)}"
    try:
        cert_pem, key_pem = secretdata.data(secret, CERT_KEY), secretdata.data(secret, KEY_KEY)
    except secretdata.Unreadable as exc:
        raise Invalid(str(exc)) from exc
    if cert_pem is None or key_pem is None:
        raise Invalid(f"{what} has no {CERT_KEY if cert_pem is None else KEY_KEY}")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise Invalid(f"{what}: {CERT_KEY} is not a PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{what}: {KEY_KEY} is not an unencrypted PEM private key") from exc
    if _public(chain[0].public_key()) != _public(key.public_key()):
        raise Invalid(f"{what}: {KEY_KEY} does not belong to the certificate in {CERT_KEY}")
    return cert_pem, key_pem


def _public(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ca_bundle(obj: Mapping[str, Any]) -> bytes:
    """The `ca.crt` of a ConfigMap or Secret, checked to hold PEM certificates."""
    what = f"{obj.get('kind', 'Secret')} {index.namespace_of(obj)}/{index.name_of(obj)}"
    try:
        pem = secretdata.data(obj, CA_KEY)
    except secretdata.Unreadable as exc:
        raise Invalid(str(exc)) from exc
    if pem is None:
        raise Invalid(f"{what} has no {CA_KEY}")
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise Invalid(f"{what}: {CA_KEY} is not a PEM certificate bundle") from exc
    return pem


# --------------------------------------------------------------------------------------------
# Backend TLS


@dataclasses.dataclass(frozen=True)
class BackendTls:
    tls: pb.BackendTls
    unresolved: tuple[str, ...] = ()
    """References that did not resolve (left out: TLS stays on and fails closed)."""


def backend_tls(namespace: str, spec: backendpolicy.BackendTLS, where: str, idx: index.Index) -> BackendTls:
    """The proxy's BackendTls for a `tls` backend policy of an object in `namespace`."""
    out = pb.BackendTls(
        hostname=spec.sni or "",
        insecure=spec.insecure_skip_verify == "All",
        insecure_host=spec.insecure_skip_verify == "Hostname",
        subject_alt_names=spec.verify_subject_alt_names or (),
        alpn=spec.alpn_protocols or (),
    )
    unresolved: list[str] = []
    client_ca: bytes | None = None
    for ref in spec.mtls_certificate_ref or ():
        if ref.group or (ref.kind and ref.kind != "Secret"):
            unresolved.append(
                f"{where}.mtlsCertificateRef: credential kind {ref.group}/{ref.kind} is not supported"
            )
            continue
        secret = idx.secrets.get((namespace, ref.name))
        if secret is None:
            unresolved.append(f"{where}.mtlsCertificateRef: Secret {namespace}/{ref.name} not found")
            continue
        try:
            out.cert_pem, out.key_pem = key_pair(secret)
            if secretdata.data(secret, CA_KEY) is not None:
                client_ca = ca_bundle(secret)
        except (Invalid, secretdata.Unreadable) as exc:
            unresolved.append(f"{where}.mtlsCertificateRef: {exc}")
    for ca_ref in spec.ca_certificate_refs or ():
        source = idx.config_maps if ca_ref.kind == "ConfigMap" else idx.secrets
        obj = source.get((namespace, ca_ref.name))
        if obj is None:
            unresolved.append(f"{where}.caCertificateRefs: {ca_ref.kind} {namespace}/{ca_ref.name} not found")
            continue
        try:
            out.root_pem = ca_bundle(obj)
        except Invalid as exc:
            unresolved.append(f"{where}.caCertificateRefs: {exc}")
    if not spec.ca_certificate_refs and client_ca is not None:
        out.root_pem = client_ca
    return BackendTls(out, tuple(unresolved))
