#!/usr/bin/env bash
# Policy cost benchmark (`make bench-policies`).
#
# Measures, in one run on 127.0.0.1, the req/s of one agentgw process (1 worker) on four routes of the
# same config, selected by path prefix, all proxying to the same upstream:
#   /plain      no policy (the reference)
#   /jwt        jwtAuth strict, inline JWKS with an RS256 key generated here; every request carries the
#               same valid token, so after the first request the proxy answers from its cache of verified
#               tokens (the realistic steady state for a client reusing its token)
#   /authz      authorization with 3 CEL rules: require method == GET, require x-team in ["a","b"],
#               allow path.startsWith("/authz")
#   /ratelimit  localRateLimit with a bucket far larger than the run can drain (10^8 tokens per 1 s):
#               the cost of the check, never a refusal
# The upstream is nginx (1 worker) answering `return 200` with a fixed ~100-byte JSON body, as in
# bench/http. Every wrk request, on every route, carries the same headers (`authorization: Bearer
# <token>` and `x-team: a`), so the routes differ only by their policy.
#
# Before loading, each route is checked once: 200 with the upstream's body with the headers; and each
# policy is checked to be active (/jwt without a token and with a tampered one -> 401, /authz with
# x-team: c -> 403). Then a 2 s warm-up per route, then 5 rounds of `wrk -t1 -c32 -d6s --latency` over
# the four routes, interleaved (the order rotates each round): on this shared 2-core machine req/s
# moves by 2x between consecutive runs when other work runs, and many short interleaved runs give
# a steadier median than a few long ones. At the end the proxy's /metrics are scraped: the per-route
# status counts show that nothing was refused under load (no 401/403/429).
# bench/policies/report.py prints the median req/s per route, its p50/p99, the cost
# 1 - policy/plain and a PASS/FAIL line per policy against the target: each costs <= 15% of throughput.
# The exit status is 0 when every step ran, whatever the PASS/FAIL lines say. A full run takes about
# 2.5 minutes.
#
# Environment:
#   BENCH_QUICK=1       smoke test: one round of 3 s runs after a 1 s warm-up (about 30 s)
#   BENCH_ROUNDS=N      number of rounds (default 5; 1 with BENCH_QUICK)
#   BENCH_DURATION=S    seconds per wrk run (default 6; 3 with BENCH_QUICK)
#
# Every process is started in the background in its own process group; its PID is recorded and the
# group is stopped on exit (also on failure or Ctrl-C). Configs, keys and logs live in a mktemp -d
# directory that is removed at the end; raw wrk outputs, the metrics scrape and the summary are kept
# in bench/results/policies-<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/policies
PY=$ROOT/.venv/bin/python
AGENTGW=$ROOT/.venv/bin/agentgw-proxy

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then ROUNDS=1 DUR=3 WARMUP=1; else ROUNDS=5 DUR=6 WARMUP=2; fi
ROUNDS=${BENCH_ROUNDS:-$ROUNDS} DUR=${BENCH_DURATION:-$DUR}
THREADS=1 CONNS=32   # wrk load, the same for every route
READY_TIMEOUT=30     # seconds to wait for a server to answer
ROUTES=(plain jwt authz ratelimit)
PATHS=${BENCH_PATHS:-varied}  # varied: a new path per request; same: one path per route

for tool in wrk nginx curl setsid timeout; do
  command -v "$tool" >/dev/null || { echo "bench-policies: '$tool' is not installed (apt-get install -y wrk nginx-light curl)" >&2; exit 1; }
done
if ! "$AGENTGW" --help >/dev/null 2>&1; then
  echo "bench-policies: $AGENTGW --help fails; run 'make install'" >&2
  exit 1
fi

TMP=$(mktemp -d -t agentgw-bench-policies.XXXXXX)
RES=$ROOT/bench/results/policies-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"

BENCH_NAME=bench-policies
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- key, token, configs ------------------------------------------------------------------------

ISSUER=https://issuer.bench
# An RS256 key pair: the public half as an inline JWKS, the private half signs one token valid for 1 h.
"$PY" - "$TMP" "$ISSUER" <<'EOF'
import json, pathlib, sys, time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

out, issuer = pathlib.Path(sys.argv[1]), sys.argv[2]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "bench", "alg": "RS256", "use": "sig"})
(out / "jwks.json").write_text(json.dumps({"keys": [jwk]}, separators=(",", ":")))
claims = {"iss": issuer, "sub": "bench", "aud": "agentgw", "exp": int(time.time()) + 3600}
(out / "token").write_text(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"}))
EOF
JWKS=$(<"$TMP/jwks.json")
TOKEN=$(<"$TMP/token")
[[ $JWKS != *"'"* ]] || { log "the JWKS cannot go in a single-quoted YAML string"; exit 1; }
AUTH_HEADER="authorization: Bearer $TOKEN"
TEAM_HEADER="x-team: a"

BODY='{"id":"bench-0001","object":"chat.completion","model":"bench","choices":[{"index":0,"finish_reason":"stop"}]}'

read -r UP_PORT PORT ADMIN_PORT STATS_PORT READY_PORT < <(free_ports 5)

mkdir -p "$TMP/upstream/tmp"
cat >"$TMP/upstream/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 65s;
    client_body_temp_path $TMP/upstream/tmp/body;
    proxy_temp_path $TMP/upstream/tmp/proxy;
    fastcgi_temp_path $TMP/upstream/tmp/fastcgi;
    uwsgi_temp_path $TMP/upstream/tmp/uwsgi;
    scgi_temp_path $TMP/upstream/tmp/scgi;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
EOF

# route NAME POLICIES_YAML: one route matching the path prefix /NAME; POLICIES_YAML is a flow mapping.
route() {
  cat <<EOF
    - name: $1
      matches: [{path: {pathPrefix: /$1}}]
      policies: $2
      backends:
      - host: 127.0.0.1:$UP_PORT
EOF
}

{
  cat <<EOF
config:
  adminAddr: 127.0.0.1:$ADMIN_PORT
  statsAddr: 127.0.0.1:$STATS_PORT
  readinessAddr: 127.0.0.1:$READY_PORT
binds:
- port: $PORT
  listeners:
  - name: bench
    routes:
EOF
  route plain "{}"
  route jwt "{jwtAuth: {mode: strict, issuer: '$ISSUER', audiences: [agentgw], jwks: '$JWKS'}}"
  route authz "{authorization: {rules: [
        {require: 'request.method == \"GET\"'},
        {require: 'request.headers[\"x-team\"] in [\"a\", \"b\"]'},
        {allow: 'request.path.startsWith(\"/authz\")'}]}}"
  route ratelimit "{localRateLimit: [{maxTokens: 100000000, tokensPerFill: 100000000, fillInterval: 1s}]}"
} >"$TMP/agentgw.yaml"

