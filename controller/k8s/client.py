"""A small async client for the Kubernetes API server: GET, LIST, POST, PATCH with aiohttp.

In: credentials as a `kopf.ConnectionInfo` from `credentials()`: the in-cluster service account
when its token is mounted, else the kubeconfig (KUBECONFIG, or ~/.kube/config). The same
credentials log kopf in (controller.k8s.operator's login handler), so watches and writes use one
identity. Out: parsed JSON bodies; `ApiError` carries the HTTP status and the API's message.

Used by the status writer (controller.k8s.status), the GatewayClass bootstrap and the startup list
(controller.reconcile). kopf's own API helpers are internal, hence this client.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: Json | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body or {}


def credentials() -> kopf.ConnectionInfo:
    """Service account if mounted, else kubeconfig; `kopf.LoginError` if neither exists."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig (set KUBECONFIG)")
    return info


def _pem(data: str | bytes) -> bytes:
    """kubeconfig `*-data` fields are base64 of PEM; accept raw PEM too."""
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    ctx = ssl.create_default_context()
    if info.ca_path:
        ctx.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        ctx.load_verify_locations(cadata=_pem(info.ca_data).decode())
    cert = info.certificate_path
    key = info.private_key_path
    if info.certificate_data or info.private_key_data:
        # ssl loads client certificates from files only: write them to a private temp dir.
        tmp = tempfile.mkdtemp(prefix="agentgw-kube-")
        if info.certificate_data:
            cert = os.path.join(tmp, "cert.pem")
            _write_private(cert, _pem(info.certificate_data))
        if info.private_key_data:
            key = os.path.join(tmp, "key.pem")
            _write_private(key, _pem(info.private_key_data))
    if cert:
        ctx.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return ctx


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Client:
    """One aiohttp session against one API server. `close()` when done."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 10.0) -> None:
        self.server = info.server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "agentgw-controller"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=ssl_context(info)),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Json:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._session.request(
            method, self.server + path, data=data, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            try:
                parsed: Json = json.loads(text) if text else {}
            except ValueError:
                parsed = {"message": text}
            if resp.status >= 400:
                raise ApiError(resp.status, str(parsed.get("message", text)), parsed)
            return parsed

    async def get(self, path: str) -> Json:
        return await self.request("GET", path)

    async def create(self, path: str, body: Mapping[str, Any]) -> Json:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> Json:
        return await self.request("PATCH", path, body, "application/merge-patch+json")

    async def apply(self, path: str, body: Mapping[str, Any], field_manager: str) -> Json:
        """Server-side apply (for the deployer's objects)."""
        return await self.request(
            "PATCH",
            path,
            body,
            "application/apply-patch+yaml",
            params={"fieldManager": field_manager, "force": "true"},
        )
