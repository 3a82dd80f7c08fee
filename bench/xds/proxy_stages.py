"""`agentgw-proxy` with timing hooks on the xDS path: where does a pushed change spend its time?

    BENCH_XDS_STAGES_FILE=stages.jsonl [BENCH_XDS_CPROFILE=proxy.pstats] \
        python bench/xds/proxy_stages.py -f settings.yaml      (plus XDS_ADDRESS/NAMESPACE/GATEWAY)

Runs `dataplane.__main__.main` unchanged, after wrapping (in this process only; no source file
is modified):

- `ads_pb2.DeltaDiscoveryResponse.FromString` as the xDS client sees it: gRPC's deserializer;
- `XdsClient.handle`: one response, from the client's point of view;
- `xds.client.evaluate`: decode + merge + compile the candidate set (+ recompile when problems);
- `config.compile.compile_resources`: each full compile, attributed to evaluate or apply;
- `runtime.Worker.apply` / `Worker.install`: the worker's own compile, then the table swap and
  bind sync.

One JSON line per response goes to $BENCH_XDS_STAGES_FILE, with `time.monotonic()` stamps
(CLOCK_MONOTONIC is system-wide on Linux, so the benchmark process can line them up with its own
publish times). With $BENCH_XDS_CPROFILE the whole proxy also runs under cProfile and the stats
are dumped there when it exits (SIGTERM makes it exit normally).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from api.proto.xds import ads_pb2  # noqa: E402
from dataplane import runtime  # noqa: E402
from dataplane.config import compile as compiler  # noqa: E402
from dataplane.xds import client  # noqa: E402

OUT = os.environ.get("BENCH_XDS_STAGES_FILE")
_current: dict[str, Any] = {}
_phase = ["idle"]
_last_deserialize: list[tuple[float, float, int]] = []


def _emit(record: dict[str, Any]) -> None:
    if OUT:
        with open(OUT, "a") as f:
            f.write(json.dumps(record) + "\n")


class _TimedResponse:
    """Stands in for ads_pb2.DeltaDiscoveryResponse inside dataplane.xds.client."""

    def __getattr__(self, name: str) -> Any:
        return getattr(ads_pb2.DeltaDiscoveryResponse, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return ads_pb2.DeltaDiscoveryResponse(*args, **kwargs)

    @staticmethod
    def FromString(data: bytes) -> ads_pb2.DeltaDiscoveryResponse:
        t0 = time.monotonic()
        msg = ads_pb2.DeltaDiscoveryResponse.FromString(data)
        _last_deserialize.append((t0, time.monotonic(), len(data)))
        return msg


class _AdsShim:
    DeltaDiscoveryResponse = _TimedResponse()

    def __getattr__(self, name: str) -> Any:
        return getattr(ads_pb2, name)


def _install_hooks() -> None:
    client.ads_pb2 = _AdsShim()  # type: ignore[assignment]

    orig_compile = compiler.compile_resources

    @functools.wraps(orig_compile)
    def compile_resources(resources: Any) -> Any:
        t0 = time.monotonic()
        try:
            return orig_compile(resources)
        finally:
            if _current:
                _current.setdefault(f"compile_{_phase[0]}_s", []).append(time.monotonic() - t0)

    compiler.compile_resources = compile_resources  # type: ignore[assignment]

    orig_evaluate = client.evaluate

    @functools.wraps(orig_evaluate)
    def evaluate(*args: Any, **kwargs: Any) -> Any:
        _phase[0] = "evaluate"
        t0 = time.monotonic()
        try:
            return orig_evaluate(*args, **kwargs)
        finally:
            _current["evaluate_s"] = time.monotonic() - t0
            _phase[0] = "idle"

    client.evaluate = evaluate  # type: ignore[assignment]

    orig_apply = runtime.Worker.apply

    async def apply(self: runtime.Worker, resources: Any, compiled: Any = None) -> Any:
        _phase[0] = "apply"
        t0 = time.monotonic()
        try:
            return await orig_apply(self, resources, compiled)
        finally:
            _current["apply_s"] = time.monotonic() - t0
            _current["applied_at"] = time.monotonic()
            _phase[0] = "idle"

    runtime.Worker.apply = apply  # type: ignore[method-assign]

    orig_install = runtime.Worker.install

    async def install(self: runtime.Worker, compiled: Any, resources: Any) -> Any:
        t0 = time.monotonic()
        try:
            return await orig_install(self, compiled, resources)
        finally:
            _current["install_s"] = time.monotonic() - t0

    runtime.Worker.install = install  # type: ignore[method-assign]

    orig_handle = client.XdsClient.handle

    async def handle(self: client.XdsClient, response: Any) -> Any:
        _current.clear()
        _current["received_at"] = time.monotonic()
        if _last_deserialize:
            t0, t1, size = _last_deserialize.pop()
            _last_deserialize.clear()
            _current["deserialize_s"] = t1 - t0
            _current["deserialized_at"] = t1
            _current["bytes"] = size
        _current["nonce"] = response.nonce
        _current["resources"] = len(response.resources)
        _current["removed"] = len(response.removed_resources)
        try:
            return await orig_handle(self, response)
        finally:
            _current["handled_at"] = time.monotonic()
            _current["handle_s"] = _current["handled_at"] - _current["received_at"]
            _emit(dict(_current))
            _current.clear()

    client.XdsClient.handle = handle  # type: ignore[method-assign]


def main() -> int:
    _install_hooks()
    from dataplane.__main__ import main as proxy_main

    profile_to = os.environ.get("BENCH_XDS_CPROFILE")
    if not profile_to:
        return proxy_main(sys.argv[1:])
    import cProfile

    prof = cProfile.Profile()
    try:
        return prof.runcall(proxy_main, sys.argv[1:])
    finally:
        prof.dump_stats(profile_to)


if __name__ == "__main__":
    sys.exit(main())
