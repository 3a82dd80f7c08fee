"""Validate agentgateway.dev/v1alpha1 manifests, reporting problems as the kube-apiserver words them.

In: one manifest as a mapping (`parse`) or YAML text with `---` separated documents
(`parse_all`). Out: the typed resource(s), or `errors.ConfigError` whose problems read like
`kubectl apply` output, one line per fault:

    spec.static.port: Required value
    spec: Invalid value: "object": exactly one of the fields in [ai static mcp a2a] must be set
    spec.workload.kind: Unsupported value: "StatefulSet": supported values: "Deployment", "DaemonSet"
    unknown field "spec.foo"

The controller calls this on every object it reads, so that an object the apiserver would have
rejected (or one stored before a CRD upgrade) gets the same message in its status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pydantic
import pydantic_core
import yaml

from api import errors
from api.v1alpha1 import common, kinds


def parse(obj: Mapping[str, Any]) -> common.Resource:
    """Validate one manifest; raise errors.ConfigError naming every bad field."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version != common.API_VERSION:
        raise errors.ConfigError([f"apiVersion: Unsupported value: {json.dumps(api_version)}"])
    cls = kinds.BY_KIND.get(str(kind))
    if cls is None:
        supported = ", ".join(json.dumps(k) for k in kinds.BY_KIND)
        raise errors.ConfigError(
            [f"kind: Unsupported value: {json.dumps(kind)}: supported values: {supported}"]
        )
    try:
        return cls.model_validate(dict(obj))
    except pydantic.ValidationError as exc:
        raise errors.ConfigError([line for e in exc.errors() for line in describe(e)]) from exc


class _Loader(yaml.SafeLoader):
    """YAML as kubectl reads it: `2024-01-01` stays a string (PyYAML would make it a date)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str) -> list[dict[str, Any]]:
    """The mappings of a `---` separated YAML stream, read as kubectl reads them."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise errors.ConfigError([f"invalid YAML: {exc}"]) from exc
    if not all(isinstance(d, dict) for d in docs):
        raise errors.ConfigError(["each document must be a mapping"])
    return docs


def parse_all(text: str) -> list[common.Resource]:
    """Validate every document of a YAML stream; empty documents are skipped."""
    return [parse(doc) for doc in load_documents(text)]


def path_of(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as a Kubernetes field path: `spec.targetRefs[0].kind`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}

_EXPECTED_TYPE = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "string_type": "string",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "datetime_type": "string",
    "datetime_parsing": "string",
    "datetime_from_date_parsing": "string",
    "int_or_string_type": "integer or string",
}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE.get(type(value), type(value).__name__)


def describe(error: pydantic_core.ErrorDetails) -> list[str]:
    """One pydantic error as apiserver-style lines (a failed object rule may give several)."""
    path = path_of(tuple(error["loc"]))
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    at = f"{path}: " if path else ""
    if kind == "missing":
        return [f"{at}Required value"]
    if kind == "extra_forbidden":
        return [f'unknown field "{path}"']
    if kind == "cel":
        return [
            f"{at}Invalid value: {json.dumps(_json_type(value))}: {m}"
            for m in str(ctx["message"]).split("\n")
        ]
    if kind == "literal_error":
        allowed = ", ".join(json.dumps(v) for v in re.findall(r"'([^']*)'", str(ctx["expected"])))
        return [f"{at}Unsupported value: {json.dumps(value)}: supported values: {allowed}"]
    if kind in _EXPECTED_TYPE:
        return [f"{path} in body must be of type {_EXPECTED_TYPE[kind]}: {json.dumps(_json_type(value))}"]
    messages = {
        "string_too_short": f"{path} in body should be at least {ctx.get('min_length')} chars long",
        "string_too_long": f"{at}Too long: may not be more than {ctx.get('max_length')} bytes",
        "string_pattern_mismatch": f"{path} in body should match '{ctx.get('pattern')}'",
        "too_short": f"{path} in body should have at least {ctx.get('min_length')} items",
        "too_long": f"{at}Too many: {ctx.get('actual_length')}: "
        f"must have at most {ctx.get('max_length')} items",
        "greater_than_equal": f"{path} in body should be greater than or equal to {ctx.get('ge')}",
        "less_than_equal": f"{path} in body should be less than or equal to {ctx.get('le')}",
        "duplicate": f"{path}{error['msg']}",
    }
    return [messages.get(kind, f"{at}{error['msg']}")]
