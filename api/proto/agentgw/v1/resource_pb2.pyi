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

class HttpVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HTTP_VERSION_UNSPECIFIED: _ClassVar[HttpVersion]
    HTTP_VERSION_HTTP1: _ClassVar[HttpVersion]
    HTTP_VERSION_HTTP2: _ClassVar[HttpVersion]

class AuthMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_MODE_OPTIONAL: _ClassVar[AuthMode]
    AUTH_MODE_STRICT: _ClassVar[AuthMode]
    AUTH_MODE_PERMISSIVE: _ClassVar[AuthMode]

class RateLimitUnit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATE_LIMIT_REQUESTS: _ClassVar[RateLimitUnit]
    RATE_LIMIT_TOKENS: _ClassVar[RateLimitUnit]
PROTOCOL_UNSPECIFIED: Protocol
HTTP: Protocol
HTTPS: Protocol
HTTP_VERSION_UNSPECIFIED: HttpVersion
HTTP_VERSION_HTTP1: HttpVersion
HTTP_VERSION_HTTP2: HttpVersion
AUTH_MODE_OPTIONAL: AuthMode
AUTH_MODE_STRICT: AuthMode
AUTH_MODE_PERMISSIVE: AuthMode
RATE_LIMIT_REQUESTS: RateLimitUnit
RATE_LIMIT_TOKENS: RateLimitUnit

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
    __slots__ = ("key", "bind_key", "name", "gateway_name", "hostname", "protocol", "policies", "tls")
    KEY_FIELD_NUMBER: _ClassVar[int]
    BIND_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    key: str
    bind_key: str
    name: str
    gateway_name: str
    hostname: str
    protocol: Protocol
    policies: TrafficPolicy
    tls: ListenerTls
    def __init__(self, key: _Optional[str] = ..., bind_key: _Optional[str] = ..., name: _Optional[str] = ..., gateway_name: _Optional[str] = ..., hostname: _Optional[str] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., policies: _Optional[_Union[TrafficPolicy, _Mapping]] = ..., tls: _Optional[_Union[ListenerTls, _Mapping]] = ...) -> None: ...

class ListenerTls(_message.Message):
    __slots__ = ("cert_file", "key_file", "root_file", "cert_pem", "key_pem", "root_pem", "min_version", "max_version")
    CERT_FILE_FIELD_NUMBER: _ClassVar[int]
    KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    ROOT_FILE_FIELD_NUMBER: _ClassVar[int]
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    ROOT_PEM_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSION_FIELD_NUMBER: _ClassVar[int]
    cert_file: str
    key_file: str
    root_file: str
    cert_pem: bytes
    key_pem: bytes
    root_pem: bytes
    min_version: str
    max_version: str
    def __init__(self, cert_file: _Optional[str] = ..., key_file: _Optional[str] = ..., root_file: _Optional[str] = ..., cert_pem: _Optional[bytes] = ..., key_pem: _Optional[bytes] = ..., root_pem: _Optional[bytes] = ..., min_version: _Optional[str] = ..., max_version: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("path", "method", "headers", "query", "precedence")
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PRECEDENCE_FIELD_NUMBER: _ClassVar[int]
    path: PathMatch
    method: str
    headers: _containers.RepeatedCompositeFieldContainer[HeaderMatch]
    query: _containers.RepeatedCompositeFieldContainer[QueryMatch]
    precedence: int
    def __init__(self, path: _Optional[_Union[PathMatch, _Mapping]] = ..., method: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[HeaderMatch, _Mapping]]] = ..., query: _Optional[_Iterable[_Union[QueryMatch, _Mapping]]] = ..., precedence: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("key", "name", "target", "traffic", "backend", "override", "namespace", "creation_unix_seconds")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CREATION_UNIX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    target: PolicyTarget
    traffic: TrafficPolicy
    backend: BackendPolicy
    override: bool
    namespace: str
    creation_unix_seconds: int
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., target: _Optional[_Union[PolicyTarget, _Mapping]] = ..., traffic: _Optional[_Union[TrafficPolicy, _Mapping]] = ..., backend: _Optional[_Union[BackendPolicy, _Mapping]] = ..., override: _Optional[bool] = ..., namespace: _Optional[str] = ..., creation_unix_seconds: _Optional[int] = ...) -> None: ...

class PolicyTarget(_message.Message):
    __slots__ = ("gateway", "listener_key", "route_key", "backend_key", "rule_key")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    LISTENER_KEY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_KEY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_KEY_FIELD_NUMBER: _ClassVar[int]
    RULE_KEY_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    listener_key: str
    route_key: str
    backend_key: str
    rule_key: str
    def __init__(self, gateway: _Optional[str] = ..., listener_key: _Optional[str] = ..., route_key: _Optional[str] = ..., backend_key: _Optional[str] = ..., rule_key: _Optional[str] = ...) -> None: ...

