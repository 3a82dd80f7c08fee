"""What the Kubernetes e2e tests share: a real kube-apiserver, kubectl, waiting, the controller.

`apiserver(state_dir)` runs `hack/apiserver.sh up` with its own state directory (`down` at the
end) and yields a `Cluster` (kubectl against it), after installing the CRD directories asked
for. `controller(cluster, log_dir)` runs `agentgw-controller` against it until the context
ends. Every wait is bounded (`wait_for`); every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataplane.tests import harness

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "hack" / "apiserver.sh"
GATEWAY_API = REPO / "e2e" / "gateway-api"
CRDS = REPO / "crds"
WAIT = 30.0

BUILT = subprocess.run(["bash", str(SCRIPT), "built"], check=False).returncode == 0
"""The kube-apiserver binaries are cached: no Go build on first use."""


def timeout(seconds: float) -> pytest.MarkDecorator:
    """A module's pytest timeout: `seconds`, or an hour when the apiserver must be built first."""
    return pytest.mark.timeout(seconds if BUILT else 3600)


def script_env() -> dict[str, str]:
    """`hack/apiserver.sh env`: KUBECTL, K8S_VERSION, ..."""
    out = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: Path
    namespace: str = "default"
    """The namespace `get` and `delete` use unless told otherwise."""
    version: str = ""
    kubectl_args: tuple[str, ...] = ()
    """Extra flags for every kubectl call (e.g. a request timeout)."""

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *self.kubectl_args, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def apply(self, *docs: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), check=check)

    def get(self, kind: str, name: str, namespace: str | None = "") -> dict[str, Any]:
        """The object, or {} if it does not exist (yet). `namespace` None: cluster-scoped."""
        ns = namespace if namespace != "" else self.namespace
        flags = ["-n", ns] if ns else []
        proc = self.kubectl("get", kind, name, *flags, "-o", "json", check=False)
        out: dict[str, Any] = json.loads(proc.stdout) if proc.returncode == 0 else {}
        return out

    def delete(self, kind: str, name: str) -> None:
        self.kubectl("delete", kind, name, "-n", self.namespace, "--ignore-not-found", "--wait=false")


@contextlib.contextmanager
def apiserver(
    state_dir: Path,
    *,
    crds: Sequence[Path] = (),
    namespace: str = "default",
    kubectl_args: tuple[str, ...] = (),
) -> Iterator[Cluster]:
    """A running kube-apiserver + etcd (skips without Go and cached binaries), with `crds`
    applied and Established; stopped when the context ends."""
    if not BUILT and shutil.which("go") is None:
        pytest.skip("no Go toolchain to build kube-apiserver (and no cached binaries)")
    env = {**os.environ, "AGENTGW_APISERVER_DIR": str(state_dir)}
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=3500)
    try:
        if up.returncode != 0:
            pytest.fail(f"hack/apiserver.sh up failed ({up.returncode}):\n{up.stderr[-4000:]}")
        info = script_env()
        kubeconfig = Path(up.stdout.splitlines()[-1])
        assert kubeconfig.is_file(), up.stdout
        cluster = Cluster(
            kubeconfig, Path(info["KUBECTL"]), namespace, info.get("K8S_VERSION", ""), kubectl_args
        )
        for directory in crds:
            cluster.kubectl("apply", "--server-side", "-f", str(directory), timeout=60)
        if crds:
            cluster.kubectl(
                "wait", "--for=condition=Established", "--timeout=30s", "crd", "--all", timeout=40
            )
        if namespace != "default":
            cluster.kubectl("create", "namespace", namespace)
        yield cluster
    finally:
        down = subprocess.run(
            ["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=60
        )
        if down.returncode != 0:
            print(
                f"hack/apiserver.sh down failed ({down.returncode}): {down.stderr[-2000:]}", file=sys.stderr
            )


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class Controller:
    proc: subprocess.Popen[bytes]
    xds_port: int
    metrics_port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def controller(cluster: Cluster, log_dir: Path, *args: str) -> Iterator[Controller]:
    """`agentgw-controller` in Kubernetes mode against `cluster`, xDS and metrics on free ports,
    ready once /healthz answers; stopped by PID when the context ends."""
    log = log_dir / "controller.log"
    xds_port, metrics_port = harness.free_port(), harness.free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    flags = ["--xds-host", "127.0.0.1", "--xds-port", str(xds_port), "--metrics-port", str(metrics_port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", *flags, *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for("the controller's /healthz", lambda: http_ok(f"http://127.0.0.1:{metrics_port}/healthz"))
        yield Controller(proc, xds_port, metrics_port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
