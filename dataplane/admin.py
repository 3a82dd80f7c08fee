"""Operator endpoints, served with aiohttp (they are not on the request path).

- admin (default 127.0.0.1:15000): `/config_dump` — the effective resources as JSON with secret
  header values redacted, the config version, and reload status (last error included).
- stats (default 0.0.0.0:15020): `/metrics` and `/stats/prometheus` in Prometheus text format.
- readiness (default 0.0.0.0:15021): `/healthz/ready` — 200 once a first config is applied and
  until shutdown begins, 503 otherwise.

Addresses are "host:port" or "off". With several workers the supervisor serves these and
gathers metrics from the workers at scrape time (`metrics_text` is async for that reason).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from dataplane.config import local
from dataplane.config import store as config_store

log = logging.getLogger(__name__)

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-goog-api-key"}
)
REDACTED = "<redacted>"


SECRET_FIELDS = frozenset({"htpasswd", "certPem", "keyPem"})
"""Resource fields whose values are secret (password hashes, private keys)."""


def redact(node: Any) -> Any:
    """Blank secrets: sensitive header values set by policies, backend credentials, API keys,
    password files and private keys."""
    if isinstance(node, dict):
        if "name" in node and "value" in node and str(node["name"]).lower() in SENSITIVE_HEADERS:
            return {**node, "value": REDACTED}
        out: dict[str, Any] = {}
        for k, v in node.items():
            if (k == "auth" and isinstance(v, dict)) or k in SECRET_FIELDS:
                out[k] = REDACTED
            elif k == "apiKey" and isinstance(v, dict):
                out[k] = {
                    **redact(v),
                    "keys": [{**e, "key": REDACTED} if "key" in e else e for e in v.get("keys", [])],
                }
            else:
                out[k] = redact(v)
        return out
    if isinstance(node, list):
        return [redact(v) for v in node]
    return node


def config_dump(store: config_store.Store, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    resources = [json_format.MessageToDict(r, preserving_proto_field_name=False) for r in store.resources]
    return {
        "version": store.status.version,
        "status": dataclasses.asdict(store.status),
        "resources": redact(resources),
        **(extra or {}),
    }


@dataclasses.dataclass
class Endpoints:
    store: config_store.Store
    metrics_text: Callable[[], Awaitable[str]]
    is_ready: Callable[[], bool]
    dump_extra: Callable[[], dict[str, Any]] = dict


def _admin_app(ep: Endpoints) -> web.Application:
    async def dump(_: web.Request) -> web.Response:
        return web.json_response(config_dump(ep.store, ep.dump_extra()), dumps=_dumps)

    async def index(_: web.Request) -> web.Response:
        return web.Response(text="agentgw admin: /config_dump\n")

    app = web.Application()
    app.router.add_get("/config_dump", dump)
    app.router.add_get("/", index)
    return app


def _stats_app(ep: Endpoints) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=await ep.metrics_text(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/stats/prometheus", metrics)
    return app


def _ready_app(ep: Endpoints) -> web.Application:
    async def ready(_: web.Request) -> web.Response:
        if ep.is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app = web.Application()
    app.router.add_get("/healthz/ready", ready)
    return app


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=False)


class AddressError(Exception):
    """An endpoint could not listen on its address (in use, not local, no permission)."""


async def start(addrs: list[tuple[str, str]], ep: Endpoints) -> list[web.AppRunner]:
    """Start the (kind, "host:port") servers that are not "off"; return their runners.

    Raise AddressError naming the setting if one cannot listen (the others are stopped).
    """
    builders = {"admin": _admin_app, "stats": _stats_app, "readiness": _ready_app}
    settings_names = {"admin": "adminAddr", "stats": "statsAddr", "readiness": "readinessAddr"}
    runners: list[web.AppRunner] = []
    for kind, addr in addrs:
        if addr == "off":
            continue
        host, port = local.split_host_port(addr)
        runner = web.AppRunner(builders[kind](ep), access_log=None, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1" if host == "localhost" else host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            for r in runners:
                await r.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise AddressError(f"config.{settings_names[kind]}: cannot listen on {addr}: {reason}") from exc
        log.info("%s endpoint on http://%s", kind, addr)
    return runners
