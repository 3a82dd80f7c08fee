"""AgentgatewayBackend: a destination that is not a Kubernetes Service.

In: the manifest of one AgentgatewayBackend (an HTTPRoute points at it with
`backendRefs[].group: agentgateway.dev, kind: AgentgatewayBackend`). Out: the validated model,
which the controller translates to one Backend resource. `spec` is exactly one kind:

- `ai`: an LLM provider (`provider`) or priority groups of providers (`groups`, failover in order);
- `mcp`: MCP servers, static (`host`/`backendRef` + `port`) or selected Services (`selector`);
- `a2a`: an A2A agent at `host:port`;
- `static`: a plain host and port.

`policies` are backend policies (api.v1alpha1.backendpolicy) for this backend; they win over an
AgentgatewayPolicy that sets the same field.

Subset of agentgateway: `dynamicForwardProxy`, `aws` (AgentCore), `static.unixPath`,
`openai.moderation` and `bedrock.guardrail` are left out until implemented.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from api.v1alpha1 import backendpolicy, base, common

# --------------------------------------------------------------------------------------------
# Static and A2A


class StaticBackend(base.Model):
    """A plain TCP destination: `host` and `port`."""

    host: common.ShortString
    """Hostname or IP address. Required."""

    port: common.Port
    """Port, 1 to 65535. Required."""


class A2ABackend(base.Model):
    """An Agent-to-Agent (A2A) agent."""

    host: common.ShortString
    """Hostname or IP address of the agent. Required."""

    port: common.Port
    """Port of the agent, 1 to 65535. Required."""


# --------------------------------------------------------------------------------------------
# LLM providers


class OpenAIConfig(base.Model):
    """OpenAI (api.openai.com, or any OpenAI-compatible server with `host`/`port`)."""

    model: common.ShortString | None = None
    """Model to use, e.g. `gpt-4o-mini`. Default: the model named in the request."""


class AzureOpenAIConfig(base.Model):
    """Azure OpenAI, addressed by endpoint and deployment."""

    __rules__ = (
        base.Rule(
            "!has(self.apiVersion) || self.apiVersion == 'v1' ? true : has(self.deploymentName)",
            "deploymentName is required for this apiVersion",
            lambda s: s.api_version in (None, "v1") or s.deployment_name is not None,
        ),
    )

    endpoint: common.ShortString
    """Endpoint host, e.g. `my-endpoint.openai.azure.com`; a scheme is stripped. Required."""

    deployment_name: common.ShortString | None = None
    """Model deployment. Required unless `apiVersion` is `v1` (then the request names the model)."""

    api_version: common.TinyString | None = None
    """Azure OpenAI API version. Default: `v1`."""


class AzureConfig(base.Model):
    """Azure AI by resource: Azure OpenAI (`{resourceName}.openai.azure.com`) or AI Foundry
    (`{resourceName}.services.ai.azure.com`)."""

    __rules__ = (
        base.Rule(
            "self.resourceType != 'Foundry' || has(self.projectName)",
            "projectName is required when resourceType is Foundry",
            lambda s: s.resource_type != "Foundry" or s.project_name is not None,
        ),
    )

    resource_name: common.ShortString
    """Azure resource name, the first label of the endpoint host. Required."""

    resource_type: Literal["OpenAI", "Foundry"]
    """Endpoint type, which picks the host suffix. Required."""

    api_version: common.TinyString | None = None
    """Azure OpenAI API version. Default: `v1`."""

    project_name: common.ShortString | None = None
    """Foundry project, used in `/api/projects/{projectName}/openai/v1/...`. Required for Foundry."""

    model: common.ShortString | None = None
    """Model to use. Default: the model named in the request."""


class AnthropicConfig(base.Model):
    """Anthropic (api.anthropic.com)."""

    model: common.ShortString | None = None
    """Model to use, e.g. `claude-sonnet-4-5`. Default: the model named in the request."""


class GeminiConfig(base.Model):
    """Google Gemini API (generativelanguage.googleapis.com)."""

    model: common.ShortString | None = None
    """Model to use, e.g. `gemini-2.5-pro`. Default: the model named in the request."""


class VertexAIConfig(base.Model):
    """Google Vertex AI."""

    project_id: common.TinyString
    """Google Cloud project ID. Required."""

    region: common.TinyString = "global"
    """Location: `global` (the default), `us` or `eu` (multi-region), or a region."""

    model: common.ShortString | None = None
    """Model to use. Default: the model named in the request."""


class BedrockConfig(base.Model):
    """Amazon Bedrock."""

    region: Annotated[
        str, pydantic.StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$")
    ] = "us-east-1"
    """AWS region. Default: `us-east-1`."""

    model: common.ShortString | None = None
    """Model to use. Default: the model named in the request."""


ProviderFormat = Literal[
    "Completions", "Messages", "Responses", "Embeddings", "AnthropicTokenCount", "Realtime", "Rerank"
]
"""A provider-native API format: OpenAI chat `Completions`, Anthropic `Messages`, OpenAI
`Responses`, `Embeddings`, Anthropic `AnthropicTokenCount`, OpenAI `Realtime`, Cohere `Rerank`."""


class ProviderFormatConfig(base.Model):
    """One API format a custom provider serves, and optionally its path."""

    __rules__ = (
        base.Rule(
            "!has(self.path) || self.path.startsWith('/')",
            "path must start with /",
            lambda s: s.path is None or s.path.startswith("/"),
        ),
    )

    type: ProviderFormat
    """The format. Required."""

    path: common.LongString | None = None
    """Upstream path for this format. Default: the format's standard path."""


