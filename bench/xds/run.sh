#!/usr/bin/env bash
# xDS propagation benchmark (`make bench-xds`, or `bash bench/xds/run.sh`).
#
# Measures, in one run on 127.0.0.1:
#   1. propagation: the controller's SnapshotCache + delta ADS server run inside the benchmark
#      process (bench/xds/propagation.py, uvloop) and a real `agentgw-proxy` subscribes to them.
#      Route sets of 10, 1,000 and 10,000 direct-response routes (/r/<i> -> 200 "v<version>");
#      50 one-route edits per size, each timed from `cache.publish(...)` returning to the first
#      HTTP response from the proxy carrying the new body (keep-alive client, 1 ms poll, 10 s
#      timeout per change). Every change also reads agentgw_xds_resources_sent_total and
#      agentgw_xds_pushes_total from the server's registry: one route edited, one resource sent.
#   2. initial sync: proxy process start -> readiness 200 with the 10,000-route set already
#      published, and the proxy's RSS; the controller's RSS as a separate
#      `agentgw-controller --from-file` process serving a 10,000-route file to one proxy
#      (bench/xds/controller_rss.py).
#   3. where the time goes: the same changes at 1,000 and 10,000 routes through
#      bench/xds/proxy_stages.py (agentgw-proxy with timing hooks, no source change).
# bench/xds/report.py prints the tables and PASS/FAIL for the targets:
#   p99 <= 250 ms at 1,000 routes;  a one-route change sends one resource;
#   10,000-route initial sync <= 5 s.
# The exit status is 0 when every step ran, whatever the PASS/FAIL lines say.
#
# Environment:
#   BENCH_QUICK=1          smoke test (~15 s): 10 and 1,000 routes, 10 changes, no 10,000
#   BENCH_XDS_SIZES        route-set sizes, e.g. "10 1000 10000"
#   BENCH_XDS_CHANGES      changes per size (default 50)
#   BENCH_XDS_STAGES       sizes for the stage pass ("" skips it)
#   BENCH_XDS_CPROFILE=1   also run the stage-pass proxies under cProfile (pstats kept in results)
#
# Every process (controller, proxies) is started in its own session by the Python scripts; each
# PID is also written to a file here, and on exit (also on failure, timeout or Ctrl-C) every PID
# still alive is stopped: TERM to its process group, KILL after 5 s. The whole run is bounded by
# `timeout`. Logs and raw JSON are kept in bench/results/xds-<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/xds
PY=$ROOT/.venv/bin/python
QUICK=${BENCH_QUICK:-0}

if [[ $QUICK == 1 ]]; then
  SIZES=${BENCH_XDS_SIZES:-10 1000} CHANGES=${BENCH_XDS_CHANGES:-10}
  STAGES=${BENCH_XDS_STAGES-1000} STAGE_CHANGES=5 CTL_SIZES="10 1000" LIMIT=300
else
  SIZES=${BENCH_XDS_SIZES:-10 1000 10000} CHANGES=${BENCH_XDS_CHANGES:-50}
  STAGES=${BENCH_XDS_STAGES-1000 10000} STAGE_CHANGES=10 CTL_SIZES="10 10000" LIMIT=900
fi

for tool in setsid timeout; do
  command -v "$tool" >/dev/null || { echo "bench-xds: '$tool' is not installed" >&2; exit 1; }
done
for bin in agentgw-proxy agentgw-controller; do
  if ! "$ROOT/.venv/bin/$bin" --help >/dev/null 2>&1; then
    echo "bench-xds: $ROOT/.venv/bin/$bin --help fails; run 'make install'" >&2
    exit 1
  fi
done

RES=$ROOT/bench/results/xds-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES/logs"
export BENCH_XDS_PIDFILE=$RES/logs/pids
: >"$BENCH_XDS_PIDFILE"

BENCH_NAME=bench-xds
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  # interrupted: TERM the running step (timeout forwards it; the script stops its children) ...
  if [[ -n ${CHILD:-} ]] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CHILD" 2>/dev/null || kill -KILL "$CHILD" 2>/dev/null || true
  fi
  # ... and stop by PID whatever a killed script left behind
  while read -r pid; do [[ -n $pid ]] && stop_pid "$pid"; done <"$BENCH_XDS_PIDFILE"
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


cmd="bash bench/xds/run.sh"
[[ $QUICK == 1 ]] && cmd="BENCH_QUICK=1 $cmd"
{
  meta_common
  echo "mode=$([[ $QUICK == 1 ]] && echo quick || echo full): sizes $SIZES, $CHANGES changes each; stage pass: ${STAGES:-none}; controller RSS at $CTL_SIZES routes"
  echo "command=$cmd"
  echo "versions=$("$PY" -V 2>&1), grpcio $("$PY" -c 'import grpc; print(grpc.__version__)'), protobuf $("$PY" -c 'import google.protobuf as p; print(p.__version__)')"
  echo "quick=$QUICK"
} >"$RES/meta.txt"

stage_args=()
# shellcheck disable=SC2206
[[ -n $STAGES ]] && stage_args=(--stage-sizes $STAGES --stage-changes "$STAGE_CHANGES")
if [[ ${BENCH_XDS_CPROFILE:-0} == 1 ]]; then export BENCH_XDS_CPROFILE_DIR=$RES; fi

log "propagation: sizes $SIZES, $CHANGES changes each; stage pass: ${STAGES:-none}"
# shellcheck disable=SC2086
bounded "$LIMIT" "$PY" "$HERE/propagation.py" --out "$RES/propagation.json" --logdir "$RES/logs" \
  --sizes $SIZES --changes "$CHANGES" "${stage_args[@]}"

log "controller memory: $CTL_SIZES routes"
# shellcheck disable=SC2086
bounded 300 "$PY" "$HERE/controller_rss.py" --out "$RES/controller.json" --logdir "$RES/logs" --sizes $CTL_SIZES

"$PY" "$HERE/report.py" "$RES" | tee "$RES/summary.md"
log "raw outputs: ${RES#"$ROOT"/}"
