"""ByteStream: body chunks pushed by a protocol callback and pulled by a coroutine.

Both directions of the proxy use it: the downstream server feeds request bodies, the upstream
connection feeds response bodies. When more than `high_water` bytes wait, the producing
transport stops reading; it resumes once the consumer has taken the buffer below `low_water`.
Reads that find data ready return without suspending, so a small body costs no loop round trip.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol


class Readable(Protocol):
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class ByteStream:
    __slots__ = (
        "_chunks",
        "_eof",
        "_exc",
        "_high",
        "_low",
        "_paused",
        "_size",
        "_source",
        "_waiter",
        "received",
    )

    def __init__(self, source: Readable | None, high_water: int = 256 * 1024) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._source = source
        self._paused = False
        self._high = high_water
        self._low = high_water // 4
        self.received = 0
        """Total bytes fed so far (for access logs and limits)."""

    # producer side (protocol callbacks) ---------------------------------------------------
    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self.received += len(data)
        self._wake()
        if self._size > self._high and not self._paused and self._source is not None:
            self._paused = True
            self._source.pause_reading()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        if not self._eof:
            self._exc = exc
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # consumer side --------------------------------------------------------------------------
    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    @property
    def ready(self) -> bool:
        """A `read` would return without waiting."""
        return bool(self._chunks) or self._eof or self._exc is not None

    @property
    def complete(self) -> bool:
        """The producer delivered the whole body (it may still sit in the buffer)."""
        return self._eof

    async def read(self) -> bytes:
        """Next chunk, or b"" at the end; raises the producer's error if it failed."""
        while not self._chunks:
            if self._eof:
                return b""
            if self._exc is not None:
                raise self._exc
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= self._low and self._source is not None:
            self._paused = False
            self._source.resume_reading()
        return chunk

    async def read_upto(self, limit: int) -> tuple[bytes, bool]:
        """Buffer up to `limit` bytes; return (data, True) if that was the whole body.

        When the body is larger, the returned prefix is removed from the stream and the rest
        can still be read with `read()`.
        """
        parts: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = await self.read()
            if not chunk:
                return b"".join(parts), True
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts), False

    def detach_source(self) -> None:
        """Stop flow control against the producer (the stream is being abandoned)."""
        if self._paused and self._source is not None:
            self._source.resume_reading()
        self._paused = False
        self._source = None


EMPTY = ByteStream(None)
EMPTY.feed_eof()