def _custom_ref_kind(custom: CustomProvider) -> bool:
    ref = custom.backend_ref
    if ref is None:
        return True
    return (ref.group == "" and ref.kind == "Service") or (
        ref.group == "inference.networking.k8s.io" and ref.kind == "InferencePool"
    )


class CustomProvider(base.Model):
    """A self-hosted or OpenAI-compatible provider whose API formats are declared explicitly.

    The target is `backendRef` (a Service or an InferencePool) or the provider's `host`/`port`.
    """

    __rules__ = (
        base.Rule(
            '!has(self.backendRef) || (((!has(self.backendRef.group) || self.backendRef.group == "") && '
            "(!has(self.backendRef.kind) || self.backendRef.kind == 'Service')) || "
            "(has(self.backendRef.group) && self.backendRef.group == 'inference.networking.k8s.io' && "
            "has(self.backendRef.kind) && self.backendRef.kind == 'InferencePool'))",
            "custom provider backendRef may target only Service or InferencePool",
            _custom_ref_kind,
        ),
    )

    backend_ref: common.LocalBackendObjectReference | None = None
    """Same-namespace Service (port required) or `inference.networking.k8s.io` InferencePool.
    If unset, the provider's `host` and `port` are the target."""

    formats: Annotated[
        list[ProviderFormatConfig], pydantic.Field(min_length=1, max_length=6), base.ListMap("type")
    ]
    """API formats served, 1 to 6, one entry per type. Required."""

    model: common.ShortString | None = None
    """Model to use. Default: the model named in the request."""


def _custom_formats_have_path(provider: LLMProvider) -> bool:
    return provider.custom is not None and any(f.path is not None for f in provider.custom.formats)


_PROVIDERS = ("openai", "azureopenai", "azure", "anthropic", "gemini", "vertexai", "bedrock", "custom")


