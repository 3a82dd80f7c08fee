# shellcheck shell=bash
# What the benchmark scripts share: logging, starting and stopping processes by PID, free ports,
# readiness, bounded steps, and the cleanup of scripts that run servers. Source it after setting
# BENCH_NAME (log prefix), TMP (scratch dir), RES (results dir), PY (the venv's python) and
# READY_TIMEOUT (seconds wait_http waits); PIDS collects what `start` runs.

PIDS=()

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

# stop_pid PID: TERM the process group led by PID, wait up to 5 s, then KILL what is left of it.
stop_pid() {
  local pid=$1 _
  kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# cleanup_servers: the EXIT trap of scripts that `start` servers: stop them by PID, keep their
# stderr and error logs next to the raw outputs (and show their tails on failure), remove $TMP.
cleanup_servers() {
  local rc=$? pid f
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  mkdir -p "$RES/logs"
  for f in "$TMP"/*.log "$TMP"/*/error.log; do
    if [[ -s $f ]]; then cp "$f" "$RES/logs/$(echo "${f#"$TMP"/}" | tr / -)"; fi
  done
  if [[ $rc != 0 ]]; then
    log "failed (exit $rc); server logs:"
    for f in "$TMP"/*.log "$TMP"/*/error.log; do
      if [[ -s $f ]]; then echo "--- ${f#"$TMP"/} (last 20 lines)" >&2; tail -n 20 "$f" >&2; fi
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}

# start NAME STDOUT CMD...: run CMD in the background in a new process group, stdout to STDOUT and
# stderr to $TMP/NAME.log; sets STARTED_PID.
start() {
  local name=$1 out=$2; shift 2
  setsid "$@" >"$out" 2>"$TMP/$name.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  log "started $name (pid $STARTED_PID): $*"
}

# stop PID: stop it and drop it from the cleanup list.
stop() {
  local pid=$1 p keep=()
  stop_pid "$pid"
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1.
free_ports() {
  "$PY" - "$1" <<'PYEOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PYEOF
}

# wait_http URL PID: wait until URL answers 200, failing if PID exits or READY_TIMEOUT passes.
wait_http() {
  local url=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || { log "pid $pid exited before $url was ready"; return 1; }
    ((SECONDS < deadline)) || { log "$url not ready after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.1
  done
}

# bounded LIMIT CMD...: run CMD with a time limit (TERM, then KILL 10 s later). It runs in the
# background and is waited for, so that a signal to the script runs its traps at once; CHILD is
# its PID meanwhile (for the script's cleanup).
CHILD=
bounded() {
  local limit=$1; shift
  timeout -k 10 "$limit" "$@" &
  CHILD=$!
  wait "$CHILD"
  CHILD=
}

# meta_common: the first lines of every benchmark's meta.txt (date, commit and whether the tree
# was dirty, host, load average at the start). Needs ROOT.
meta_common() {
  local dirty
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  dirty=$(git -C "$ROOT" diff --name-only HEAD 2>/dev/null | wc -l)
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( ((dirty == 0)) || echo " + uncommitted changes in $dirty tracked files")"
  echo "host=$(nproc) cores, $(uname -sr)"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
}
