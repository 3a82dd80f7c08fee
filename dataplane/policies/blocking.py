"""Runtime: a small thread pool for the few policy checks that block (bcrypt verification).

`ctx.services.client("blocking", None)` returns the worker's `Blocking`; a pure policy step
returns `blocking.run(fn, *args)` as its awaitable so the event loop keeps serving while the
CPU-bound call runs. The pool is small on purpose (two threads): it bounds how much CPU
password guessing can take from traffic. `factory` is what the worker registers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent import futures
from typing import Any, TypeVar

T = TypeVar("T")

WORKERS = 2


class Blocking:
    """Runs blocking calls on a bounded thread pool."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agentgw-blocking")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Drop queued calls and wait for the running ones (at most one bcrypt check each)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def factory(key: Hashable) -> Blocking:
    """The services factory for the kind "blocking" (the key is ignored; use None)."""
    return Blocking()
