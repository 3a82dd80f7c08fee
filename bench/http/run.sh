#!/usr/bin/env bash
# HTTP proxy benchmark (`make bench-http`).
#
# Measures, in one run on 127.0.0.1, the throughput and latency of a plain HTTP/1.1 GET through:
#   direct      wrk -> upstream
#   nginx 1w    wrk -> nginx reverse proxy (1 worker, keepalive upstream pool) -> upstream
#   agentgw 1w  wrk -> .venv/bin/agentgw-proxy --workers 1 -> upstream
#   agentgw 2w  wrk -> .venv/bin/agentgw-proxy --workers 2 -> upstream
# The upstream is nginx (1 worker) answering `return 200` with a fixed ~100-byte JSON body.
#
# Per target: a 2 s wrk warm-up, then `wrk -t2 -c64 -d10s --latency` three times (the median req/s
# run is kept, with its p50/p99), then a fixed-rate latency test at 1,000 req/s for 10 s
# (`hey -z 10s -c 10 -q 100`, or bench/http/fixed_rate.py when hey is not installed), and with hey
# also the same rate evenly spaced by bench/http/fixed_rate.py (hey's 10 workers send in bursts).
# bench/http/report.py prints the table and the PASS/FAIL lines for the targets:
#   agentgw 1w req/s >= 0.5 x nginx 1w req/s;  agentgw p99 <= 2 ms at 1,000 req/s.
# The exit status is 0 when every step ran, whatever the PASS/FAIL lines say.
#
# Environment:
#   BENCH_QUICK=1            smoke test: one 3 s wrk run per target, 3 s fixed-rate test
#   BENCH_FIXED=python       use bench/http/fixed_rate.py even if hey is installed
#   BENCH_AGENTGW_STANDIN=1  put nginx (1 or 2 workers) in the agentgw slots, to debug the harness
#
# Every process is started in the background in its own process group; its PID is recorded and the
# group is stopped on exit (also on failure or Ctrl-C). Configs and logs live in a mktemp -d directory
# that is removed at the end; raw wrk/hey outputs and the table are kept in bench/results/http-<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/http
PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || PY=python3
AGENTGW=$ROOT/.venv/bin/agentgw-proxy

QUICK=${BENCH_QUICK:-0}
STANDIN=${BENCH_AGENTGW_STANDIN:-0}
if [[ $QUICK == 1 ]]; then RUNS=1 DUR=3 FIXED_DUR=3; else RUNS=3 DUR=10 FIXED_DUR=10; fi
WARMUP=2
THREADS=2 CONNS=64               # wrk load
FIXED_CONNS=10 FIXED_PER_CONN=100 # 10 x 100 req/s = 1,000 req/s
READY_TIMEOUT=30                 # seconds to wait for a server to answer

for tool in wrk nginx curl setsid timeout; do
  command -v "$tool" >/dev/null || { echo "bench-http: '$tool' is not installed (apt-get install -y wrk nginx-light curl)" >&2; exit 1; }
done
FIXED_TOOL=hey
if [[ ${BENCH_FIXED:-} == python ]] || ! command -v hey >/dev/null; then FIXED_TOOL=python; fi

if [[ $STANDIN != 1 ]] && ! "$AGENTGW" --help >/dev/null 2>&1; then
  echo "bench-http: $AGENTGW --help fails; run 'make install', or BENCH_AGENTGW_STANDIN=1 to test the harness" >&2
  "$AGENTGW" --help 2>&1 | tail -n 5 >&2 || true
  exit 1
fi

TMP=$(mktemp -d -t agentgw-bench-http.XXXXXX)
RES=$ROOT/bench/results/http-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"

BENCH_NAME=bench-http
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap cleanup_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- nginx configs ------------------------------------------------------------------------------

BODY='{"id":"bench-0001","object":"chat.completion","model":"bench","choices":[{"index":0,"finish_reason":"stop"}]}'

# nginx_conf DIR WORKERS SERVER_BLOCK [HTTP_EXTRA]: write DIR/nginx.conf with everything under DIR.
nginx_conf() {
  local dir=$1 workers=$2 server=$3 extra=${4:-}
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 65s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $extra
    server {
        $server
    }
}
EOF
}

# start_nginx NAME DIR: start nginx on DIR/nginx.conf; sets STARTED_PID.
start_nginx() {
  nginx -t -q -p "$2" -e "$2/error.log" -c "$2/nginx.conf"
  start "$1" /dev/null nginx -p "$2" -e "$2/error.log" -c "$2/nginx.conf"
}

