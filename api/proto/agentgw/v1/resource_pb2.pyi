import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    HTTP: _ClassVar[Protocol]
    HTTPS: _ClassVar[Protocol]
PROTOCOL_UNSPECIFIED: Protocol
HTTP: Protocol
HTTPS: Protocol

class Resource(_message.Message):
    __slots__ = ("bind", "listener", "route", "backend", "policy")
    BIND_FIELD_NUMBER: _ClassVar[int]
    LISTENER_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    bind: Bind
    listener: Listener
    route: Route
    backend: Backend
    policy: Policy
    def __init__(self, bind: _Optional[_Union[Bind, _Mapping]] = ..., listener: _Optional[_Union[Listener, _Mapping]] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., backend: _Optional[_Union[Backend, _Mapping]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class ResourceSet(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ...) -> None: ...

class Bind(_message.Message):
    __slots__ = ("key", "port")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    key: str
    port: int
    def __init__(self, key: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class Listener(_message.Message):
    __slots__ = ("key", "bind_key", "name", "gateway_name", "hostname", "protocol", "policies")
    KEY_FIELD_NUMBER: _ClassVar[int]
    BIND_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    key: str
    bind_key: str
    name: str
    gateway_name: str
    hostname: str
    protocol: Protocol
    policies: TrafficPolicy
    def __init__(self, key: _Optional[str] = ..., bind_key: _Optional[str] = ..., name: _Optional[str] = ..., gateway_name: _Optional[str] = ..., hostname: _Optional[str] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., policies: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("key", "listener_key", "name", "namespace", "rule_name", "hostnames", "matches", "backends", "policies", "creation_unix_seconds", "rule_index")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LISTENER_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RULE_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAMES_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    CREATION_UNIX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    key: str
    listener_key: str
    name: str
    namespace: str
    rule_name: str
    hostnames: _containers.RepeatedScalarFieldContainer[str]
    matches: _containers.RepeatedCompositeFieldContainer[RouteMatch]
    backends: _containers.RepeatedCompositeFieldContainer[RouteBackend]
    policies: TrafficPolicy
    creation_unix_seconds: int
    rule_index: int
    def __init__(self, key: _Optional[str] = ..., listener_key: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., rule_name: _Optional[str] = ..., hostnames: _Optional[_Iterable[str]] = ..., matches: _Optional[_Iterable[_Union[RouteMatch, _Mapping]]] = ..., backends: _Optional[_Iterable[_Union[RouteBackend, _Mapping]]] = ..., policies: _Optional[_Union[TrafficPolicy, _Mapping]] = ..., creation_unix_seconds: _Optional[int] = ..., rule_index: _Optional[int] = ...) -> None: ...

class RouteMatch(_message.Message):
    __slots__ = ("path", "method", "headers", "query")
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    path: PathMatch
    method: str
    headers: _containers.RepeatedCompositeFieldContainer[HeaderMatch]
    query: _containers.RepeatedCompositeFieldContainer[QueryMatch]
    def __init__(self, path: _Optional[_Union[PathMatch, _Mapping]] = ..., method: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[HeaderMatch, _Mapping]]] = ..., query: _Optional[_Iterable[_Union[QueryMatch, _Mapping]]] = ...) -> None: ...

class PathMatch(_message.Message):
    __slots__ = ("exact", "prefix", "regex")
    EXACT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    exact: str
    prefix: str
    regex: str
    def __init__(self, exact: _Optional[str] = ..., prefix: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class StringMatch(_message.Message):
    __slots__ = ("exact", "regex")
    EXACT_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    exact: str
    regex: str
    def __init__(self, exact: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class HeaderMatch(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: StringMatch
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[StringMatch, _Mapping]] = ...) -> None: ...

class QueryMatch(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: StringMatch
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[StringMatch, _Mapping]] = ...) -> None: ...

class BackendRef(_message.Message):
    __slots__ = ("backend_key", "host")
    BACKEND_KEY_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    backend_key: str
    host: StaticBackend
    def __init__(self, backend_key: _Optional[str] = ..., host: _Optional[_Union[StaticBackend, _Mapping]] = ...) -> None: ...

class RouteBackend(_message.Message):
    __slots__ = ("ref", "weight", "policies")
    REF_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ref: BackendRef
    weight: int
    policies: BackendPolicy
    def __init__(self, ref: _Optional[_Union[BackendRef, _Mapping]] = ..., weight: _Optional[int] = ..., policies: _Optional[_Union[BackendPolicy, _Mapping]] = ...) -> None: ...

class Backend(_message.Message):
    __slots__ = ("key", "name", "static", "ai", "policies")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATIC_FIELD_NUMBER: _ClassVar[int]
    AI_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    static: StaticBackend
    ai: AIBackend
    policies: BackendPolicy
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., static: _Optional[_Union[StaticBackend, _Mapping]] = ..., ai: _Optional[_Union[AIBackend, _Mapping]] = ..., policies: _Optional[_Union[BackendPolicy, _Mapping]] = ...) -> None: ...

class StaticBackend(_message.Message):
    __slots__ = ("host", "port", "tls")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    tls: bool
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., tls: _Optional[bool] = ...) -> None: ...