class TrafficPolicy(_message.Message):
    __slots__ = ("request_header_modifier", "response_header_modifier", "request_redirect", "url_rewrite", "request_mirrors", "direct_response", "timeout", "retry", "cors", "jwt_auth", "api_key", "basic_auth", "ext_authz", "authorization", "local_rate_limit", "remote_rate_limit", "transformations", "csrf")
    REQUEST_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REDIRECT_FIELD_NUMBER: _ClassVar[int]
    URL_REWRITE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_MIRRORS_FIELD_NUMBER: _ClassVar[int]
    DIRECT_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CORS_FIELD_NUMBER: _ClassVar[int]
    JWT_AUTH_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    BASIC_AUTH_FIELD_NUMBER: _ClassVar[int]
    EXT_AUTHZ_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    LOCAL_RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    CSRF_FIELD_NUMBER: _ClassVar[int]
    request_header_modifier: HeaderModifier
    response_header_modifier: HeaderModifier
    request_redirect: RequestRedirect
    url_rewrite: UrlRewrite
    request_mirrors: _containers.RepeatedCompositeFieldContainer[RequestMirror]
    direct_response: DirectResponse
    timeout: Timeout
    retry: Retry
    cors: Cors
    jwt_auth: JwtAuth
    api_key: ApiKeyAuth
    basic_auth: BasicAuth
    ext_authz: ExtAuthz
    authorization: Authorization
    local_rate_limit: LocalRateLimits
    remote_rate_limit: RemoteRateLimit
    transformations: Transformations
    csrf: Csrf
    def __init__(self, request_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., response_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., request_redirect: _Optional[_Union[RequestRedirect, _Mapping]] = ..., url_rewrite: _Optional[_Union[UrlRewrite, _Mapping]] = ..., request_mirrors: _Optional[_Iterable[_Union[RequestMirror, _Mapping]]] = ..., direct_response: _Optional[_Union[DirectResponse, _Mapping]] = ..., timeout: _Optional[_Union[Timeout, _Mapping]] = ..., retry: _Optional[_Union[Retry, _Mapping]] = ..., cors: _Optional[_Union[Cors, _Mapping]] = ..., jwt_auth: _Optional[_Union[JwtAuth, _Mapping]] = ..., api_key: _Optional[_Union[ApiKeyAuth, _Mapping]] = ..., basic_auth: _Optional[_Union[BasicAuth, _Mapping]] = ..., ext_authz: _Optional[_Union[ExtAuthz, _Mapping]] = ..., authorization: _Optional[_Union[Authorization, _Mapping]] = ..., local_rate_limit: _Optional[_Union[LocalRateLimits, _Mapping]] = ..., remote_rate_limit: _Optional[_Union[RemoteRateLimit, _Mapping]] = ..., transformations: _Optional[_Union[Transformations, _Mapping]] = ..., csrf: _Optional[_Union[Csrf, _Mapping]] = ...) -> None: ...

class BackendPolicy(_message.Message):
    __slots__ = ("request_header_modifier", "response_header_modifier", "request_redirect", "request_timeout", "connect_timeout", "tls", "auth_passthrough", "authorization", "http_version")
    REQUEST_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADER_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REDIRECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    AUTH_PASSTHROUGH_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_header_modifier: HeaderModifier
    response_header_modifier: HeaderModifier
    request_redirect: RequestRedirect
    request_timeout: _duration_pb2.Duration
    connect_timeout: _duration_pb2.Duration
    tls: BackendTls
    auth_passthrough: bool
    authorization: Authorization
    http_version: HttpVersion
    def __init__(self, request_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., response_header_modifier: _Optional[_Union[HeaderModifier, _Mapping]] = ..., request_redirect: _Optional[_Union[RequestRedirect, _Mapping]] = ..., request_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., connect_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., tls: _Optional[_Union[BackendTls, _Mapping]] = ..., auth_passthrough: _Optional[bool] = ..., authorization: _Optional[_Union[Authorization, _Mapping]] = ..., http_version: _Optional[_Union[HttpVersion, str]] = ...) -> None: ...