# start_nginx_proxy NAME PORT WORKERS: nginx reverse proxy to the upstream; sets STARTED_PID.
start_nginx_proxy() {
  local dir=$TMP/$1
  nginx_conf "$dir" "$3" \
    "listen 127.0.0.1:$2;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" \
    "upstream bench_upstream { server 127.0.0.1:$UP_PORT; keepalive 128; keepalive_requests 10000000; }"
  start_nginx "$1" "$dir"
}

# start_agentgw NAME PORT WORKERS: agentgw-proxy with a generated standalone config; sets STARTED_PID
# and READY_URL.
start_agentgw() {
  local name=$1 port=$2 workers=$3 admin stats ready cfg
  if [[ $STANDIN == 1 ]]; then
    start_nginx_proxy "$name" "$port" "$workers"
    READY_URL=http://127.0.0.1:$port/
    return
  fi
  read -r admin stats ready < <(free_ports 3)
  cfg=$TMP/$name.yaml
  cat >"$cfg" <<EOF
config:
  adminAddr: 127.0.0.1:$admin
  statsAddr: 127.0.0.1:$stats
  readinessAddr: 127.0.0.1:$ready
binds:
- port: $port
  listeners:
  - routes:
    - backends:
      - host: 127.0.0.1:$UP_PORT
EOF
  # stdout carries the JSON access log, one line per request (~50k lines/s): discard it.
  start "$name" /dev/null "$AGENTGW" -f "$cfg" --workers "$workers"
  READY_URL=http://127.0.0.1:$ready/healthz/ready
}

# ---- measurement --------------------------------------------------------------------------------

# measure SLUG URL: warm-up, RUNS x wrk, one fixed-rate test; raw outputs go to $RES/SLUG.*.txt.
measure() {
  local slug=$1 url=$2 i
  local body
  body=$(curl -sS --max-time 5 "$url")
  [[ $body == "$BODY" ]] || { log "$slug: unexpected body from $url: ${body:0:200}"; return 1; }
  log "$slug: warm-up ${WARMUP}s"
  timeout -k 5 $((WARMUP + 30)) wrk -t$THREADS -c$CONNS -d${WARMUP}s "$url" >/dev/null
  for i in $(seq "$RUNS"); do
    log "$slug: wrk -t$THREADS -c$CONNS -d${DUR}s --latency (run $i/$RUNS)"
    timeout -k 5 $((DUR + 30)) wrk -t$THREADS -c$CONNS -d${DUR}s --latency "$url" >"$RES/$slug.wrk$i.txt"
    grep -E 'Requests/sec' "$RES/$slug.wrk$i.txt" >&2
  done
  log "$slug: fixed rate $((FIXED_CONNS * FIXED_PER_CONN)) req/s for ${FIXED_DUR}s ($FIXED_TOOL)"
  if [[ $FIXED_TOOL == hey ]]; then
    timeout -k 5 $((FIXED_DUR + 30)) hey -z ${FIXED_DUR}s -c $FIXED_CONNS -q $FIXED_PER_CONN -t 5 \
      "$url" >"$RES/$slug.fixed.txt"
  else
    timeout -k 5 $((FIXED_DUR + 30)) "$PY" "$HERE/fixed_rate.py" --duration "$FIXED_DUR" \
      --connections $FIXED_CONNS --rate $((FIXED_CONNS * FIXED_PER_CONN)) "$url" >"$RES/$slug.fixed.txt"
  fi
  if [[ $FIXED_TOOL == hey ]]; then
    # hey's workers tick together: bursts of FIXED_CONNS requests every 1/FIXED_PER_CONN s. The same
    # rate evenly spaced (request k of connection c at (k*C + c)/R) shows the latency without bursts.
    log "$slug: fixed rate $((FIXED_CONNS * FIXED_PER_CONN)) req/s for ${FIXED_DUR}s, evenly spaced (fixed_rate.py)"
    timeout -k 5 $((FIXED_DUR + 30)) "$PY" "$HERE/fixed_rate.py" --duration "$FIXED_DUR" \
      --connections $FIXED_CONNS --rate $((FIXED_CONNS * FIXED_PER_CONN)) "$url" >"$RES/$slug.even.txt"
  fi
}