class LLMProvider(base.Model):
    """One LLM provider, and optionally where to reach it instead of the provider's default host."""

    __rules__ = (
        base.Rule(
            "has(self.host) || has(self.port) ? has(self.host) && has(self.port) : true",
            "both host and port must be set together",
            lambda s: (s.host is None) == (s.port is None),
        ),
        base.Rule(
            "has(self.custom) ? has(self.custom.backendRef) != has(self.host) : true",
            "custom providers must specify exactly one of backendRef or host and port",
            lambda s: s.custom is None or (s.custom.backend_ref is not None) != (s.host is not None),
        ),
        base.Rule(
            "!(has(self.path) && has(self.pathPrefix))",
            "path and pathPrefix are mutually exclusive",
            lambda s: s.path is None or s.path_prefix is None,
        ),
        base.Rule(
            "!(has(self.custom) && self.custom.formats.exists(f, has(f.path)) && "
            "(has(self.path) || has(self.pathPrefix)))",
            "path, pathPrefix, and custom format paths are mutually exclusive",
            lambda s: (
                not (_custom_formats_have_path(s) and (s.path is not None or s.path_prefix is not None))
            ),
        ),
        base.Rule(
            "has(self.pathPrefix) ? has(self.host) : true",
            "pathPrefix requires host to be set",
            lambda s: s.path_prefix is None or s.host is not None,
        ),
        base.exactly_one_of(*_PROVIDERS),
    )

    openai: OpenAIConfig | None = None
    """OpenAI."""

    azureopenai: AzureOpenAIConfig | None = None
    """Azure OpenAI by endpoint and deployment."""

    azure: AzureConfig | None = None
    """Azure OpenAI or AI Foundry by resource name."""

    anthropic: AnthropicConfig | None = None
    """Anthropic."""

    gemini: GeminiConfig | None = None
    """Google Gemini API."""

    vertexai: VertexAIConfig | None = None
    """Google Vertex AI."""

    bedrock: BedrockConfig | None = None
    """Amazon Bedrock."""

    custom: CustomProvider | None = None
    """A provider with explicitly declared API formats."""

    host: common.ShortString | None = None
    """Host to send requests to instead of the provider's default (with `port`)."""

    port: common.Port | None = None
    """Port to send requests to (with `host`)."""

    path: common.LongString | None = None
    """Fixed upstream path for every request. Default: the provider's path for the API used."""

    path_prefix: common.LongString | None = None
    """Replaces the provider's base path prefix (such as `/v1`); needs `host`. OpenAI and Anthropic."""


class NamedLLMProvider(LLMProvider):
    """A provider in a priority group: a name (a policy `sectionName`) and its own policies."""

    name: common.SectionName
    """Provider name, unique within the group; AgentgatewayPolicy targets it as `sectionName`."""

    policies: backendpolicy.BackendWithAI | None = None
    """Policies for this provider; they win over the backend's and AgentgatewayPolicy's."""


def _unique_names(providers: list[NamedLLMProvider]) -> bool:
    names = [p.name for p in providers]
    return len(names) == len(set(names))


class PriorityGroup(base.Model):
    """Providers of equal priority; requests are spread across them by health."""

    providers: Annotated[
        list[NamedLLMProvider],
        pydantic.Field(min_length=1, max_length=16),
        base.Rule(
            "self.all(p1, self.exists_one(p2, p1.name == p2.name))",
            "provider names must be unique within a group",
            _unique_names,
        ),
    ]
    """The providers, 1 to 16, with unique names. Required."""


class AIBackend(base.Model):
    """An LLM backend: exactly one of `provider` or `groups`."""

    __rules__ = (base.exactly_one_of("provider", "groups"),)

    provider: LLMProvider | None = None
    """A single provider."""

    groups: Annotated[list[PriorityGroup], pydantic.Field(min_length=1, max_length=8)] | None = None
    """Priority groups, 1 to 8, tried in order: the next group serves when the previous one has no
    healthy provider."""


# --------------------------------------------------------------------------------------------
# MCP


class McpSelector(base.Model):
    """Selects Services to use as MCP targets."""

    __rules__ = (base.at_least_one_field_set(("namespaces", "services")),)

    namespaces: common.LabelSelector | None = None
    """Namespaces to search. Default: the AgentgatewayBackend's namespace only."""

    services: common.LabelSelector | None = None
    """Services to select in those namespaces."""