# ---- run ----------------------------------------------------------------------------------------

{
  meta_common
  echo "mode=$ROUNDS round(s) of ${DUR}s per route, interleaved; ${WARMUP}s warm-up per route"
  echo "wrk=wrk -t$THREADS -c$CONNS -d${DUR}s --latency, headers authorization (JWT) and x-team on every route, paths $PATHS"
  echo "versions=$(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$PY" -V 2>&1)"
} >"$RES/meta.txt"

nginx -t -q -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf"
start upstream /dev/null nginx -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf"
wait_http "http://127.0.0.1:$UP_PORT/" "$STARTED_PID"

start agentgw /dev/null "$AGENTGW" -f "$TMP/agentgw.yaml" --workers 1
AGW_PID=$STARTED_PID
wait_http "http://127.0.0.1:$READY_PORT/healthz/ready" "$STARTED_PID"

BASE=http://127.0.0.1:$PORT

# expect STATUS PATH CURL_ARGS...: fail unless GET PATH answers STATUS.
expect() {
  local want=$1 path=$2 got; shift 2
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$BASE$path" || true)
  [[ $got == "$want" ]] || { log "check failed: $path $* -> $got, want $want"; return 1; }
}
for r in "${ROUTES[@]}"; do
  body=$(curl -sS --max-time 5 -H "$AUTH_HEADER" -H "$TEAM_HEADER" "$BASE/$r")
  [[ $body == "$BODY" ]] || { log "/$r: unexpected body: ${body:0:200}"; exit 1; }
done
expect 401 /jwt -H "$TEAM_HEADER"
expect 401 /jwt -H "${AUTH_HEADER}x" -H "$TEAM_HEADER"
expect 403 /authz -H "$AUTH_HEADER" -H "x-team: c"
log "checks passed: every route answers 200 with the headers; /jwt and /authz refuse without them"

# Every request gets its own path (/ROUTE/1, /ROUTE/2, ...) unless BENCH_PATHS=same: CEL results
# are remembered per distinct input, so identical requests would measure that memo, not CEL.
cat >"$TMP/varied.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "/" .. counter)
end
LUA
WRK_SCRIPT=()
if [[ $PATHS == varied ]]; then WRK_SCRIPT=(-s "$TMP/varied.lua"); fi

# cpu_ticks PID: user + system CPU clock ticks the process has used (/proc/PID/stat fields 14, 15).
cpu_ticks() {
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
TICKS_PER_SECOND=$(getconf CLK_TCK)

# load ROUTE SECONDS OUT: wrk on /ROUTE with the shared headers; the proxy's CPU seconds during the
# run go to OUT with .txt replaced by .cpu (the CPU time per request does not depend on what else
# the machine runs, unlike req/s).
load() {
  local before after
  before=$(cpu_ticks "$AGW_PID")
  timeout -k 5 $(($2 + 30)) wrk -t$THREADS -c$CONNS -d"$2"s --latency "${WRK_SCRIPT[@]}" \
    -H "$AUTH_HEADER" -H "$TEAM_HEADER" "$BASE/$1" >"$3"
  after=$(cpu_ticks "$AGW_PID")
  if [[ $3 != /dev/null ]]; then
    awk -v t=$((after - before)) -v hz="$TICKS_PER_SECOND" 'BEGIN { printf "%.3f\n", t / hz }' >"${3%.txt}.cpu"
  fi
}

for r in "${ROUTES[@]}"; do
  log "/$r: warm-up ${WARMUP}s"
  load "$r" "$WARMUP" /dev/null
done
n=${#ROUTES[@]}
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    r=${ROUTES[$(((i + round - 1) % n))]}
    log "/$r: wrk -t$THREADS -c$CONNS -d${DUR}s --latency (round $round/$ROUNDS)"
    load "$r" "$DUR" "$RES/$r.wrk$round.txt"
    grep -E 'Requests/sec' "$RES/$r.wrk$round.txt" >&2
  done
done

curl -sS --max-time 10 "http://127.0.0.1:$STATS_PORT/metrics" >"$RES/metrics.txt"
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/meta.txt"

"$PY" "$HERE/report.py" "$RES" | tee "$RES/summary.md"
log "raw outputs: ${RES#"$ROOT"/}"
