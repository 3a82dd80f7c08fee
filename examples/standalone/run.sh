#!/usr/bin/env bash
# `make run`: start the demo upstream and the gateway on examples/standalone/config.yaml.
# Stops the upstream (by PID) when the gateway exits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py="$root/.venv/bin/python"

"$py" "$here/demo_upstream.py" --port 8081 &
upstream_pid=$!
trap 'kill "$upstream_pid" 2>/dev/null || true' EXIT

cat <<MSG
agentgw is starting on http://127.0.0.1:3000 (admin 127.0.0.1:15000, metrics :15020, ready :15021)
Try, in another terminal:
  curl -i http://127.0.0.1:3000/api/hello          # rewritten to /v1/hello on the demo upstream
  curl -i http://127.0.0.1:3000/old-docs/intro     # 301 to /docs/intro
  curl -i http://127.0.0.1:3000/teapot             # 418 from the gateway itself
  curl -i http://127.0.0.1:3000/private/x          # 401: an API key is required
  curl -i -H 'authorization: Bearer demo-key' http://127.0.0.1:3000/private/x   # 200 (429 after a burst)
  curl -s http://127.0.0.1:15000/config_dump       # effective configuration
  curl -s http://127.0.0.1:15020/metrics | grep agentgw_requests_total
Edit examples/standalone/config.yaml while it runs: changes apply without a restart.
Press Ctrl-C to stop.
MSG
"$root/.venv/bin/agentgw-proxy" -f "$here/config.yaml"
