"""Processes for end-to-end tests: `agentgw-controller --from-file` and xDS-fed proxies.

Both run as real subprocesses on 127.0.0.1 and are stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dataplane.tests import harness


class Controller:
    def __init__(self, tmp: Path, text: str) -> None:
        self.path = tmp / "fleet.yaml"
        self.xds_port = harness.free_port()
        self.metrics_port = harness.free_port()
        self.log = tmp / "controller.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write(text)

    def write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def start(self) -> Controller:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller",
                    "--from-file",
                    str(self.path),
                    "--xds-port",
                    str(self.xds_port),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                cwd=harness.REPO,
                stderr=err,
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class XdsProxy(harness.GatewayProcess):
    """A proxy with only startup settings in its file; routing comes over xDS."""

    def __init__(self, tmp: Path, xds_port: int, namespace: str = "default", gateway: str = "fleet") -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, "")
        self.xds_port = xds_port
        self.namespace = namespace
        self.gateway = gateway

    def start(self, timeout: float = 15.0) -> XdsProxy:
        env = {
            **os.environ,
            "XDS_ADDRESS": f"127.0.0.1:{self.xds_port}",
            "NAMESPACE": self.namespace,
            "GATEWAY": self.gateway,
        }
        with open(self.access_log, "wb") as out, open(self.stderr_log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dataplane", "-f", str(self.path)],
                cwd=harness.REPO,
                stdout=out,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited: {self.stderr()}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"proxy not ready: {self.stderr()}")
