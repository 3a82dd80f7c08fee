"""Compiled request path: the hot modules built as C extensions with mypyc, and a safe fallback.

The modules in `MODULES` carry every plain proxied request (parsing, routing, relaying,
metrics, the access log). `make install` compiles them with mypyc (`python hack/accel.py
build`), which turns their type annotations into native classes and calls: the proxy's own CPU
per request drops by about a quarter (bench/http/path_micro.py, docs/benchmarks.md). The
extensions sit next to the sources, where Python prefers them over the `.py` files.

Compiled and pure modules must not mix: a compiled module calls its compiled neighbours'
classes natively and would reject a pure instance. So `install` (run by `dataplane/__init__`
before any of them is imported) loads all of them from source when any extension is missing,
when a source differs from the one compiled (an edited file that was not rebuilt: `build`
records each source's SHA-256 in `dataplane/_native.json`), or when `AGENTGW_PURE=1`. `STATE`
says which happened; the proxy logs it at start-up.

    python hack/accel.py build   # compile what is stale (no-op when up to date); `make accel`
    python hack/accel.py clean   # remove the extensions: pure Python everywhere
    python hack/accel.py status  # compiled, or why not
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import types
from collections.abc import Sequence

MODULES = (
    "dataplane.server.http1",
    "dataplane.server.streams",
    "dataplane.backends.http",
    "dataplane.proxy",
    "dataplane.telemetry.accesslog",
    "dataplane.telemetry.metrics",
)
"""Compiled together: mypyc links them into one shared library, `dataplane/_native__mypyc*.so`."""

GROUP = "dataplane._native"
"""mypyc's group name: its shared library is the module `dataplane._native__mypyc`, inside the
package, so a wheel built after `build` carries it (package data `*.so`)."""

ROOT = pathlib.Path(__file__).resolve().parent.parent
"""The directory that holds the `dataplane` package."""

_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"

STATE = "pure Python (not installed yet)"
"""How the hot modules are loaded in this process: "compiled", or "pure Python (<why>)"."""


def source(module: str) -> pathlib.Path:
    return ROOT / (module.replace(".", "/") + ".py")


def extension(module: str) -> pathlib.Path:
    return ROOT / (module.replace(".", "/") + _SUFFIX)


_NOT_BUILT = "not built; run `make accel`"

MANIFEST = ROOT / "dataplane" / "_native.json"
"""The SHA-256 of each source as compiled."""


def _shared_library() -> pathlib.Path:
    return extension(GROUP + "__mypyc")


def _built() -> list[pathlib.Path]:
    """Every mypyc output on disk: the modules' extensions and the shared library."""
    return list((ROOT / "dataplane").rglob(f"*{_SUFFIX}"))


def _digest(module: str) -> str:
    return hashlib.sha256(source(module).read_bytes()).hexdigest()


def problem() -> str | None:
    """Why the compiled modules cannot be used, or None when all are built and fresh."""
    known = {*map(extension, MODULES), _shared_library()}
    stray = [p for p in _built() if p not in known]
    if stray:
        return f"{stray[0].relative_to(ROOT)} is not in accel.MODULES; run `make accel`"
    missing = [m for m in MODULES if not extension(m).exists()]
    if len(missing) == len(MODULES):
        return _NOT_BUILT
    if not _shared_library().exists():
        missing.append(GROUP + "__mypyc")
    if missing:
        return f"extension missing for {', '.join(missing)}"
    try:
        recorded = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return f"{MANIFEST.name} is missing or unreadable; run `make accel`"
    stale = [m for m in MODULES if recorded.get(m) != _digest(m)]
    if stale:
        return f"{', '.join(stale)} changed after compiling; run `make accel`"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the hot modules from their `.py` files even where an extension sits beside them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("dataplane.") or not extension(fullname).exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source(fullname))


def install() -> str:
    """Decide, once per process and before the hot modules load, compiled or pure."""
    global STATE
    if os.environ.get("AGENTGW_PURE") == "1":
        reason: str | None = "AGENTGW_PURE=1"
    else:
        reason = problem()
    if reason is None:
        STATE = "compiled"
    else:
        STATE = f"pure Python ({reason})"
        if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFinder())
    return STATE


def build() -> int:
    """Compile `MODULES` with mypyc when any extension is missing or stale."""
    if problem() is None:
        print("dataplane.accel: compiled modules are up to date")
        return 0
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        # Not an error: everything works from source, only slower. CI machines have gcc.
        print(
            f"dataplane.accel: no C compiler ({compiler}): the request path runs from source, about a "
            "quarter slower; install gcc (Debian: apt-get install gcc) and run `make accel`",
            file=sys.stderr,
        )
        return 0
    print(f"dataplane.accel: compiling {len(MODULES)} modules with mypyc (about a minute)")
    clean(quiet=True)  # the set of modules may have changed: no extension of an old build stays
    digests = {m: _digest(m) for m in MODULES}
    script = (
        "import setuptools; from mypyc import build; "
        f"setuptools.setup(name='agentgw-accel', script_args=['-q', 'build_ext', '--inplace'], "
        f"ext_modules=build.mypycify({[str(source(m).relative_to(ROOT)) for m in MODULES]!r}, "
        f"opt_level='3', group_name={GROUP!r}))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 or problem() == _NOT_BUILT:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        return done.returncode or 1
    # What was compiled (a source saved again during the build shows as stale next time).
    MANIFEST.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"dataplane.accel: {problem() or 'compiled'}")
    return 0


def clean(quiet: bool = False) -> int:
    for path in [*_built(), MANIFEST]:
        path.unlink(missing_ok=True)
    if not quiet:
        print("dataplane.accel: removed the compiled modules (pure Python)")
    return 0


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        return build()
    if command == "clean":
        return clean()
    if command == "status":
        print(problem() or "compiled")
        return 0
    print("usage: hack/accel.py build|clean|status", file=sys.stderr)
    return 2
