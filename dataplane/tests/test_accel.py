"""The compiled request path (dataplane/accel.py): used only when it matches the sources."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from dataplane import accel

_SUFFIX = accel.extension("x").name[1:]  # ".cpython-311-x86_64-linux-gnu.so"


def _fake_tree(root: pathlib.Path, built: bool = True) -> None:
    """Sources, extensions and a manifest laid out like a built checkout (the .so are empty)."""
    digests = {}
    for module in accel.MODULES:
        src = root / (module.replace(".", "/") + ".py")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n")
        digests[module] = hashlib.sha256(src.read_bytes()).hexdigest()
        if built:
            src.with_name(src.stem + _SUFFIX).write_bytes(b"")
    if built:
        (root / "dataplane" / ("_native__mypyc" + _SUFFIX)).write_bytes(b"")
        (root / "dataplane" / "_native.json").write_text(json.dumps(digests))


@pytest.fixture
def tree(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setattr(accel, "ROOT", tmp_path)
    monkeypatch.setattr(accel, "MANIFEST", tmp_path / "dataplane" / "_native.json")
    return tmp_path


def test_a_built_tree_whose_sources_match_the_manifest_has_no_problem(tree: pathlib.Path) -> None:
    _fake_tree(tree)
    assert accel.problem() is None


def test_an_unbuilt_tree_says_how_to_build(tree: pathlib.Path) -> None:
    _fake_tree(tree, built=False)
    assert accel.problem() == "not built; run `make accel`"


def test_a_source_edited_after_compiling_is_named_as_stale(tree: pathlib.Path) -> None:
    _fake_tree(tree)
    (tree / "dataplane" / "proxy.py").write_text("# edited\n")
    problem = accel.problem()
    assert problem is not None and "dataplane.proxy changed after compiling" in problem


def test_an_extension_of_a_module_no_longer_compiled_is_reported(tree: pathlib.Path) -> None:
    _fake_tree(tree)
    (tree / "dataplane" / ("tables" + _SUFFIX)).write_bytes(b"")
    problem = accel.problem()
    assert problem is not None and "dataplane/tables" in problem and "not in accel.MODULES" in problem


def test_a_missing_shared_library_is_reported(tree: pathlib.Path) -> None:
    _fake_tree(tree)
    (tree / "dataplane" / ("_native__mypyc" + _SUFFIX)).unlink()
    problem = accel.problem()
    assert problem is not None and "dataplane._native__mypyc" in problem


def _loaded(root: pathlib.Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    """(accel.STATE, the file dataplane.proxy was loaded from) in a fresh process over `root`."""
    code = "from dataplane import accel, proxy; print(accel.STATE); print(proxy.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    return out[0], out[1]


@pytest.fixture
def built_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of this checkout's api/ and dataplane/, with the extensions if they are built."""
    if accel.problem() is not None:
        pytest.skip(f"the compiled request path is not built here: {accel.problem()}")
    for package in ("api", "dataplane"):
        shutil.copytree(
            accel.ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "tests"),
            copy_function=shutil.copy,
        )
    return tmp_path


def test_a_process_runs_the_compiled_modules_when_they_match_the_sources(built_copy: pathlib.Path) -> None:
    state, proxy_file = _loaded(built_copy)
    assert state == "compiled"
    assert proxy_file.endswith(_SUFFIX)


def test_an_edited_source_makes_every_hot_module_load_from_source(built_copy: pathlib.Path) -> None:
    metrics = built_copy / "dataplane" / "telemetry" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n# edited\n")
    state, proxy_file = _loaded(built_copy)
    assert state.startswith("pure Python (dataplane.telemetry.metrics changed after compiling")
    assert proxy_file.endswith("proxy.py")


def test_agentgw_pure_runs_the_sources(built_copy: pathlib.Path) -> None:
    state, proxy_file = _loaded(built_copy, {"AGENTGW_PURE": "1"})
    assert state == "pure Python (AGENTGW_PURE=1)"
    assert proxy_file.endswith("proxy.py")


def test_without_a_c_compiler_the_build_says_so_and_leaves_the_sources_in_charge(
    tree: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_tree(tree, built=False)
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    assert accel.build() == 0
    assert "no C compiler" in capsys.readouterr().err
    assert accel.problem() == "not built; run `make accel`"
