"""`--workers N`: one supervisor process and N worker processes sharing each port.

The supervisor owns the configuration source (the watched file), the admin, stats and
readiness endpoints, and the children. Workers bind every port themselves with SO_REUSEPORT,
so the kernel spreads connections across them; they receive each validated snapshot from
the supervisor over a socketpair, compile it and swap it in, exactly as a single process does.

Control channel frames: 1 type byte, 4-byte big-endian length, payload.
  supervisor -> worker: b"S" JSON settings (first frame, no reply)
                        b"C" ResourceSet (apply)     b"M" (send metrics)
  worker -> supervisor: b"A" JSON problems (ack)      b"m" JSON metrics snapshot
Workers take their startup settings from the supervisor, never from the file: the file may
have changed (or be broken) by the time a worker starts, and every worker must run with the
settings the supervisor started with. A worker that exits unexpectedly is restarted and given
the current snapshot. On SIGTERM the supervisor turns not-ready, waits
`connectionMinTerminationDeadline`, then SIGTERMs the workers and waits for them to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import struct
import subprocess
import sys
import typing
from collections.abc import Callable
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


def settings_to_json(config: settings.Settings) -> bytes:
    return orjson.dumps(dataclasses.asdict(config))


def settings_from_json(payload: bytes) -> settings.Settings:
    def build(cls: Any, data: dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name in data:
                kind = hints[field.name]
                value = data[field.name]
                kwargs[field.name] = build(kind, value) if dataclasses.is_dataclass(kind) else value
        return cls(**kwargs)

    return typing.cast(settings.Settings, build(settings.Settings, orjson.loads(payload)))


class _Child:
    """One worker process and its control channel.

    A reader task moves every reply frame into a queue. Replies come back in request order; a
    request that gave up (timeout, cancellation) leaves its reply outstanding, and the next
    request skips that many frames, so a late reply is never taken for the answer to another
    request.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()
        self._replies: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue()
        self._outstanding = 0
        self._reading: asyncio.Task[None] | None = None

    def attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Talk to a new process over (reader, writer); the previous channel is closed."""
        self.detach()
        self.writer = writer
        replies: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue()
        self._replies = replies
        self._outstanding = 0

        async def read_replies() -> None:
            try:
                while True:
                    replies.put_nowait(await read_frame(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                replies.put_nowait(None)  # the worker is gone

        self._reading = asyncio.get_running_loop().create_task(read_replies())

    def detach(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, kind: bytes, payload: bytes, wait: float = 10.0) -> bytes:
        """Send one frame and return the payload of its reply, all within `wait` seconds.

        Raise WorkerStuck if the worker took the frame but did not answer in time, TimeoutError
        if the channel stayed busy (a restart) all along, ConnectionError if the worker is gone.
        """
        deadline = asyncio.get_running_loop().time() + wait
        async with asyncio.timeout_at(deadline):
            await self.lock.acquire()
        try:
            return await self._exchange(kind, payload, deadline)
        finally:
            self.lock.release()

    async def request_locked(self, kind: bytes, payload: bytes, wait: float = 10.0) -> bytes:
        """`request` for a caller that holds `lock` already."""
        return await self._exchange(kind, payload, asyncio.get_running_loop().time() + wait)

    async def _exchange(self, kind: bytes, payload: bytes, deadline: float) -> bytes:
        if self.writer is None:
            raise ConnectionError(f"worker {self.index} is not running")
        replies = self._replies
        try:
            async with asyncio.timeout_at(deadline):
                self._outstanding += 1  # first: once written, the frame is answered even if we give up
                await send_frame(self.writer, kind, payload)
                while True:
                    frame = await replies.get()
                    if frame is None:
                        replies.put_nowait(None)  # for whoever asks next
                        raise ConnectionError(f"worker {self.index} closed its control channel")
                    self._outstanding -= 1
                    if self._outstanding == 0:
                        return frame[1]
        except TimeoutError as exc:
            raise WorkerStuck(f"worker {self.index} did not answer {kind!r} in time") from exc


class WorkerStuck(TimeoutError):
    """A worker took a control frame but did not answer it in time."""


class Supervisor:
    def __init__(
        self,
        cfg: local.LocalConfig,
        workers: int,
        log_level: str,
        make_source: Callable[[watch.Apply, config_store.Store, metrics.Registry], Any],
    ) -> None:
        self._make_source = make_source
        self._owned: list[metrics.Counter | metrics.Histogram] = []
        self._cfg = cfg
        self._count = workers
        self._log_level = log_level
        self._children = [_Child(i) for i in range(workers)]
        self.store = config_store.Store()
        self.stats = metrics.Registry()
        self._stopping = False
        self._snapshot: list[pb.Resource] = []

    async def _spawn(self, child: _Child) -> None:
        """Start the worker process of `child` (call with `child.lock` held, or before sharing)."""
        child.detach()
        parent_sock, child_sock = socket.socketpair()
        child.proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec is quick; the object is polled
            [
                sys.executable,
                "-m",
                "dataplane",
                "--log-level",
                self._log_level,
                "--worker-fd",
                str(child_sock.fileno()),
            ],
            pass_fds=[child_sock.fileno()],
        )
        child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock)
        child.attach(reader, writer)
        await send_frame(writer, b"S", settings_to_json(self._cfg.settings))

    async def apply(
        self, resources: list[pb.Resource], compiled: compiler.Compiled | None = None
    ) -> dict[str, str]:
        if compiled is None:
            compiled = compiler.compile_resources(resources)
        if compiled.problems:
            return compiled.problems
        # The snapshot is valid (it compiled here, as it will in every worker). Record it first:
        # a worker restarted from now on is given this one, whatever happens to the others.
        previous, self._snapshot = self._snapshot, resources
        payload = pb.ResourceSet(resources=resources).SerializeToString()
        replies = await asyncio.gather(
            *(c.request(b"C", payload) for c in self._children), return_exceptions=True
        )
        problems: dict[str, str] = {}
        for child, reply in zip(self._children, replies, strict=True):
            if isinstance(reply, Exception):
                # Not a problem of the config: a dead or stuck worker is (killed and) restarted,
                # and a restarted worker is given the current snapshot.
                log.error("worker %d did not acknowledge the config (%r)", child.index, reply)
                if isinstance(reply, WorkerStuck) and child.proc is not None and child.proc.poll() is None:
                    log.error("killing worker %d: it stopped answering; it will be restarted", child.index)
                    child.proc.kill()
            elif isinstance(reply, bytes):
                problems.update(orjson.loads(reply))
            else:
                raise reply
        if problems:
            self._snapshot = previous
        else:
            self.store.install(compiled.tables, resources)
        return problems

    async def metrics_text(self) -> str:
        replies = await asyncio.gather(
            *(c.request(b"M", b"", wait=5.0) for c in self._children), return_exceptions=True
        )
        snaps = [orjson.loads(r) for r in replies if isinstance(r, bytes)]
        return self.stats.render(snaps, owned=self._owned)

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
                    try:
                        await self._restart(child)
                    except Exception as exc:
                        # keep watching: the next round sees the failed worker and tries again
                        log.error("worker %d did not start: %r", child.index, exc)

    async def _restart(self, child: _Child) -> None:
        async with child.lock:  # no apply or scrape talks to the child between spawn and snapshot
            await self._spawn(child)
            if self._snapshot:
                payload = pb.ResourceSet(resources=self._snapshot).SerializeToString()
                problems = orjson.loads(await child.request_locked(b"C", payload))
                if problems:
                    log.error("restarted worker %d rejected the current config: %s", child.index, problems)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal() -> None:
            self._stopping = True  # now, so no worker that exits from here on is restarted
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        # Operator endpoints first: a taken address fails before any worker starts, and
        # readiness answers 503 until the first config is applied.
        a = self._cfg.settings.admin
        runners = await admin.start(
            [("admin", a.admin_addr), ("stats", a.stats_addr), ("readiness", a.readiness_addr)],
            admin.Endpoints(self.store, self.metrics_text, self.is_ready, self.dump_extra),
        )
        for child in self._children:
            await self._spawn(child)
        source = self._make_source(self.apply, self.store, self.stats)
        self._owned = source.owned
        tasks = [loop.create_task(source.run()), loop.create_task(self._watch_children())]
        await stop.wait()
        log.info("shutting down: draining %d workers", self._count)
        drain = self._cfg.settings.drain
        await asyncio.sleep(drain.min_deadline)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for child in self._children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        end = loop.time() + drain.deadline + 5.0
        for child in self._children:
            while child.proc is not None and child.proc.poll() is None and loop.time() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if child.proc is not None and child.proc.poll() is None:
                log.error("worker %d did not drain in time; killing it", child.index)
                child.proc.kill()
                child.proc.wait()
            child.detach()
        for r in runners:
            await r.cleanup()
        return 0


async def run_worker(fd: int) -> int:
    """A worker process: serve traffic, take snapshots from the supervisor, drain on SIGTERM."""
    from dataplane import runtime  # imported here: the supervisor itself never serves traffic

    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        kind, payload = await read_frame(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return 1  # the supervisor is gone before we started
    if kind != b"S":
        log.error("expected the settings frame from the supervisor, got %r", kind)
        return 1
    config = settings_from_json(payload)
    worker = runtime.Worker(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Ctrl-C in a terminal reaches the whole process group: the supervisor handles it and
    # drains the workers in order (after connectionMinTerminationDeadline), so workers ignore it.
    loop.add_signal_handler(signal.SIGINT, lambda: None)

    async def serve_control() -> None:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                stop.set()  # the supervisor is gone
                return
            if kind == b"C":
                try:
                    snapshot = pb.ResourceSet.FromString(payload)
                    problems = await worker.apply(list(snapshot.resources))
                except Exception as exc:  # keep serving the current tables and answering
                    log.exception("could not apply the config from the supervisor")
                    problems = {"worker": f"could not apply the config: {exc!r}"}
                await send_frame(writer, b"A", orjson.dumps(problems))
            elif kind == b"M":
                await send_frame(writer, b"m", orjson.dumps(worker.stats.snapshot(include_config=False)))

    control = loop.create_task(serve_control())
    runtime.tune_gc()
    await stop.wait()
    await worker.drain(config.drain.deadline)  # the control channel still answers scrapes meanwhile
    control.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await control
    writer.close()
    return 0
