from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RateLimitDescriptor(_message.Message):
    __slots__ = ("entries", "limit")
    class Entry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RateLimitOverride(_message.Message):
        __slots__ = ("requests_per_unit", "unit")
        class Unit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            UNKNOWN: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            SECOND: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            MINUTE: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            HOUR: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            DAY: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            MONTH: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
            YEAR: _ClassVar[RateLimitDescriptor.RateLimitOverride.Unit]
        UNKNOWN: RateLimitDescriptor.RateLimitOverride.Unit
        SECOND: RateLimitDescriptor.RateLimitOverride.Unit
        MINUTE: RateLimitDescriptor.RateLimitOverride.Unit
        HOUR: RateLimitDescriptor.RateLimitOverride.Unit
        DAY: RateLimitDescriptor.RateLimitOverride.Unit
        MONTH: RateLimitDescriptor.RateLimitOverride.Unit
        YEAR: RateLimitDescriptor.RateLimitOverride.Unit
        REQUESTS_PER_UNIT_FIELD_NUMBER: _ClassVar[int]
        UNIT_FIELD_NUMBER: _ClassVar[int]
        requests_per_unit: int
        unit: RateLimitDescriptor.RateLimitOverride.Unit
        def __init__(self, requests_per_unit: _Optional[int] = ..., unit: _Optional[_Union[RateLimitDescriptor.RateLimitOverride.Unit, str]] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RateLimitDescriptor.Entry]
    limit: RateLimitDescriptor.RateLimitOverride
    def __init__(self, entries: _Optional[_Iterable[_Union[RateLimitDescriptor.Entry, _Mapping]]] = ..., limit: _Optional[_Union[RateLimitDescriptor.RateLimitOverride, _Mapping]] = ...) -> None: ...