{
  meta_common
  echo "mode=$([[ $QUICK == 1 ]] && echo "quick: 1 x ${DUR}s" || echo "$RUNS x ${DUR}s, median")"
  echo "wrk=wrk -t$THREADS -c$CONNS -d${DUR}s --latency"
  echo "fixed=$([[ $FIXED_TOOL == hey ]] && echo "hey -z ${FIXED_DUR}s -c $FIXED_CONNS -q $FIXED_PER_CONN" || echo "fixed_rate.py ${FIXED_DUR}s, $FIXED_CONNS connections, $((FIXED_CONNS * FIXED_PER_CONN)) req/s")"
  echo "versions=$(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$PY" -V 2>&1)"
  echo "standin=$STANDIN"
} >"$RES/meta.txt"

read -r UP_PORT NGINX_PORT AGW1_PORT AGW2_PORT < <(free_ports 4)
AGW_PORTS=([1]=$AGW1_PORT [2]=$AGW2_PORT)

nginx_conf "$TMP/upstream" 1 \
  "listen 127.0.0.1:$UP_PORT;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }"
start_nginx upstream "$TMP/upstream"
wait_http "http://127.0.0.1:$UP_PORT/" "$STARTED_PID"

: >"$RES/targets.tsv"
# target SLUG LABEL: append a row to the target list read by report.py.
target() { printf '%s\t%s\n' "$1" "$2" >>"$RES/targets.tsv"; }

target direct "direct"
measure direct "http://127.0.0.1:$UP_PORT/"

start_nginx_proxy nginx-1w "$NGINX_PORT" 1
pid=$STARTED_PID
wait_http "http://127.0.0.1:$NGINX_PORT/" "$pid"
target nginx-1w "nginx 1w"
measure nginx-1w "http://127.0.0.1:$NGINX_PORT/"
stop "$pid"

suffix=""; [[ $STANDIN == 1 ]] && suffix=" (nginx stand-in)"
for workers in 1 2; do
  port=${AGW_PORTS[$workers]}
  start_agentgw "agentgw-${workers}w" "$port" "$workers"
  pid=$STARTED_PID
  wait_http "$READY_URL" "$pid"
  target "agentgw-${workers}w" "agentgw ${workers}w$suffix"
  measure "agentgw-${workers}w" "http://127.0.0.1:$port/"
  stop "$pid"
done

# ---- HTTP/2 (h2c prior knowledge) --------------------------------------------------------------
# h2load (Debian nghttp2-client), when installed: 16 connections x 10 concurrent streams, GET /,
# nginx (`listen ... http2`, 1 worker) against agentgw 1 worker, both to the same HTTP/1.1 upstream.
# Informational (no target in issue #2): report.py prints the req/s and the ratio.
if command -v h2load >/dev/null; then
  H2_DUR=$([[ $QUICK == 1 ]] && echo 3 || echo 10)
  read -r NGINX_H2_PORT AGW_H2_PORT < <(free_ports 2)
  dir=$TMP/nginx-h2
  nginx_conf "$dir" 1 \
    "listen 127.0.0.1:$NGINX_H2_PORT http2;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" \
    "http2_max_requests 10000000;
    upstream bench_upstream { server 127.0.0.1:$UP_PORT; keepalive 128; keepalive_requests 10000000; }"
  for h2 in nginx agentgw; do
    if [[ $h2 == nginx ]]; then
      start_nginx nginx-h2 "$dir"; pid=$STARTED_PID; port=$NGINX_H2_PORT
      wait_http "http://127.0.0.1:$UP_PORT/" "$pid"; sleep 0.5
    else
      start_agentgw agentgw-h2 "$AGW_H2_PORT" 1; pid=$STARTED_PID; port=$AGW_H2_PORT
      wait_http "$READY_URL" "$pid"
    fi
    log "$h2 h2c: h2load -D ${H2_DUR} -c 16 -m 10 (after a 2 s warm-up)"
    timeout -k 5 40 h2load -D 2 -c 16 -m 10 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    timeout -k 5 $((H2_DUR + 30)) h2load -D "$H2_DUR" -c 16 -m 10 "http://127.0.0.1:$port/" \
      >"$RES/h2-$h2.txt" 2>&1 || log "$h2 h2c: h2load failed (see $RES/h2-$h2.txt)"
    stop "$pid"
  done
fi

"$PY" "$HERE/report.py" "$RES" | tee "$RES/summary.md"
log "raw outputs: ${RES#"$ROOT"/}"
