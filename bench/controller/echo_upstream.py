"""Upstream for bench/controller/latency.py: aiohttp on 127.0.0.1:PORT, 200 "echo <path>" to any GET."""

from __future__ import annotations

import sys

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    return web.Response(text=f"echo {request.path}")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
