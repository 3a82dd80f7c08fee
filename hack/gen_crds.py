"""Write crds/ from the agentgateway.dev/v1alpha1 models (api/v1alpha1).

    .venv/bin/python hack/gen_crds.py            # (re)write crds/*.yaml
    .venv/bin/python hack/gen_crds.py --check    # exit 1 if crds/ differs from the models

`make gen` runs the first form; `make gen-check` then fails on a diff in crds/.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.v1alpha1 import crd  # noqa: E402 - after the path setup, so the script runs from anywhere

OUT = ROOT / "crds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare with crds/ instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in sorted(crd.files().items()):
        path = OUT / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        print(f"crds/ is stale ({', '.join(stale)}): run hack/gen_crds.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
