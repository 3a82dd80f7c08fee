#!/usr/bin/env bash
# End to end on kind: the helm chart, the seed manifests, and one chat request through the proxy.
#
# The same flow as e2e/test_helm_install.py + e2e/test_k8s_seed.py, but on a real cluster with a
# kubelet, so the controller and the proxy run as pods from an image:
#
#   1. kind create cluster (name $KIND_CLUSTER)
#   2. kind load docker-image $AGENTGW_IMAGE (and $FAKE_OPENAI_IMAGE if it differs)
#   3. Gateway API CRDs v1.6.1 (standard channel) from e2e/gateway-api/
#   4. helm install agentgw charts/agentgw -n agentgw-system --create-namespace, with that image
#      for the controller and for the proxies it deploys; wait for the controller rollout
#   5. a fake OpenAI Deployment + Service (python3 stdlib, from $FAKE_OPENAI_IMAGE) and the seed
#      manifests (api/tests/testdata/valid/seed-001-openai.yaml: Gateway, Secret,
#      AgentgatewayBackend `openai`, HTTPRoute `/openai`) with the backend's host/port pointed at
#      the fake and a known key in the Secret
#   6. wait for the Gateway to be Programmed and its proxy Deployment to roll out
#   7. kubectl port-forward the proxy Service, POST /openai/chat/completions with curl, and check
#      the reply came from the fake (which also checks the Secret's key arrived as the bearer token)
#   8. cleanup: stop the port-forward (by PID) and `kind delete cluster` (KEEP_CLUSTER=1 keeps it)
#
# Needs: docker (a running daemon), kind, kubectl, helm (`make tools`), curl, python3.
#
# Build the image from the repository's Dockerfile first (it holds both programs on PATH and
# `python3`, and runs as uid 10101 as the chart and the deployer expect, with a read-only root
# filesystem and an emptyDir on /tmp):
#
#   docker build -t agentgw:dev . && AGENTGW_IMAGE=agentgw:dev hack/kind-e2e.sh
#
# The image is loaded into kind, so it need not be in a registry; use a name:tag reference (not a
# digest). The chart gets it as image.registry="" image.repository=<name> image.tag=<tag>.
#
# Environment:
#   AGENTGW_IMAGE      required: the agentgw image (name:tag), present in the local docker daemon
#   FAKE_OPENAI_IMAGE  image with python3 for the fake OpenAI server (default: $AGENTGW_IMAGE)
#   KIND_CLUSTER       kind cluster name (default agentgw-e2e); must not exist yet
#   KIND_NODE_IMAGE    kindest/node image (default: kind's own default)
#   KEEP_CLUSTER       1 keeps the cluster at the end (default: delete it)
#   WAIT               seconds for each wait (default 180)
#   HELM, KUBECTL, KIND  binaries (default: from PATH; helm also from ~/go/bin)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-agentgw-e2e}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
WAIT="${WAIT:-180}"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
if [[ -z "${HELM:-}" ]]; then
  HELM="$(command -v helm || true)"
  [[ -n "$HELM" ]] || HELM="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/helm"
fi

RELEASE=agentgw
RELEASE_NS=agentgw-system
NS=agentgateway-system          # the seed manifests' namespace
GATEWAY=agentgateway-proxy
KEY=sk-kind-e2e                 # goes into the Secret; the fake accepts only "Bearer $KEY"
REPLY="hi from the fake openai" # what the fake answers

