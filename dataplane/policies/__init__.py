"""Request policies: route filters, and security policies compiled to steps.

Pure (imported by config.compile): `filters` (redirects, rewrites, CORS), `context` (the
RequestContext and the step runner), `cel` and `celfast` (CEL expressions), `credentials`,
`jwt`, `apikey`, `basicauth` (authentication), `extauthz` (external authorization), `authz`
(CEL rules), `ratelimit` (local buckets, remote limits), `transform`, `csrf`.
Runtime (reached through `services`): `jwks` (key set fetching), `blocking` (a thread pool for
bcrypt), `rls` (Envoy RateLimitService client), `extauthz_clients` (gRPC and HTTP clients).
"""
