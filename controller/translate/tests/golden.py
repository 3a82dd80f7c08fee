"""Golden files for the translator: input manifests and expected output in one YAML file.

A case is `testdata/<suite>/<case>.yaml`: the input objects (a `---` separated stream, read as
kubectl reads it), then a line `# Output`, then the expected output:

    resources:                      # per Gateway "<namespace>/<name>", sorted by key
      default/test-gateway:
      - bind: {key: bind/80, port: 80}
      ...
    statuses:                       # sorted by (group, kind, namespace, name)
    - ref: {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default, name: r}
      status: {parents: [...]}

`testdata/<suite>/_defaults.yaml`, when present, holds objects every case of the suite gets
first (a GatewayClass, a Gateway, Services); of those, only the Gateways' statuses are shown
(their `attachedRoutes` depend on the case), the others would repeat in every file. Resources
are protobuf JSON (`json_format.MessageToDict`); `lastTransitionTime` is the translator's
EPOCH. `REFRESH_GOLDEN=1` rewrites the part after `# Output`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Collection
from typing import Any

import yaml
from google.protobuf import json_format

from api.v1alpha1 import validation
from controller import translate

TESTDATA = pathlib.Path(__file__).parent / "testdata"
MARKER = "# Output\n"
DEFAULTS = "_defaults.yaml"


def cases() -> list[pathlib.Path]:
    return sorted(p for p in TESTDATA.rglob("*.yaml") if p.name != DEFAULTS)


def split(text: str) -> tuple[str, str | None]:
    """(inputs, expected output or None when the file has no `# Output` line yet)."""
    head, sep, tail = text.partition("\n" + MARKER)
    if not sep:
        return text, None
    return head + "\n", tail


def defaults(path: pathlib.Path) -> list[dict[str, Any]]:
    file = path.parent / DEFAULTS
    return validation.load_documents(file.read_text()) if file.exists() else []


def inputs(path: pathlib.Path, text: str) -> translate.Inputs:
    return translate.Inputs.from_objects(defaults(path) + validation.load_documents(text))


def hidden(path: pathlib.Path) -> set[translate.ObjectRef]:
    """The suite defaults whose statuses the file does not show: all but Gateways."""
    return {
        translate.ObjectRef(
            d["apiVersion"].rpartition("/")[0],
            d["kind"],
            d["metadata"].get("namespace", ""),
            d["metadata"]["name"],
        )
        for d in defaults(path)
        if d["kind"] != "Gateway"
    }


def render(out: translate.Output, hide: Collection[translate.ObjectRef] = ()) -> str:
    data: dict[str, Any] = {
        "resources": {
            f"{key.namespace}/{key.name}": [json_format.MessageToDict(r) for r in resources]
            for key, resources in out.resources.items()
        },
        "statuses": [
            {"ref": ref._asdict(), "status": stanza}
            for ref, stanza in out.statuses.items()
            if ref not in hide
        ],
    }
    return yaml.safe_dump(data, sort_keys=False, width=100)


def refreshed(inputs_text: str, output: str) -> str:
    """The file's new text: its inputs unchanged, then `---`, `# Output` and the output."""
    body = inputs_text.rstrip("\n")
    if not body.endswith("---"):
        body += "\n---"
    return f"{body}\n{MARKER}{output}"