log() { printf '%s\n' "kind-e2e: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------- checks

[[ -n "${AGENTGW_IMAGE:-}" ]] || die "set AGENTGW_IMAGE to an agentgw image (name:tag) in the local docker daemon; see the header of $0"
FAKE_OPENAI_IMAGE="${FAKE_OPENAI_IMAGE:-$AGENTGW_IMAGE}"
[[ "$AGENTGW_IMAGE" != *@* ]] || die "AGENTGW_IMAGE: use name:tag, not a digest"
for tool in docker "$KIND" "$KUBECTL" "$HELM" curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found (helm: make tools; kind: https://kind.sigs.k8s.io)"
done
timeout 30 docker info >/dev/null 2>&1 || die "docker daemon not reachable"
for image in "$AGENTGW_IMAGE" "$FAKE_OPENAI_IMAGE"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image not in the local docker daemon (docker build/pull it first)"
done
if "$KIND" get clusters 2>/dev/null | grep -qx -- "$KIND_CLUSTER"; then
  die "kind cluster $KIND_CLUSTER exists already (delete it, or set KIND_CLUSTER)"
fi

# name:tag -> repository and tag (a registry port such as host:5000/x has a / after its colon)
IMAGE_REPOSITORY="$AGENTGW_IMAGE"
IMAGE_TAG=latest
last="${AGENTGW_IMAGE##*/}"
if [[ "$last" == *:* ]]; then
  IMAGE_TAG="${last##*:}"
  IMAGE_REPOSITORY="${AGENTGW_IMAGE%:*}"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/agentgw-kind-e2e.XXXXXX")"
export KUBECONFIG="$WORK/kubeconfig"
PF_PID=""
CREATED=0

k() { timeout "$((WAIT + 30))" "$KUBECTL" --request-timeout=30s "$@"; }

diagnostics() {
  log "---- diagnostics"
  k get gatewayclasses,gateways,httproutes,agentgatewaybackends -A -o wide >&2 || true
  k get deployments,pods,services -n "$RELEASE_NS" -o wide >&2 || true
  k get deployments,pods,services -n "$NS" -o wide >&2 || true
  k get gateway "$GATEWAY" -n "$NS" -o yaml >&2 || true
  k logs -n "$RELEASE_NS" "deployment/$RELEASE" --tail=80 >&2 || true
  k logs -n "$NS" -l "gateway.networking.k8s.io/gateway-name=$GATEWAY" --tail=80 >&2 || true
  k logs -n "$NS" deployment/fake-openai --tail=40 >&2 || true
  [[ -f "$WORK/port-forward.log" ]] && tail -n 20 "$WORK/port-forward.log" >&2
  return 0
}

cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n "$PF_PID" ]] && kill -0 "$PF_PID" 2>/dev/null; then
    kill "$PF_PID" 2>/dev/null || true
    wait "$PF_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && ((CREATED)); then diagnostics; fi
  if ((CREATED)); then
    if [[ "$KEEP_CLUSTER" == 1 ]]; then
      log "keeping cluster $KIND_CLUSTER (kubeconfig: $KUBECONFIG; delete with: $KIND delete cluster --name $KIND_CLUSTER)"
    else
      log "deleting kind cluster $KIND_CLUSTER"
      timeout 120 "$KIND" delete cluster --name "$KIND_CLUSTER" || log "kind delete cluster failed"
      rm -rf "$WORK"
    fi
  else
    rm -rf "$WORK"
  fi
  if ((rc == 0)); then log "PASS"; else log "FAIL (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS WHAT CMD...: run CMD every 2s until it succeeds.
wait_until() {
  local secs="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
    sleep 2
  done
}

# ---------------------------------------------------------------------------------- 1-2 cluster

log "creating kind cluster $KIND_CLUSTER"
node_image=()
[[ -n "${KIND_NODE_IMAGE:-}" ]] && node_image=(--image "$KIND_NODE_IMAGE")
CREATED=1
timeout "$((WAIT + 120))" "$KIND" create cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG" \
  --wait "${WAIT}s" "${node_image[@]}"

log "loading $AGENTGW_IMAGE into kind"
timeout "$((WAIT + 120))" "$KIND" load docker-image "$AGENTGW_IMAGE" --name "$KIND_CLUSTER"
if [[ "$FAKE_OPENAI_IMAGE" != "$AGENTGW_IMAGE" ]]; then
  timeout "$((WAIT + 120))" "$KIND" load docker-image "$FAKE_OPENAI_IMAGE" --name "$KIND_CLUSTER"
fi

# ---------------------------------------------------------------------------------- 3-4 CRDs and chart

log "installing the Gateway API CRDs (v1.6.1, standard channel) from e2e/gateway-api"
k apply --server-side -f "$ROOT/e2e/gateway-api"
k wait --for=condition=Established --timeout="${WAIT}s" crd --all

log "helm install $RELEASE charts/agentgw (image $IMAGE_REPOSITORY:$IMAGE_TAG)"
timeout "$((WAIT + 60))" "$HELM" install "$RELEASE" "$ROOT/charts/agentgw" \
  -n "$RELEASE_NS" --create-namespace \
  --set-string image.registry= \
  --set-string "image.repository=$IMAGE_REPOSITORY" \
  --set-string "image.tag=$IMAGE_TAG" \
  --set-string image.pullPolicy=IfNotPresent \
  --set-string proxy.image.pullPolicy=IfNotPresent \
  --wait --timeout "${WAIT}s"
k rollout status -n "$RELEASE_NS" "deployment/$RELEASE" --timeout="${WAIT}s"
for class in agentgateway agentgateway-v2; do
  [[ "$(k get gatewayclass "$class" -o jsonpath='{.spec.controllerName}')" == agentgateway.dev/agentgateway ]] ||
    die "GatewayClass $class missing or not ours"
done
k wait --for=condition=Accepted --timeout="${WAIT}s" gatewayclass/agentgateway-v2

# ---------------------------------------------------------------------------------- 5 fake OpenAI + seed

log "deploying the fake OpenAI server and the seed manifests in $NS"
k create namespace "$NS"
k apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: fake-openai
  namespace: $NS
