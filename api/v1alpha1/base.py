"""Base classes of the agentgateway.dev/v1alpha1 models: every rule written once, checked twice.

A `Rule` is one Kubernetes CEL expression, its message, and the same check written in Python.
pydantic runs the Python check when a manifest is validated (by the controller and the tests);
`api.v1alpha1.crd` writes the CEL into the CRD's `x-kubernetes-validations`, so the
kube-apiserver rejects the same objects with the same message. A rule sits on a model
(`Model.__rules__`, where `self` is the object) or on a field (`typing.Annotated[T, Rule(...)]`,
where `self` is the field's value).

`has()`: in CEL, `has(self.x)` is true when the key is present. In the models an absent field is
`None`, so optional fields default to None (never to an empty list or dict) and the Python checks
test `is not None`. A field with a non-None default is defaulted by the apiserver too (the
default is written into the CRD), so `has()` sees it in both places.

List semantics are markers as well: `ListMap("name")`, `ListSet()` and `ATOMIC` set
`x-kubernetes-list-type` in the CRD and reject duplicate keys in Python, as the apiserver does.

Called by: the model modules (backend, policy, parameters, common) and `api.v1alpha1.crd`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Self

import pydantic
import pydantic_core
from pydantic_core import core_schema

JsonDict = dict[str, Any]


def camel(name: str) -> str:
    """`unix_path` -> `unixPath`; `a2a` stays `a2a` (pydantic's to_camel would say `a2A`)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --------------------------------------------------------------------------------------------
# Rules


@dataclasses.dataclass(frozen=True)
class Rule:
    """One validation rule: Kubernetes CEL for the CRD, a Python predicate for pydantic.

    The predicate gets what CEL's `self` is. It returns False, or raises, when the rule is
    violated; an exception counts as a violation because a CEL evaluation error rejects too.
    As field metadata, several rules go in one `Rules(...)` so that all of them are reported.
    """

    rule: str
    message: str
    check: Callable[[Any], bool] = dataclasses.field(compare=False, repr=False)

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            return False

    def cel(self) -> dict[str, str]:
        return {"message": self.message, "rule": self.rule}

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return Rules(self).__get_pydantic_core_schema__(source, handler)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> JsonDict:
        return Rules(self).__get_pydantic_json_schema__(schema, handler)


class Rules:
    """Field metadata for several rules on one value, all checked and all reported."""

    def __init__(self, *rules: Rule) -> None:
        self.rules = rules

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> JsonDict:
        out = dict(handler(schema))
        out["x-kubernetes-validations"] = [
            *out.get("x-kubernetes-validations", []),
            *(r.cel() for r in self.rules),
        ]
        return out

    def _validate(self, value: Any) -> Any:
        failed = [r.message for r in self.rules if not r.holds(value)]
        if failed:
            raise pydantic_core.PydanticCustomError("cel", "{message}", {"message": "\n".join(failed)})
        return value


_ATTRIBUTES: dict[type[pydantic.BaseModel], dict[str, str]] = {}
"""Cache: model class -> {JSON name: Python attribute name}. Filled lazily; classes are immutable."""


def _attributes(cls: type[pydantic.BaseModel]) -> dict[str, str]:
    names = _ATTRIBUTES.get(cls)
    if names is None:
        names = _ATTRIBUTES[cls] = {(info.alias or name): name for name, info in cls.model_fields.items()}
    return names


def present(obj: pydantic.BaseModel, json_name: str) -> bool:
    """CEL's `has(self.<json_name>)` for a model instance."""
    return getattr(obj, _attributes(type(obj))[json_name]) is not None


def _has_list(names: tuple[str, ...]) -> str:
    return "[" + ",".join(f"has(self.{n})" for n in names) + "].filter(x,x==true).size()"


def exactly_one_of(*names: str) -> Rule:
    """agentgateway's `ExactlyOneOf` marker, with its generated CEL and message."""
    return Rule(
        f"{_has_list(names)} == 1",
        f"exactly one of the fields in [{' '.join(names)}] must be set",
        lambda s: sum(present(s, n) for n in names) == 1,
    )


def at_most_one_of(*names: str) -> Rule:
    """agentgateway's `AtMostOneOf` marker."""
    return Rule(
        f"{_has_list(names)} <= 1",
        f"at most one of the fields in [{' '.join(names)}] may be set",
        lambda s: sum(present(s, n) for n in names) <= 1,
    )


def at_least_one_field_set(cls_fields: tuple[str, ...]) -> Rule:
    """agentgateway's `AtLeastOneFieldSet` marker: the field names are listed sorted."""
    names = tuple(sorted(cls_fields))
    return Rule(
        f"{_has_list(names)} >= 1",
        f"at least one of the fields in [{' '.join(names)}] must be set",
        lambda s: any(present(s, n) for n in names),
    )


# --------------------------------------------------------------------------------------------
# List and map semantics


@dataclasses.dataclass(frozen=True)
class _ListType:
    """`x-kubernetes-list-type` (and map keys); duplicate keys are rejected as the apiserver does."""

    list_type: str
    keys: tuple[str, ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> JsonDict:
        out = dict(handler(schema))
        out["x-kubernetes-list-type"] = self.list_type
        if self.keys:
            out["x-kubernetes-list-map-keys"] = list(self.keys)
        return out

    def _key(self, item: Any) -> Any:
        if self.list_type == "set":
            return repr(item)
        return tuple(getattr(item, _attributes(type(item))[k]) for k in self.keys)

    def _validate(self, value: list[Any]) -> list[Any]:
        if self.list_type == "atomic":
            return value
        seen: set[Any] = set()
        for index, item in enumerate(value):
            key = self._key(item)
            if key in seen:
                shown = key if self.list_type == "set" else dict(zip(self.keys, key, strict=True))
                raise pydantic_core.PydanticCustomError(
                    "duplicate", "[{index}]: Duplicate value: {value}", {"index": index, "value": shown}
                )
            seen.add(key)
        return value


def ListMap(*keys: str) -> _ListType:
    """A list whose items are identified by `keys` (`x-kubernetes-list-type: map`)."""
    return _ListType("map", keys)


def ListSet() -> _ListType:
    """A list of unique scalars (`x-kubernetes-list-type: set`)."""
    return _ListType("set")


ATOMIC = _ListType("atomic")
"""A list replaced as a whole on apply (`x-kubernetes-list-type: atomic`)."""


# --------------------------------------------------------------------------------------------
# Free-form values

Json = Annotated[Any, pydantic.WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]
"""Any JSON value (agentgateway's `apiextensionsv1.JSON` with PreserveUnknownFields)."""

FreeObject = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A JSON object kept as written, e.g. a strategic-merge overlay."""


@dataclasses.dataclass(frozen=True)
class IntOrString:
    """Marker for `Annotated[int | str, IntOrString(pattern)]`: a Kubernetes int-or-string
    (Quantity-like) value. Integers pass; strings must match `pattern` and the length limits."""

    pattern: str
    min_length: int | None = None
    max_length: int | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> JsonDict:
        out: JsonDict = {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": self.pattern,
            "x-kubernetes-int-or-string": True,
        }
        if self.min_length is not None:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        return out

    def _validate(self, value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise pydantic_core.PydanticCustomError(
                "int_or_string_type", "Input should be an integer or a string"
            )
        if isinstance(value, int):
            return value
        if self.min_length is not None and len(value) < self.min_length:
            raise pydantic_core.PydanticCustomError(
                "string_too_short",
                "String should have at least {min_length} characters",
                {"min_length": self.min_length},
            )
        if self.max_length is not None and len(value) > self.max_length:
            raise pydantic_core.PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": self.max_length},
            )
        if not re.search(self.pattern, value):
            raise pydantic_core.PydanticCustomError(
                "string_pattern_mismatch",
                "String should match pattern '{pattern}'",
                {"pattern": self.pattern},
            )
        return value


# --------------------------------------------------------------------------------------------
# Models


def _class_schema(schema: JsonDict, cls: type[Any]) -> None:
    """Adds a model's rules and CRD extras to its JSON schema (pydantic's json_schema_extra)."""
    rules: tuple[Rule, ...] = getattr(cls, "__rules__", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.cel() for r in rules]
    schema.update(getattr(cls, "__crd_extra__", {}))


class Model(pydantic.BaseModel):
    """A CRD object: camelCase keys, unknown keys rejected, immutable once validated."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=camel,
        use_attribute_docstrings=True,
        json_schema_extra=_class_schema,
    )

    __rules__: ClassVar[tuple[Rule, ...]] = ()
    """Rules on the whole object, checked in order; CEL `self` is the object."""

    __crd_extra__: ClassVar[JsonDict] = {}
    """Extra CRD schema keywords for this object, e.g. `x-kubernetes-map-type: atomic`."""

    @pydantic.model_validator(mode="after")
    def _check_rules(self) -> Self:
        failed = [r.message for r in type(self).__rules__ if not r.holds(self)]
        if failed:
            raise pydantic_core.PydanticCustomError("cel", "{message}", {"message": "\n".join(failed)})
        return self


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry (what `kubectl get` shows)."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""


@dataclasses.dataclass(frozen=True)
class CRDInfo:
    """The CRD-level facts of a top-level kind, as agentgateway declares them."""

    plural: str
    singular: str
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = ("agentgateway",)
    labels: tuple[tuple[str, str], ...] = (
        ("app", "agentgateway"),
        ("app.kubernetes.io/name", "agentgateway"),
    )
