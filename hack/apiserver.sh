#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called indirectly (trap, wait_for)
# A real kube-apiserver + etcd on 127.0.0.1 for tests, without Docker or kind.
#
#   hack/apiserver.sh build   build kube-apiserver, kubectl and etcd once into the cache
#   hack/apiserver.sh up      start etcd + kube-apiserver; the LAST line of stdout is the kubeconfig path
#   hack/apiserver.sh down    stop both (by PID) and remove the state dir
#   hack/apiserver.sh env     print K8S_VERSION=, KUBECONFIG=, KUBECTL=, K8S_BIN_DIR= (one per line)
#   hack/apiserver.sh status  exit 0 if up and ready
#   hack/apiserver.sh built   exit 0 if the binaries are in the cache (no build)
#   hack/apiserver.sh upstream-crds [standard|experimental|inference]
#                             print a directory of upstream CRDs to `kubectl apply -f`: Gateway API
#                             (standard or experimental channel) or the inference extension
#                             (InferencePool), taken from their Go modules at agentgateway's pins
#
# The binaries are built from the k8s.io/kubernetes Go module (only the Go module proxy is
# needed): a wrapper go.mod requires k8s.io/kubernetes at $K8S_VERSION and replaces every
# staging module (listed at v0.0.0 in its go.mod) with the matching v0.x.y release. etcd is
# go.etcd.io/etcd/server/v3 at the version that k8s.io/kubernetes itself requires. They are
# cached outside the repo in $AGENTGW_CACHE/k8s-$K8S_VERSION/ and reused.
#
# Environment:
#   K8S_VERSION            k8s.io/kubernetes release (default below)
#   AGENTGW_CACHE          cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/agentgw)
#   AGENTGW_APISERVER_DIR  state dir (default: one per user and checkout under ${TMPDIR:-/tmp});
#                          tests set their own to stay independent of a developer's instance
#   ETCD                   use this etcd binary instead of the built one (e.g. /usr/bin/etcd)
#   APISERVER_AUTHZ        --authorization-mode (default RBAC; the admin user is in system:masters)
#
# No kubelet, scheduler or controller-manager: objects are stored and validated (CRD schemas,
# CEL, RBAC, admission), but no pods run, namespaces are never finalized and no default
# ServiceAccount is created in new namespaces.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.1}"  # sigs.k8s.io/gateway-api, as agentgateway pins
INFERENCE_EXT_VERSION="${INFERENCE_EXT_VERSION:-v1.5.0}" # sigs.k8s.io/gateway-api-inference-extension
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${AGENTGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentgw}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION"
ROOT_HASH="$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
STATE_DIR="${AGENTGW_APISERVER_DIR:-${TMPDIR:-/tmp}/agentgw-apiserver-$(id -u)-$ROOT_HASH}"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
KUBECTL="$BIN_DIR/kubectl"
APISERVER_BIN="$BIN_DIR/kube-apiserver"
ETCD_BIN="${ETCD:-$BIN_DIR/etcd}"

BUILD_TIMEOUT="${APISERVER_BUILD_TIMEOUT:-3600}" # seconds, whole build
START_TIMEOUT="${APISERVER_START_TIMEOUT:-60}"   # seconds, per process until ready
STOP_TIMEOUT=15                                  # seconds per process before SIGKILL

log() { printf '%s\n' "apiserver.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------- build

binaries_present() {
  [[ -x "$APISERVER_BIN" && -x "$KUBECTL" && -x "$BIN_DIR/etcd" && -f "$BIN_DIR/.complete" ]]
}

cmd_build() {
  if binaries_present; then
    log "cached: $BIN_DIR"
    return 0
  fi
  command -v go >/dev/null || die "the Go toolchain is required to build kube-apiserver (go not in PATH)"
  mkdir -p "$BIN_DIR"
  # One build at a time per cache dir; a second caller waits and then finds the binaries.
  exec 8>"$BIN_DIR/.lock"
  if command -v flock >/dev/null; then
    flock -w "$BUILD_TIMEOUT" 8 || die "timed out waiting for another build ($BIN_DIR/.lock)"
    if binaries_present; then log "cached: $BIN_DIR"; return 0; fi
  fi

  local minor start src gomod godirective staging
  minor="${K8S_VERSION#v1.}"          # 35.4
  start=$(date +%s)
  src="$BIN_DIR/src"
  rm -rf "$src" && mkdir -p "$src"
  export CGO_ENABLED=0 GOWORK=off
  log "building kube-apiserver, kubectl and etcd from k8s.io/kubernetes@$K8S_VERSION (first time only; several minutes)"

  gomod="$(cd "$src" && timeout "$BUILD_TIMEOUT" go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  godirective="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
  # Every staging module is required at v0.0.0 (its source lives in staging/ of the same tag).
  staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)"
  [[ -n "$staging" ]] || die "no staging modules found in $gomod"

  {
    echo "// Generated by hack/apiserver.sh: builds kube-apiserver, kubectl and etcd."
    echo "module agentgw.local/k8sbin"
    echo
    echo "go $godirective"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m v0.$minor"; done <<<"$staging"
    echo ")"
  } >"$src/go.mod"
  export GOFLAGS="-mod=mod ${GOFLAGS:-}"
  log "wrapper module: $src/go.mod ($(wc -l <<<"$staging") staging modules replaced with v0.$minor)"

  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version" major=1 minornum="${minor%%.*}"
  local date ldflags
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags="-s -w"
  for p in "$pkg" "$cpkg"; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minornum"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  (
    cd "$src"
    # go.etcd.io/etcd/server/v3 is already in k8s.io/kubernetes's module graph (its integration tests
    # embed etcd), so etcd is built at the version kubernetes pins. The package's binary name is "server".
    timeout "$BUILD_TIMEOUT" go build -trimpath -ldflags "$ldflags" -o "$src/out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3
  ) || die "go build failed (see above)"
  mv "$src/out/kube-apiserver" "$APISERVER_BIN"
  mv "$src/out/kubectl" "$KUBECTL"
  mv "$src/out/server" "$BIN_DIR/etcd"
  cp "$src/go.mod" "$src/go.sum" "$BIN_DIR/" 2>/dev/null || true
  rm -rf "$src"
  touch "$BIN_DIR/.complete"
  log "built in $(( $(date +%s) - start ))s: $("$APISERVER_BIN" --version), $("$BIN_DIR/etcd" --version | head -1)"
  log "cache: $BIN_DIR ($(du -sh "$BIN_DIR" | cut -f1))"
}

