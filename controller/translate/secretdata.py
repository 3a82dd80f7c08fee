"""The data of Secrets and ConfigMaps, as the translator reads it.

In: one raw Secret or ConfigMap and a data key. Out: the value as bytes or text, or None when the
key is absent. A Secret's `data` is base64 (as the apiserver serves it); its `stringData` is read
too, for manifests written by hand and golden files (the apiserver folds it into `data`). A
ConfigMap's `data` is plain text and its `binaryData` base64.

Values are secrets: callers put them in resources, never in statuses or messages. Pure; used by
`agwbackends` (provider keys), `tls` (certificates) and `policyspec` (API keys, htpasswd).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping

from controller.translate import index, model

TLS_TYPE = "kubernetes.io/tls"
"""The Secret type of a certificate and its key (`tls.crt`, `tls.key`)."""


class Unreadable(Exception):
    """A value is not valid base64 (or not UTF-8 where text is needed); the message names the key,
    never the value."""


def data(obj: model.Object, key: str) -> bytes | None:
    """The value under `key` of a Secret or ConfigMap; None when absent."""
    if obj.get("kind") == "ConfigMap":
        plain = (obj.get("data") or {}).get(key)
        if plain is not None:
            return str(plain).encode()
        return _b64(obj, (obj.get("binaryData") or {}).get(key), key)
    string_data = obj.get("stringData") or {}
    if key in string_data:
        return str(string_data[key]).encode()
    return _b64(obj, (obj.get("data") or {}).get(key), key)


def text(obj: model.Object, key: str) -> str | None:
    """`data` as UTF-8 text."""
    raw = data(obj, key)
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{_what(obj)}: {key} is not UTF-8 text") from exc


def keys(obj: model.Object) -> list[str]:
    """Every data key of a Secret or ConfigMap, sorted."""
    fields = ("data", "binaryData") if obj.get("kind") == "ConfigMap" else ("data", "stringData")
    return sorted({k for f in fields for k in (obj.get(f) or {})})


def items(obj: model.Object) -> Iterator[tuple[str, str]]:
    """(key, text value) of every data key, sorted by key."""
    for key in keys(obj):
        value = text(obj, key)
        if value is not None:
            yield key, value


def secret_type(obj: model.Object) -> str:
    """The Secret's `type`; the apiserver's default is `Opaque`."""
    return str(obj.get("type") or "Opaque")


def labelled(
    objects: Mapping[index.NamespacedName, model.Object], namespace: str, labels: Mapping[str, str]
) -> list[model.Object]:
    """The objects of `namespace` that carry every label of `labels`, sorted by name."""
    out = []
    for (ns, _), obj in sorted(objects.items()):
        have = (obj.get("metadata") or {}).get("labels") or {}
        if ns == namespace and all(have.get(k) == v for k, v in labels.items()):
            out.append(obj)
    return out


def _b64(obj: model.Object, encoded: object, key: str) -> bytes | None:
    if encoded is None:
        return None
    try:
        return base64.b64decode(str(encoded), validate=True)
    except binascii.Error as exc:
        raise Unreadable(f"{_what(obj)}: {key} is not valid base64") from exc


def _what(obj: model.Object) -> str:
    return f"{obj.get('kind', 'Secret')} {index.namespace_of(obj)}/{index.name_of(obj)}"
