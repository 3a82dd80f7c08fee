"""Gateway API condition types and reasons, spelled as the spec (v1.6) spells them.

Used by `controller.translate` when it writes `status` on GatewayClasses, Gateways (and their
listeners) and HTTPRoutes, and by tests that read it back. Where a type and a reason are the same
word (`Accepted`), one constant serves both.
"""

from __future__ import annotations

# Condition types
ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"
PARTIALLY_INVALID = "PartiallyInvalid"

# GatewayClass reasons
INVALID_PARAMETERS = "InvalidParameters"

# Gateway reasons
LISTENERS_NOT_VALID = "ListenersNotValid"
INVALID = "Invalid"

# Listener reasons
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
NO_CONFLICTS = "NoConflicts"
HOSTNAME_CONFLICT = "HostnameConflict"
PROTOCOL_CONFLICT = "ProtocolConflict"
INVALID_ROUTE_KINDS = "InvalidRouteKinds"

# Route reasons: Accepted
NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
NO_MATCHING_PARENT = "NoMatchingParent"
UNSUPPORTED_VALUE = "UnsupportedValue"

# Route reasons: ResolvedRefs
BACKEND_NOT_FOUND = "BackendNotFound"
REF_NOT_PERMITTED = "RefNotPermitted"
INVALID_KIND = "InvalidKind"

# agentgateway.dev reasons (AgentgatewayBackend)
TRANSLATION_ERROR = "TranslationError"
"""agentgateway's reason for a backend that could not be translated (a missing Secret, ...)."""
