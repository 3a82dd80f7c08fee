"""Access log: one JSON object per request, written in batches.

`record` serialises with orjson (about a microsecond) into a buffer; the buffer goes to the
output once it passes 64 KiB or every 100 ms, so a busy proxy makes a few writes a second
instead of one per request. Lines stay whole: each worker writes complete lines, and writes
below PIPE_BUF are atomic on pipes.

Fields: time, method, host, path, status, route, backend, upstream (address), duration_ms,
bytes_in, bytes_out, error, version (the client's HTTP version: "1.1", "2"), grpc_status (the
response's, for gRPC calls) — the subset of agentgateway's fields our features produce.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson

_FLUSH_BYTES = 64 * 1024
_FLUSH_SECONDS = 0.1


class AccessLog:
    def __init__(self, fd: int | None = 1, enabled: bool = True) -> None:
        self._fd = fd
        self.enabled = enabled and fd is not None
        self._buf: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def record(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        entry["time"] = time.time()
        line = orjson.dumps(entry) + b"\n"
        self._buf.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf or self._fd is None:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except BlockingIOError:
            pass  # a full non-blocking pipe drops the batch rather than stalling requests
        except OSError:
            self.enabled = False