class BackendTls(_message.Message):
    __slots__ = ("root_file", "root_pem", "cert_file", "key_file", "cert_pem", "key_pem", "hostname", "insecure", "insecure_host", "subject_alt_names", "alpn")
    ROOT_FILE_FIELD_NUMBER: _ClassVar[int]
    ROOT_PEM_FIELD_NUMBER: _ClassVar[int]
    CERT_FILE_FIELD_NUMBER: _ClassVar[int]
    KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    INSECURE_HOST_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ALT_NAMES_FIELD_NUMBER: _ClassVar[int]
    ALPN_FIELD_NUMBER: _ClassVar[int]
    root_file: str
    root_pem: bytes
    cert_file: str
    key_file: str
    cert_pem: bytes
    key_pem: bytes
    hostname: str
    insecure: bool
    insecure_host: bool
    subject_alt_names: _containers.RepeatedScalarFieldContainer[str]
    alpn: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, root_file: _Optional[str] = ..., root_pem: _Optional[bytes] = ..., cert_file: _Optional[str] = ..., key_file: _Optional[str] = ..., cert_pem: _Optional[bytes] = ..., key_pem: _Optional[bytes] = ..., hostname: _Optional[str] = ..., insecure: _Optional[bool] = ..., insecure_host: _Optional[bool] = ..., subject_alt_names: _Optional[_Iterable[str]] = ..., alpn: _Optional[_Iterable[str]] = ...) -> None: ...

class CredentialLocation(_message.Message):
    __slots__ = ("header", "query_parameter", "cookie")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    QUERY_PARAMETER_FIELD_NUMBER: _ClassVar[int]
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    header: HeaderLocation
    query_parameter: str
    cookie: str
    def __init__(self, header: _Optional[_Union[HeaderLocation, _Mapping]] = ..., query_parameter: _Optional[str] = ..., cookie: _Optional[str] = ...) -> None: ...

class HeaderLocation(_message.Message):
    __slots__ = ("name", "prefix")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    name: str
    prefix: str
    def __init__(self, name: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class JwtAuth(_message.Message):
    __slots__ = ("mode", "location", "providers")
    MODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    mode: AuthMode
    location: CredentialLocation
    providers: _containers.RepeatedCompositeFieldContainer[JwtProvider]
    def __init__(self, mode: _Optional[_Union[AuthMode, str]] = ..., location: _Optional[_Union[CredentialLocation, _Mapping]] = ..., providers: _Optional[_Iterable[_Union[JwtProvider, _Mapping]]] = ...) -> None: ...

class JwtProvider(_message.Message):
    __slots__ = ("issuer", "audiences", "jwks", "required_claims")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    JWKS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    jwks: Jwks
    required_claims: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, issuer: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ..., jwks: _Optional[_Union[Jwks, _Mapping]] = ..., required_claims: _Optional[_Iterable[str]] = ...) -> None: ...