class AIBackend(_message.Message):
    __slots__ = ("openai", "host", "port", "tls", "path", "auth")
    OPENAI_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    openai: OpenAIProvider
    host: str
    port: int
    tls: bool
    path: str
    auth: BackendAuth
    def __init__(self, openai: _Optional[_Union[OpenAIProvider, _Mapping]] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., tls: _Optional[bool] = ..., path: _Optional[str] = ..., auth: _Optional[_Union[BackendAuth, _Mapping]] = ...) -> None: ...

class OpenAIProvider(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class BackendAuth(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("key", "name", "target", "traffic")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    target: PolicyTarget
    traffic: TrafficPolicy
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., target: _Optional[_Union[PolicyTarget, _Mapping]] = ..., traffic: _Optional[_Union[TrafficPolicy, _Mapping]] = ...) -> None: ...

class PolicyTarget(_message.Message):
    __slots__ = ("gateway", "listener_key", "route_key", "backend_key")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    LISTENER_KEY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_KEY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_KEY_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    listener_key: str
    route_key: str
    backend_key: str
    def __init__(self, gateway: _Optional[str] = ..., listener_key: _Optional[str] = ..., route_key: _Optional[str] = ..., backend_key: _Optional[str] = ...) -> None: ...

class TrafficPolicy(_message.Message):
    __slots__ = ("request_header_modifier", "response_header_modifier", "request_redirect", "url_rewrite", "request_mirrors", "direct_response", "timeout", "retry", "cors")
    REQUEST_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REDIRECT_FIELD_NUMBER: _ClassVar[int]
    URL_REWRITE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_MIRRORS_FIELD_NUMBER: _ClassVar[int]
    DIRECT_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CORS_FIELD_NUMBER: _ClassVar[int]
    request_header_modifier: HeaderModifier
    response_header_modifier: HeaderModifier
    request_redirect: RequestRedirect
    url_rewrite: UrlRewrite
    request_mirrors: _containers.RepeatedCompositeFieldContainer[RequestMirror]
    direct_response: DirectResponse
    timeout: Timeout
    retry: Retry
    cors: Cors
    def __init__(self, request_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., response_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., request_redirect: _Optional[_Union[RequestRedirect, _Mapping]] = ..., url_rewrite: _Optional[_Union[UrlRewrite, _Mapping]] = ..., request_mirrors: _Optional[_Iterable[_Union[RequestMirror, _Mapping]]] = ..., direct_response: _Optional[_Union[DirectResponse, _Mapping]] = ..., timeout: _Optional[_Union[Timeout, _Mapping]] = ..., retry: _Optional[_Union[Retry, _Mapping]] = ..., cors: _Optional[_Union[Cors, _Mapping]] = ...) -> None: ...

class BackendPolicy(_message.Message):
    __slots__ = ("request_header_modifier", "response_header_modifier", "request_redirect", "request_timeout", "connect_timeout")
    REQUEST_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REDIRECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request_header_modifier: HeaderModifier
    response_header_modifier: HeaderModifier
    request_redirect: RequestRedirect
    request_timeout: _duration_pb2.Duration
    connect_timeout: _duration_pb2.Duration
    def __init__(self, request_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., response_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., request_redirect: _Optional[_Union[RequestRedirect, _Mapping]] = ..., request_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., connect_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HeaderPair(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class HeaderModifier(_message.Message):
    __slots__ = ("add", "set", "remove")
    ADD_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedCompositeFieldContainer[HeaderPair]
    set: _containers.RepeatedCompositeFieldContainer[HeaderPair]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, add: _Optional[_Iterable[_Union[HeaderPair, _Mapping]]] = ..., set: _Optional[_Iterable[_Union[HeaderPair, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class AuthorityRewrite(_message.Message):
    __slots__ = ("full", "host", "port", "auto")
    FULL_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    AUTO_FIELD_NUMBER: _ClassVar[int]
    full: str
    host: str
    port: int
    auto: bool
    def __init__(self, full: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., auto: _Optional[bool] = ...) -> None: ...

class PathRewrite(_message.Message):
    __slots__ = ("full", "prefix")
    FULL_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    full: str
    prefix: str
    def __init__(self, full: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class RequestRedirect(_message.Message):
    __slots__ = ("scheme", "authority", "path", "status")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    authority: AuthorityRewrite
    path: PathRewrite
    status: int
    def __init__(self, scheme: _Optional[str] = ..., authority: _Optional[_Union[AuthorityRewrite, _Mapping]] = ..., path: _Optional[_Union[PathRewrite, _Mapping]] = ..., status: _Optional[int] = ...) -> None: ...

class UrlRewrite(_message.Message):
    __slots__ = ("authority", "path")
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    authority: AuthorityRewrite
    path: PathRewrite
    def __init__(self, authority: _Optional[_Union[AuthorityRewrite, _Mapping]] = ..., path: _Optional[_Union[PathRewrite, _Mapping]] = ...) -> None: ...

class RequestMirror(_message.Message):
    __slots__ = ("backend", "percentage")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    backend: BackendRef
    percentage: float
    def __init__(self, backend: _Optional[_Union[BackendRef, _Mapping]] = ..., percentage: _Optional[float] = ...) -> None: ...

class DirectResponse(_message.Message):
    __slots__ = ("status", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: int
    body: bytes
    def __init__(self, status: _Optional[int] = ..., body: _Optional[bytes] = ...) -> None: ...

class Timeout(_message.Message):
    __slots__ = ("request_timeout", "backend_request_timeout")
    REQUEST_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_REQUEST_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request_timeout: _duration_pb2.Duration
    backend_request_timeout: _duration_pb2.Duration
    def __init__(self, request_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backend_request_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Retry(_message.Message):
    __slots__ = ("attempts", "backoff", "codes")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    backoff: _duration_pb2.Duration
    codes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, attempts: _Optional[int] = ..., backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., codes: _Optional[_Iterable[int]] = ...) -> None: ...

class Cors(_message.Message):
    __slots__ = ("allow_credentials", "allow_headers", "allow_methods", "allow_origins", "expose_headers", "max_age")
    ALLOW_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_METHODS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_ORIGINS_FIELD_NUMBER: _ClassVar[int]
    EXPOSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    allow_credentials: bool
    allow_headers: _containers.RepeatedScalarFieldContainer[str]
    allow_methods: _containers.RepeatedScalarFieldContainer[str]
    allow_origins: _containers.RepeatedScalarFieldContainer[str]
    expose_headers: _containers.RepeatedScalarFieldContainer[str]
    max_age: _duration_pb2.Duration
    def __init__(self, allow_credentials: _Optional[bool] = ..., allow_headers: _Optional[_Iterable[str]] = ..., allow_methods: _Optional[_Iterable[str]] = ..., allow_origins: _Optional[_Iterable[str]] = ..., expose_headers: _Optional[_Iterable[str]] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