data:
  server.py: |
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path != "/v1/chat/completions":
                return self.reply(404, {"error": {"message": "no route " + self.path}})
            if self.headers.get("Authorization") != "Bearer $KEY":
                return self.reply(401, {"error": {"message": "bad key"}})
            self.reply(200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "$REPLY"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            })

        def do_GET(self):
            self.reply(200, {"ok": True})

        def reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fake-openai
  namespace: $NS
spec:
  replicas: 1
  selector:
    matchLabels: {app: fake-openai}
  template:
    metadata:
      labels: {app: fake-openai}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10101}
      containers:
        - name: server
          image: $FAKE_OPENAI_IMAGE
          imagePullPolicy: IfNotPresent
          command: [python3, -u, /app/server.py]
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            periodSeconds: 2
          volumeMounts: [{name: app, mountPath: /app}]
      volumes: [{name: app, configMap: {name: fake-openai}}]
---
apiVersion: v1
kind: Service
metadata:
  name: fake-openai
  namespace: $NS
spec:
  selector: {app: fake-openai}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
# The seed (api/tests/testdata/valid/seed-001-openai.yaml), with a known key in the Secret and the
# backend's host/port pointed at the fake, as e2e/test_k8s_seed.py does.
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: $GATEWAY
  namespace: $NS
spec:
  gatewayClassName: agentgateway-v2
  listeners:
  - protocol: HTTP
    port: 80
    name: http
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: v1
kind: Secret
metadata:
  name: openai-secret
  namespace: $NS
type: Opaque
stringData:
  Authorization: $KEY
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: openai
  namespace: $NS
spec:
  ai:
    provider:
      openai:
        model: gpt-4o
      host: fake-openai.$NS.svc.cluster.local
      port: 8080
  policies:
    auth:
      secretRef:
        name: openai-secret
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: openai
  namespace: $NS
spec:
  parentRefs:
  - name: $GATEWAY
    namespace: $NS
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /openai
    backendRefs:
    - name: openai
      namespace: $NS
      group: agentgateway.dev
      kind: AgentgatewayBackend
EOF
k rollout status -n "$NS" deployment/fake-openai --timeout="${WAIT}s"

# ---------------------------------------------------------------------------------- 6 statuses + proxy

log "waiting for the Gateway, the HTTPRoute and the proxy Deployment"
k wait --for=condition=Accepted --timeout="${WAIT}s" -n "$NS" "gateway/$GATEWAY"
k wait --for=condition=Programmed --timeout="${WAIT}s" -n "$NS" "gateway/$GATEWAY"
k wait --for=condition=Accepted --timeout="${WAIT}s" -n "$NS" agentgatewaybackend/openai
route_accepted() {
  [[ "$(k get httproute openai -n "$NS" \
    -o jsonpath='{.status.parents[*].conditions[?(@.type=="Accepted")].status}')" == *True* ]]
}
wait_until "$WAIT" "HTTPRoute openai Accepted" route_accepted

selector="gateway.networking.k8s.io/gateway-name=$GATEWAY"
proxy_deployment() { [[ -n "$(k get deployment -n "$NS" -l "$selector" -o name)" ]]; }
wait_until "$WAIT" "the proxy Deployment of $GATEWAY" proxy_deployment
deployment="$(k get deployment -n "$NS" -l "$selector" -o name | head -1)"
k rollout status -n "$NS" "$deployment" --timeout="${WAIT}s"
service="$(k get service -n "$NS" -l "$selector" -o name | head -1)"
[[ -n "$service" ]] || die "no Service labelled $selector"
log "proxy: $deployment, $service"

# ---------------------------------------------------------------------------------- 7 a chat request

local_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
"$KUBECTL" port-forward -n "$NS" "$service" "$local_port:80" --address 127.0.0.1 \
  >"$WORK/port-forward.log" 2>&1 &
PF_PID=$!
port_forwarding() { kill -0 "$PF_PID" && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$local_port/"; }
wait_until 60 "kubectl port-forward to $service" port_forwarding

request='{"model": "whatever", "messages": [{"role": "user", "content": "Explain agent gateways"}]}'
chat() {
  curl -sS --fail-with-body --max-time 10 -o "$WORK/reply.json" -w '%{http_code}\n' \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer client-key' \
    -d "$request" "http://127.0.0.1:$local_port/openai/chat/completions"
}
# Retried: the proxy may get its route over xDS a moment after it became ready.
wait_until 60 "a 200 from POST /openai/chat/completions" chat
log "reply: $(cat "$WORK/reply.json")"
grep -qF "\"$REPLY\"" "$WORK/reply.json" || die "the reply did not come from the fake OpenAI server"
grep -qF '"gpt-4o"' "$WORK/reply.json" || die "the backend's model gpt-4o was not sent upstream"
log "a chat request went client -> port-forward -> proxy -> fake OpenAI (with the Secret's key) and back"