class Jwks(_message.Message):
    __slots__ = ("inline", "file", "url", "refresh_interval")
    INLINE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REFRESH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    inline: str
    file: str
    url: str
    refresh_interval: _duration_pb2.Duration
    def __init__(self, inline: _Optional[str] = ..., file: _Optional[str] = ..., url: _Optional[str] = ..., refresh_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ApiKeyAuth(_message.Message):
    __slots__ = ("mode", "location", "keys")
    MODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    mode: AuthMode
    location: CredentialLocation
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, mode: _Optional[_Union[AuthMode, str]] = ..., location: _Optional[_Union[CredentialLocation, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("key", "sha256", "metadata_json")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    key: str
    sha256: str
    metadata_json: str
    def __init__(self, key: _Optional[str] = ..., sha256: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class BasicAuth(_message.Message):
    __slots__ = ("mode", "location", "htpasswd", "realm")
    MODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    HTPASSWD_FIELD_NUMBER: _ClassVar[int]
    REALM_FIELD_NUMBER: _ClassVar[int]
    mode: AuthMode
    location: CredentialLocation
    htpasswd: str
    realm: str
    def __init__(self, mode: _Optional[_Union[AuthMode, str]] = ..., location: _Optional[_Union[CredentialLocation, _Mapping]] = ..., htpasswd: _Optional[str] = ..., realm: _Optional[str] = ...) -> None: ...

class Authorization(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AuthorizationRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AuthorizationRule, _Mapping]]] = ...) -> None: ...

class AuthorizationRule(_message.Message):
    __slots__ = ("kind", "expression")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ALLOW: _ClassVar[AuthorizationRule.Kind]
        DENY: _ClassVar[AuthorizationRule.Kind]
        REQUIRE: _ClassVar[AuthorizationRule.Kind]
    ALLOW: AuthorizationRule.Kind
    DENY: AuthorizationRule.Kind
    REQUIRE: AuthorizationRule.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    kind: AuthorizationRule.Kind
    expression: str
    def __init__(self, kind: _Optional[_Union[AuthorizationRule.Kind, str]] = ..., expression: _Optional[str] = ...) -> None: ...

class LocalRateLimits(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[LocalRateLimit]
    def __init__(self, limits: _Optional[_Iterable[_Union[LocalRateLimit, _Mapping]]] = ...) -> None: ...

class LocalRateLimit(_message.Message):
    __slots__ = ("max_tokens", "tokens_per_fill", "fill_interval", "unit", "key")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_FILL_FIELD_NUMBER: _ClassVar[int]
    FILL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    tokens_per_fill: int
    fill_interval: _duration_pb2.Duration
    unit: RateLimitUnit
    key: str
    def __init__(self, max_tokens: _Optional[int] = ..., tokens_per_fill: _Optional[int] = ..., fill_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., unit: _Optional[_Union[RateLimitUnit, str]] = ..., key: _Optional[str] = ...) -> None: ...

class RemoteRateLimit(_message.Message):
    __slots__ = ("target", "domain", "descriptors", "fail_open", "timeout")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    FAIL_OPEN_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    target: BackendRef
    domain: str
    descriptors: _containers.RepeatedCompositeFieldContainer[RateLimitDescriptor]
    fail_open: bool
    timeout: _duration_pb2.Duration
    def __init__(self, target: _Optional[_Union[BackendRef, _Mapping]] = ..., domain: _Optional[str] = ..., descriptors: _Optional[_Iterable[_Union[RateLimitDescriptor, _Mapping]]] = ..., fail_open: _Optional[bool] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RateLimitDescriptor(_message.Message):
    __slots__ = ("entries", "unit")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DescriptorEntry]
    unit: RateLimitUnit
    def __init__(self, entries: _Optional[_Iterable[_Union[DescriptorEntry, _Mapping]]] = ..., unit: _Optional[_Union[RateLimitUnit, str]] = ...) -> None: ...

class DescriptorEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ExtAuthz(_message.Message):
    __slots__ = ("target", "grpc", "http", "fail_open", "deny_status", "include_request_headers", "include_request_body", "timeout")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GRPC_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    FAIL_OPEN_FIELD_NUMBER: _ClassVar[int]
    DENY_STATUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    target: BackendRef
    grpc: ExtAuthzGrpc
    http: ExtAuthzHttp
    fail_open: bool
    deny_status: int
    include_request_headers: _containers.RepeatedScalarFieldContainer[str]
    include_request_body: ExtAuthzBody
    timeout: _duration_pb2.Duration
    def __init__(self, target: _Optional[_Union[BackendRef, _Mapping]] = ..., grpc: _Optional[_Union[ExtAuthzGrpc, _Mapping]] = ..., http: _Optional[_Union[ExtAuthzHttp, _Mapping]] = ..., fail_open: _Optional[bool] = ..., deny_status: _Optional[int] = ..., include_request_headers: _Optional[_Iterable[str]] = ..., include_request_body: _Optional[_Union[ExtAuthzBody, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExtAuthzGrpc(_message.Message):
    __slots__ = ("context", "metadata")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    context: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, context: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExtAuthzHttp(_message.Message):
    __slots__ = ("path", "redirect", "include_response_headers", "add_request_headers")
    class AddRequestHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ADD_REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    path: str
    redirect: str
    include_response_headers: _containers.RepeatedScalarFieldContainer[str]
    add_request_headers: _containers.ScalarMap[str, str]
    def __init__(self, path: _Optional[str] = ..., redirect: _Optional[str] = ..., include_response_headers: _Optional[_Iterable[str]] = ..., add_request_headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExtAuthzBody(_message.Message):
    __slots__ = ("max_request_bytes", "allow_partial_message", "pack_as_bytes")
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PACK_AS_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_request_bytes: int
    allow_partial_message: bool
    pack_as_bytes: bool
    def __init__(self, max_request_bytes: _Optional[int] = ..., allow_partial_message: _Optional[bool] = ..., pack_as_bytes: _Optional[bool] = ...) -> None: ...

class Transformations(_message.Message):
    __slots__ = ("request", "response")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    request: Transform
    response: Transform
    def __init__(self, request: _Optional[_Union[Transform, _Mapping]] = ..., response: _Optional[_Union[Transform, _Mapping]] = ...) -> None: ...

class Transform(_message.Message):
    __slots__ = ("add", "set", "remove", "body", "replace")
    ADD_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedCompositeFieldContainer[HeaderExpression]
    set: _containers.RepeatedCompositeFieldContainer[HeaderExpression]
    remove: _containers.RepeatedScalarFieldContainer[str]
    body: str
    replace: str
    def __init__(self, add: _Optional[_Iterable[_Union[HeaderExpression, _Mapping]]] = ..., set: _Optional[_Iterable[_Union[HeaderExpression, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ..., body: _Optional[str] = ..., replace: _Optional[str] = ...) -> None: ...

class HeaderExpression(_message.Message):
    __slots__ = ("name", "expression")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ...) -> None: ...

class Csrf(_message.Message):
    __slots__ = ("additional_origins",)
    ADDITIONAL_ORIGINS_FIELD_NUMBER: _ClassVar[int]
    additional_origins: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, additional_origins: _Optional[_Iterable[str]] = ...) -> None: ...

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
