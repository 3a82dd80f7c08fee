"""`--workers N`: one supervisor process and N worker processes sharing each port.

The supervisor owns the configuration source (the watched file), the admin, stats and
readiness endpoints, and the children. Workers bind every port themselves with SO_REUSEPORT,
so the kernel spreads connections across them; they receive each validated snapshot from
the supervisor over a socketpair, compile it and swap it in, exactly as a single process does.

Control channel frames: 1 type byte, 4-byte big-endian length, payload.
  supervisor -> worker: b"C" ResourceSet (apply)     b"M" (send metrics)
  worker -> supervisor: b"A" JSON problems (ack)      b"m" JSON metrics snapshot
A worker that exits unexpectedly is restarted and given the current snapshot. On SIGTERM the
supervisor turns not-ready, waits `connectionMinTerminationDeadline`, then SIGTERMs the workers
and waits for them to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from typing import Any

import orjson

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import admin, settings
from dataplane.config import compile as compiler
from dataplane.config import local, watch
from dataplane.config import store as config_store
from dataplane.telemetry import metrics

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">cI")


async def send_frame(writer: asyncio.StreamWriter, kind: bytes, payload: bytes) -> None:
    writer.write(_HEADER.pack(kind, len(payload)) + payload)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return kind, await reader.readexactly(length)


class _Child:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()

    async def request(self, kind: bytes, payload: bytes, timeout: float = 10.0) -> bytes:
        async with self.lock:
            if self.writer is None or self.reader is None:
                raise ConnectionError(f"worker {self.index} is not running")
            await send_frame(self.writer, kind, payload)
            _, reply = await asyncio.wait_for(read_frame(self.reader), timeout)
            return reply


class Supervisor:
    def __init__(self, path: str, cfg: local.LocalConfig, workers: int, log_level: str) -> None:
        self._path = path
        self._cfg = cfg
        self._count = workers
        self._log_level = log_level
        self._children = [_Child(i) for i in range(workers)]
        self.store = config_store.Store()
        self.stats = metrics.Registry()
        self._stopping = False
        self._snapshot: list[pb.Resource] = []

    async def _spawn(self, child: _Child) -> None:
        parent_sock, child_sock = socket.socketpair()
        child.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dataplane",
                "--file",
                self._path,
                "--log-level",
                self._log_level,
                "--worker-fd",
                str(child_sock.fileno()),
            ],
            pass_fds=[child_sock.fileno()],
        )
        child_sock.close()
        child.reader, child.writer = await asyncio.open_connection(sock=parent_sock)

    async def apply(self, resources: list[pb.Resource]) -> dict[str, str]:
        compiled = compiler.compile_resources(resources)
        if compiled.problems:
            return compiled.problems
        payload = pb.ResourceSet(resources=resources).SerializeToString()
        replies = await asyncio.gather(*(c.request(b"C", payload) for c in self._children), return_exceptions=True)
        problems: dict[str, str] = {}
        for child, reply in zip(self._children, replies, strict=True):
            if isinstance(reply, BaseException):
                problems[f"worker {child.index}"] = f"did not acknowledge: {reply}"
            else:
                problems.update(orjson.loads(reply))
        if not problems:
            self._snapshot = resources
            self.store.install(compiled.tables, resources)
        return problems

    async def metrics_text(self) -> str:
        replies = await asyncio.gather(*(c.request(b"M", b"") for c in self._children), return_exceptions=True)
        snaps = [orjson.loads(r) for r in replies if isinstance(r, bytes)]
        return self.stats.render(snaps)

    def is_ready(self) -> bool:
        return self.store.ready and not self._stopping

    def dump_extra(self) -> dict[str, Any]:
        return {"workers": [c.proc.pid if c.proc else None for c in self._children]}

    async def _watch_children(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for child in self._children:
                if child.proc is not None and child.proc.poll() is not None and not self._stopping:
                    log.error("worker %d exited with %s; restarting it", child.index, child.proc.returncode)
                    await self._spawn(child)
                    if self._snapshot:
                        await child.request(b"C", pb.ResourceSet(resources=self._snapshot).SerializeToString())

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for child in self._children:
            await self._spawn(child)
        source = watch.FileSource(self._path, self.apply, self.store, self.stats, self._cfg.settings)
        await source.load_initial(self._cfg)
        a = self._cfg.settings.admin
        runners = await admin.start(
            [("admin", a.admin_addr), ("stats", a.stats_addr), ("readiness", a.readiness_addr)],
            admin.Endpoints(self.store, self.metrics_text, self.is_ready, self.dump_extra),
        )
        tasks = [loop.create_task(source.run()), loop.create_task(self._watch_children())]
        await stop.wait()
        self._stopping = True
        log.info("shutting down: draining %d workers", self._count)
        drain = self._cfg.settings.drain
        await asyncio.sleep(drain.min_deadline)
        for t in tasks:
            t.cancel()
        for child in self._children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        end = loop.time() + drain.deadline + 5.0
        for child in self._children:
            while child.proc is not None and child.proc.poll() is None and loop.time() < end:
                await asyncio.sleep(0.05)
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
        for r in runners:
            await r.cleanup()
        return 0


async def run_worker(fd: int, cfg: local.LocalConfig) -> int:
    """A worker process: serve traffic, take snapshots from the supervisor, drain on SIGTERM."""
    from dataplane import runtime  # imported here: the supervisor itself never serves traffic

    worker = runtime.Worker(cfg.settings)
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def serve_control() -> None:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                stop.set()  # the supervisor is gone
                return
            if kind == b"C":
                snapshot = pb.ResourceSet.FromString(payload)
                problems = await worker.apply(list(snapshot.resources))
                await send_frame(writer, b"A", orjson.dumps(problems))
            elif kind == b"M":
                await send_frame(writer, b"m", orjson.dumps(worker.stats.snapshot(include_config=False)))

    control = loop.create_task(serve_control())
    runtime.tune_gc()
    await stop.wait()
    control.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await control
    await worker.drain(cfg.settings.drain.deadline)
    return 0