class McpTarget(base.Model):
    """A static MCP server: `host` or a same-namespace Service (`backendRef`), and a port."""

    __rules__ = (
        base.Rule(
            "!has(self.backendRef) || !has(self.policies)",
            "mcp target policies may not be used with backendRef",
            lambda s: s.backend_ref is None or s.policies is None,
        ),
        base.exactly_one_of("host", "backendRef"),
    )

    host: common.ShortString | None = None
    """Hostname or IP address."""

    backend_ref: common.LocalObjectReference | None = None
    """A same-namespace Service, replacing `host`."""

    port: common.Port
    """Port, 1 to 65535. Required."""

    path: common.LongString | None = None
    """Endpoint path. Default: `/mcp` for StreamableHTTP, `/sse` for SSE."""

    protocol: Literal["StreamableHTTP", "SSE"] | None = None
    """MCP transport. Default: StreamableHTTP."""

    policies: backendpolicy.BackendSimple | None = None
    """Connection policies for this target (host targets only); they win over the backend's."""


class McpTargetSelector(base.Model):
    """One named MCP target: exactly one of `static` or `selector`."""

    __rules__ = (base.exactly_one_of("selector", "static"),)

    name: common.SectionName
    """Target name, unique in the backend: the tool-name prefix and the policy `sectionName`."""

    selector: McpSelector | None = None
    """Services selected by labels."""

    static: McpTarget | None = None
    """A fixed server."""


class MCPBackend(base.Model):
    """An MCP backend: one MCP endpoint for clients, multiplexing its targets."""

    targets: Annotated[
        list[McpTargetSelector], pydantic.Field(min_length=1, max_length=128), base.ListMap("name")
    ]
    """Targets, 1 to 128, unique by name. Required."""

    session_routing: Literal["Stateful", "Stateless"] | None = None
    """`Stateful` (the default) keeps an MCP session (`mcp-session-id`) on a consistent upstream;
    `Stateless` does not create sessions."""

    failure_mode: Literal["FailClosed", "FailOpen"] | None = None
    """When a target fails: `FailClosed` (the default) fails the session, `FailOpen` skips it."""

    prefix_mode: Literal["Conditional", "Always", "Never"] | None = None
    """Prefixing tool and prompt names with the target name: `Conditional` (the default) only with
    several targets, `Always`, or `Never` (names must then be unique across targets)."""


# --------------------------------------------------------------------------------------------
# The kind


class AgentgatewayBackendSpec(base.Model):
    """Exactly one backend kind, and optional policies."""

    __rules__ = (base.exactly_one_of("ai", "static", "mcp", "a2a"),)

    static: StaticBackend | None = None
    """A plain host and port."""

    a2a: A2ABackend | None = None
    """An A2A agent."""

    ai: AIBackend | None = None
    """An LLM provider or priority groups of providers."""

    mcp: MCPBackend | None = None
    """MCP servers."""

    policies: backendpolicy.BackendFull | None = None
    """Policies for this backend; they win over AgentgatewayPolicy for the same field."""


class AgentgatewayBackendStatus(base.Model):
    """Observed state, written by the controller."""

    conditions: common.Conditions | None = None
    """`Accepted`: True with reason `Accepted` when the backend translated, else False."""


class AgentgatewayBackend(common.Resource):
    """A backend for routes: an LLM provider, MCP servers, an A2A agent or a static host."""

    __crd__ = base.CRDInfo(
        plural="agentgatewaybackends",
        singular="agentgatewaybackend",
        short_names=("agbe",),
        printer_columns=(
            base.PrinterColumn(
                "Accepted",
                ".status.conditions[?(@.type=='Accepted')].status",
                description="Backend configuration acceptance status",
            ),
            base.PrinterColumn(
                "Age", ".metadata.creationTimestamp", type="date", description="The age of the backend."
            ),
        ),
    )

    kind: Literal["AgentgatewayBackend"] = "AgentgatewayBackend"
    spec: AgentgatewayBackendSpec
    """Desired backend configuration."""

    status: AgentgatewayBackendStatus | None = None
    """Current backend status."""
