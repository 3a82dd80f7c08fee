"""`agentgw-proxy --validate -f FILE`: exit 0 for a good file, 1 with every problem named otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataplane.tests import harness

EXAMPLES = sorted(
    p.relative_to(harness.REPO).as_posix()
    for pattern in ("*.yaml", "*.yml")
    for p in (harness.REPO / "examples").rglob(pattern)
)


def agentgw_proxy(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script if there is one (it tests the entry point), else -m."""
    script = shutil.which("agentgw-proxy", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "dataplane"]
    return subprocess.run(
        [*command, *args], cwd=harness.REPO, capture_output=True, text=True, timeout=30, check=False
    )


GOOD = """\
binds:
- port: 8080
  listeners:
  - routes:
    - name: api
      matches: [{path: {pathPrefix: /api}}]
      backends: [{host: "127.0.0.1:9000"}]
"""

BAD = """\
binds:
- port: 8080
  listeners:
  - routes:
    - matches: [{path: {regex: "(unclosed"}}]
      backends: [{host: "127.0.0.1:9000"}]
    - name: two
      backendz: []
"""


def test_validate_accepts_a_good_file_and_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = agentgw_proxy("--validate", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: valid (3 resources)\n"


def test_validate_prints_every_problem_with_its_field_path_and_exits_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = agentgw_proxy("--validate", "-f", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: invalid configuration:"
    assert any(
        line.strip().startswith(
            "binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regular expression '(unclosed'"
        )
        for line in lines
    ), result.stderr
    assert "  binds[0].listeners[0].routes[1].backendz: unknown field" in lines
    assert "Traceback" not in result.stderr


def test_validate_reports_yaml_syntax_errors_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("binds:\n- port: 8080\n  listeners: [\n")
    result = agentgw_proxy("--validate", "-f", str(path))
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr
    assert "line" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "No such file or directory"),
        ("binary.yaml", b"\xff\xfe\x00", "not UTF-8 text"),
        ("dir.yaml", "dir", "Is a directory"),
    ],
)
def test_an_unreadable_file_exits_one_with_a_clear_message(
    tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = agentgw_proxy("--validate", "-f", str(path))
    assert result.returncode == 1
    assert f"{path}: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serving_an_invalid_file_exits_one_and_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = agentgw_proxy("-f", str(path))
    assert result.returncode == 1
    assert "binds[0].listeners[0].routes[1].backendz: unknown field" in result.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_config_validates(example: str) -> None:
    result = agentgw_proxy("--validate", "-f", example)
    assert result.returncode == 0, result.stderr