# ---------------------------------------------------------------------------------- helpers

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pid_alive PID: true if PID runs a process whose command line mentions our state dir.
pid_alive() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR"
}

kubectl_() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=5s "$@"; }

is_ready() {
  [[ -f "$KUBECONFIG_PATH" ]] || return 1
  pid_alive "$(cat "$STATE_DIR/etcd.pid" 2>/dev/null)" || return 1
  pid_alive "$(cat "$STATE_DIR/kube-apiserver.pid" 2>/dev/null)" || return 1
  [[ "$(kubectl_ get --raw /readyz 2>/dev/null)" == ok ]]
}

stop_pid() { # stop_pid NAME
  local name="$1" pidfile="$STATE_DIR/$1.pid" pid i
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      log "$name (pid $pid) did not stop in ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

show_logs() {
  local f
  for f in "$STATE_DIR"/etcd.log "$STATE_DIR"/kube-apiserver.log; do
    [[ -f "$f" ]] || continue
    log "---- last 40 lines of $f"
    tail -n 40 "$f" >&2
  done
}

# ---------------------------------------------------------------------------------- certs

gen_pki() {
  local p="$STATE_DIR/pki"
  mkdir -p "$p"
  (
    cd "$p"
    exec 2>>"$STATE_DIR/openssl.log" >&2
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=agentgw-test-ca" -days 3650 -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    # apiserver serving cert
    openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    # admin client cert: CN is the user name, O the group (system:masters bypasses RBAC)
    openssl ecparam -name prime256v1 -genkey -noout -out admin.key
    openssl req -new -key admin.key -subj "/O=system:masters/CN=agentgw-admin" -out admin.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt
    # service-account token signing key pair
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) || die "openssl failed: $(tail -5 "$STATE_DIR/openssl.log")"
}

write_kubeconfig() { # write_kubeconfig PORT
  local p="$STATE_DIR/pki"
  b64() { base64 -w0 <"$1"; }
  cat >"$KUBECONFIG_PATH.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentgw-test
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority-data: $(b64 "$p/ca.crt")
users:
- name: agentgw-admin
  user:
    client-certificate-data: $(b64 "$p/admin.crt")
    client-key-data: $(b64 "$p/admin.key")
contexts:
- name: agentgw-test
  context:
    cluster: agentgw-test
    user: agentgw-admin
    namespace: default
current-context: agentgw-test
EOF
  chmod 600 "$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
}

# ---------------------------------------------------------------------------------- up / down

# wait_for NAME SECONDS CMD...: poll CMD every 0.2s until it succeeds; fail if the process died.
wait_for() {
  local name="$1" secs="$2" i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    pid_alive "$(cat "$STATE_DIR/$name.pid" 2>/dev/null)" || { log "$name exited"; return 1; }
    sleep 0.2
  done
  log "$name not ready after ${secs}s"
  return 1
}

etcd_healthy() { # etcd_healthy PORT
  python3 - "$1" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
    sys.exit(0 if json.load(r).get("health") == "true" else 1)
EOF
}

apiserver_ready() { [[ "$(kubectl_ get --raw /readyz 2>/dev/null)" == ok ]] && kubectl_ get namespace default; }

start_failed() {
  log "start failed; state dir $STATE_DIR"
  show_logs
  stop_pid kube-apiserver
  stop_pid etcd
  exit 1
}

cmd_up() {
  command -v openssl >/dev/null || die "openssl is required"
  command -v python3 >/dev/null || die "python3 is required"
  cmd_build
  [[ -x "$ETCD_BIN" ]] || die "etcd binary not found: $ETCD_BIN"
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  if command -v flock >/dev/null; then
    flock -w $((START_TIMEOUT * 2 + STOP_TIMEOUT * 2)) 9 || die "timed out waiting for $STATE_DIR.lock"
  fi

  if is_ready; then
    log "already up: $STATE_DIR"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  if [[ -d "$STATE_DIR" ]]; then
    log "stale state in $STATE_DIR: stopping what is left and starting again"
    stop_pid kube-apiserver
    stop_pid etcd
    rm -rf "$STATE_DIR"
  fi
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  log "state dir: $STATE_DIR"
  trap start_failed ERR

  gen_pki
  local p="$STATE_DIR/pki" etcd_port peer_port api_port
  etcd_port="$(free_port)"
  peer_port="$(free_port)"
  api_port="$(free_port)"

  local etcd_args=(
    --name agentgw --data-dir "$STATE_DIR/etcd"
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port"
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port"
    --initial-cluster "agentgw=http://127.0.0.1:$peer_port" --initial-cluster-state new
    --log-level warn --quota-backend-bytes 2147483648
  )
  # etcd >= 3.5 (the built one) can skip fsync: a test cluster loses nothing worth keeping.
  if "$ETCD_BIN" --help 2>&1 | grep -q -- --unsafe-no-fsync; then etcd_args+=(--unsafe-no-fsync); fi
  # --logger zap is the default from 3.5 on, and required for --log-level warn on 3.4 (Debian)
  if "$ETCD_BIN" --help 2>&1 | grep -q -- "--logger 'capnslog'"; then etcd_args+=(--logger zap); fi
  setsid "$ETCD_BIN" "${etcd_args[@]}" </dev/null >"$STATE_DIR/etcd.log" 2>&1 8>&- 9>&- &
  echo $! >"$STATE_DIR/etcd.pid"
  wait_for etcd "$START_TIMEOUT" etcd_healthy "$etcd_port"
  log "etcd up on 127.0.0.1:$etcd_port (pid $(cat "$STATE_DIR/etcd.pid"))"

  write_kubeconfig "$api_port"
  setsid "$APISERVER_BIN" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$STATE_DIR/certs" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode "${APISERVER_AUTHZ:-RBAC}" \
    --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none \
    </dev/null >"$STATE_DIR/kube-apiserver.log" 2>&1 8>&- 9>&- &
  echo $! >"$STATE_DIR/kube-apiserver.pid"
  wait_for kube-apiserver "$START_TIMEOUT" apiserver_ready
  trap - ERR
  log "kube-apiserver $K8S_VERSION up on https://127.0.0.1:$api_port (pid $(cat "$STATE_DIR/kube-apiserver.pid"))"
  echo "$KUBECONFIG_PATH"
}

cmd_down() {
  if [[ ! -d "$STATE_DIR" ]]; then
    log "not up ($STATE_DIR does not exist)"
    return 0
  fi
  exec 9>"$STATE_DIR.lock"
  if command -v flock >/dev/null; then flock -w $((STOP_TIMEOUT * 2 + 30)) 9 || true; fi
  stop_pid kube-apiserver
  stop_pid etcd
  rm -rf "$STATE_DIR"
  rm -f "$STATE_DIR.lock"
  log "stopped; removed $STATE_DIR"
}

# ---------------------------------------------------------------------------------- upstream CRDs

cmd_upstream_crds() {
  local kind="${1:-standard}" module version sub pattern dest dir
  case "$kind" in
    standard | experimental)
      module=sigs.k8s.io/gateway-api version="$GATEWAY_API_VERSION"
      sub="config/crd/$kind" pattern='gateway.networking*.yaml' ;;
    inference)
      module=sigs.k8s.io/gateway-api-inference-extension version="$INFERENCE_EXT_VERSION"
      sub=config/crd/bases pattern='inference.networking*.yaml' ;;
    *) die "upstream-crds: expected standard, experimental or inference, got '$kind'" ;;
  esac
  dest="$CACHE_ROOT/crds/${module##*/}-$version/$kind"
  if [[ ! -f "$dest/.complete" ]]; then
    command -v go >/dev/null || die "the Go toolchain is required to download $module"
    dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS="" GOWORK=off timeout 600 go mod download -json "$module@$version" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -d "$dir/$sub" ]] || die "could not download $module@$version from the Go module proxy"
    rm -rf "$dest" && mkdir -p "$dest"
    find "$dir/$sub" -maxdepth 1 -name "$pattern" -exec cp {} "$dest/" \;
    chmod 644 "$dest"/*.yaml
    touch "$dest/.complete"
  fi
  echo "$dest"
}

cmd_env() {
  echo "K8S_VERSION=$K8S_VERSION"
  echo "KUBECONFIG=$KUBECONFIG_PATH"
  echo "KUBECTL=$KUBECTL"
  echo "K8S_BIN_DIR=$BIN_DIR"
}

# Everything above is functions and constants, so bash has parsed the whole file before it runs
# anything: editing this script while a build runs cannot change what that run does.
main() {
  case "${1:-}" in
    build) cmd_build ;;
    built) binaries_present ;;
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) is_ready ;;
    upstream-crds) cmd_upstream_crds "${2:-standard}" ;;
    *)
      awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0" >&2
      exit 2
      ;;
  esac
}

main "$@"
exit
