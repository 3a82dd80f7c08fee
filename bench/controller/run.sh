#!/usr/bin/env bash
# Controller benchmark (`make bench-controller`, or `bash bench/controller/run.sh`).
#
# Measures, in one run on 127.0.0.1:
#   1. translation + publish (bench/controller/translate_bench.py): one GatewayClass of ours, one
#      Gateway with an HTTP listener, N Services and N HTTPRoutes (/r/<i> -> Service svc-<i>),
#      generated in memory; `translate.translate(Inputs.from_objects(objs), now)` plus
#      `SnapshotCache().publish(...)`, median of 3, each size in a fresh process whose VmRSS is read
#      before and after. Sizes 1,000 and 10,000.
#   2. route change -> served (bench/controller/latency.py): a real kube-apiserver
#      (hack/apiserver.sh up, own state dir, `down` at the end), `python -m controller` in
#      Kubernetes mode, a Gateway of class agentgateway + AgentgatewayBackend static -> a local
#      aiohttp upstream, one agentgw-proxy subscribed over xDS; 20 edits of an HTTPRoute's path
#      (/c<i>), each timed from just before `kubectl apply` starts to the first 200 on /c<i>.
#      With 0 and 1,000 background HTTPRoutes.
# bench/controller/report.py prints the tables and PASS/FAIL for the targets:
#   10,000 routes translated and published <= 10 s;  one change served <= 1 s p99.
# The exit status is 0 when every step ran, whatever the PASS/FAIL lines say.
#
# Environment:
#   BENCH_QUICK=1                 smoke test: 1,000 routes (1 repeat), 5 changes, no background routes
#   BENCH_CONTROLLER_SIZES        translation sizes (default "1000 10000")
#   BENCH_CONTROLLER_CHANGES      route changes per background size (default 20)
#   BENCH_CONTROLLER_BACKGROUND   background route counts (default "0 1000")
#
# Every process is started in its own session by the Python scripts and its PID written to a file
# here; on exit (also on failure, timeout or Ctrl-C) every PID still alive is stopped (TERM to its
# process group, KILL after 5 s) and the apiserver is brought down. Logs and raw JSON are kept in
# bench/results/controller-<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/controller
PY=$ROOT/.venv/bin/python
QUICK=${BENCH_QUICK:-0}

if [[ $QUICK == 1 ]]; then
  SIZES=${BENCH_CONTROLLER_SIZES:-1000} REPEATS=1
  CHANGES=${BENCH_CONTROLLER_CHANGES:-5} BACKGROUND=${BENCH_CONTROLLER_BACKGROUND:-0} LIMIT=300
else
  SIZES=${BENCH_CONTROLLER_SIZES:-1000 10000} REPEATS=3
  CHANGES=${BENCH_CONTROLLER_CHANGES:-20} BACKGROUND=${BENCH_CONTROLLER_BACKGROUND:-0 1000} LIMIT=900
fi

for tool in setsid timeout; do
  command -v "$tool" >/dev/null || { echo "bench-controller: '$tool' is not installed" >&2; exit 1; }
done
if ! "$ROOT/.venv/bin/agentgw-proxy" --help >/dev/null 2>&1; then
  echo "bench-controller: $ROOT/.venv/bin/agentgw-proxy --help fails; run 'make install'" >&2
  exit 1
fi

RES=$ROOT/bench/results/controller-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES/logs"
export BENCH_XDS_PIDFILE=$RES/logs/pids # read by bench/xds/common.py's Procs
: >"$BENCH_XDS_PIDFILE"
TMP=$(mktemp -d)
export AGENTGW_APISERVER_DIR=$TMP/apiserver
export KUBECACHEDIR=$TMP/kube-cache # kubectl's discovery/OpenAPI cache: per run, not in ~/.kube
APISERVER_UP=0

BENCH_NAME=bench-controller
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [[ -n ${CHILD:-} ]] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CHILD" 2>/dev/null || kill -KILL "$CHILD" 2>/dev/null || true
  fi
  while read -r pid; do [[ -n $pid ]] && stop_pid "$pid"; done <"$BENCH_XDS_PIDFILE"
  if [[ $APISERVER_UP == 1 || -d $AGENTGW_APISERVER_DIR ]]; then
    bash "$ROOT/hack/apiserver.sh" down >"$RES/logs/apiserver-down.log" 2>&1 || log "apiserver down failed"
  fi
  rm -rf "$TMP"
  if [[ $rc != 0 ]]; then
    log "failed (exit $rc); logs in ${RES#"$ROOT"/}/logs"
    for f in "$RES"/logs/*.log; do
      if [[ -s $f ]]; then echo "--- ${f#"$RES"/} (last 10 lines)" >&2; tail -n 10 "$f" >&2; fi
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


cmd="bash bench/controller/run.sh"
[[ $QUICK == 1 ]] && cmd="BENCH_QUICK=1 $cmd"
{
  meta_common
  echo "mode=$([[ $QUICK == 1 ]] && echo quick || echo full): translate sizes $SIZES ($REPEATS runs each); $CHANGES changes at $BACKGROUND background routes"
  echo "command=$cmd"
  echo "versions=$("$PY" -V 2>&1), $(bash "$ROOT/hack/apiserver.sh" env | grep K8S_VERSION)"
} >"$RES/meta.txt"

log "translate + publish: sizes $SIZES, $REPEATS runs each"
# shellcheck disable=SC2086
bounded 600 "$PY" "$HERE/translate_bench.py" --out "$RES/translate.json" --sizes $SIZES --repeats "$REPEATS"

log "apiserver: hack/apiserver.sh up (state in $AGENTGW_APISERVER_DIR)"
APISERVER_UP=1
KUBECONFIG=$(bounded 600 bash "$ROOT/hack/apiserver.sh" up 2>"$RES/logs/apiserver-up.log" | tail -n 1)
export KUBECONFIG
KUBECTL=$(bash "$ROOT/hack/apiserver.sh" env | sed -n 's/^KUBECTL=//p')
export KUBECTL
"$KUBECTL" apply --server-side -f "$ROOT/e2e/gateway-api" >"$RES/logs/crds.log" 2>&1
"$KUBECTL" apply --server-side -f "$ROOT/crds" >>"$RES/logs/crds.log" 2>&1
"$KUBECTL" wait --for=condition=Established --timeout=60s crd --all >>"$RES/logs/crds.log" 2>&1

log "route change -> served: $CHANGES changes at background routes $BACKGROUND"
# shellcheck disable=SC2086
bounded "$LIMIT" "$PY" "$HERE/latency.py" --out "$RES/latency.json" --logdir "$RES/logs" \
  --changes "$CHANGES" --background $BACKGROUND

"$PY" "$HERE/report.py" "$RES" | tee "$RES/summary.md"
log "raw outputs: ${RES#"$ROOT"/}"
