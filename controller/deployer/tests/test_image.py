"""The Dockerfile builds the image the chart and the deployer expect (checked without building:
no container runtime on the CI machine)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from controller.deployer import settings

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_the_image_runs_as_the_uid_the_chart_and_the_deployer_set() -> None:
    values = yaml.safe_load((REPO / "charts/agentgw/values.yaml").read_text())
    uid = int(re.search(r"^USER (\d+)$", DOCKERFILE, re.M).group(1))  # type: ignore[union-attr]
    assert uid == settings.DeployerSettings().run_as_user == values["podSecurityContext"]["runAsUser"]


def test_the_image_installs_every_package_with_the_pinned_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        name = package.rstrip("*")
        assert f"COPY {name} ./{name}" in DOCKERFILE
    assert "-c requirements.lock ." in DOCKERFILE
    assert set(project["project"]["scripts"]) == {"agentgw-proxy", "agentgw-controller"}


def test_the_image_compiles_the_request_path_itself_and_never_copies_a_local_build() -> None:
    assert "hack/accel.py build" in DOCKERFILE
    assert "accel.STATE == 'compiled'" in DOCKERFILE
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"**/*.so", "dataplane/_native.json", "build"} <= set(ignored)
