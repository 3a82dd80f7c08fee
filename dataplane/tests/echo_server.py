"""An echo backend for integration tests: it answers every request with what it received.

In: any HTTP request (any method, any path). Out: status 200 and a JSON body shaped like the
Gateway API conformance backend (echo-basic):

    {"path": "/a?b=c", "host": "example.com", "method": "GET",
     "headers": {"x-name": ["v1", "v2"]}, "backend": "<name>", "body_len": 0}

`path` is the raw request target, with its query and without decoding. Header names are lower-cased.
Requests can steer the answer with headers:

    x-echo-status: 503            answer with this status instead of 200
    x-echo-delay-ms: 250          wait this long before answering
    x-echo-set-header: A:1,B:2    set these response headers (echo-basic's X-Echo-Set-Header);
                                  a name given twice gets its values joined with ","

Used by dataplane integration tests (`await echo_server.start("infra-backend-v1")`), or on its own:
`python -m dataplane.tests.echo_server --name v1 --port 3000`.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import typedefs, web

_NO_BODY = {204, 304}


def _set_headers(spec: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in ",".join(spec).split(","):
        name, sep, value = item.strip().partition(":")
        if not sep or not name:
            continue
        out[name] = f"{out[name]},{value.strip()}" if name in out else value
    return out


def _handler(name: str) -> typedefs.Handler:
    async def echo(request: web.Request) -> web.StreamResponse:
        delay = request.headers.get("x-echo-delay-ms")
        status_text = request.headers.get("x-echo-status", "200")
        if not status_text.isdigit() or not 100 <= int(status_text) <= 599:
            return web.json_response({"error": f"bad x-echo-status {status_text!r}"}, status=400)
        if delay is not None:
            if not delay.isdigit():
                return web.json_response({"error": f"bad x-echo-delay-ms {delay!r}"}, status=400)
            await asyncio.sleep(int(delay) / 1000)
        body_len = 0
        async for chunk in request.content.iter_any():
            body_len += len(chunk)
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key.lower(), []).append(value)
        status = int(status_text)
        extra = _set_headers(request.headers.getall("x-echo-set-header", []))
        if status in _NO_BODY or status < 200:
            return web.Response(status=status, headers=extra)
        payload = {
            "path": request.raw_path,
            "host": request.host,
            "method": request.method,
            "headers": headers,
            "backend": name,
            "body_len": body_len,
        }
        response = web.json_response(payload, status=status)
        response.headers.extend(extra)
        return response

    return echo


def make_app(name: str) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _handler(name))
    return app


async def start(name: str, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve an echo backend named `name`; return its runner (`await runner.cleanup()` stops it) and port."""
    runner = web.AppRunner(make_app(name), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, int(bound)


async def _serve_forever(name: str, host: str, port: int) -> None:
    runner, bound = await start(name, host, port)
    print(f"echo backend {name!r} listening on {host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Echo backend for agentgw tests.")
    parser.add_argument("--name", required=True, help="backend name reported in every answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_forever(args.name, args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
