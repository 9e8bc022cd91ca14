#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios against `stocklock serve --http --no-auth` on
# loopback, with a throwaway SQLite database holding the demo catalog, three times: the 0.1.x suite
# (every scenario, conformance/baseline.yml), and the newest suite with the requirement sets of
# 2026-07-28 and 2025-11-25 (conformance/baseline-<revision>.yml). Expects a built dist/ (`npm run
# conformance` builds first). Exits 0 when every run passes or fails only as its baseline lists, 1 on
# an unexpected failure or a stale entry in any run.
#
# The suite needs Node 22; npx fetches it from the npm registry as the `node` package. The versions
# are pinned so CI is reproducible; override with CONFORMANCE_NODE, CONFORMANCE_VERSION (the 0.1.x
# run) and CONFORMANCE_NEXT (the requirement-set runs). CONFORMANCE_PORT picks the port (default: a
# free one). CONFORMANCE_RESULTS keeps the per-scenario checks.json files in that directory.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_SPEC="node@${CONFORMANCE_NODE:-22.23.3}"
SUITE_SPEC="@modelcontextprotocol/conformance@${CONFORMANCE_VERSION:-0.1.16}"
NEXT_SPEC="@modelcontextprotocol/conformance@${CONFORMANCE_NEXT:-0.2.0-alpha.12}"

if [[ ! -f dist/cli.js ]]; then
  echo "conformance: dist/cli.js is missing; run npm run build first" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/stocklock-conformance.XXXXXX")"
server_pid=""

stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="${CONFORMANCE_PORT:-$(node -e "const s = require('node:net').createServer(); s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });")}"
db="$work/stocklock.db"
base="http://127.0.0.1:$port"

node dist/cli.js import examples/demo-catalog.json --db "$db" >/dev/null

# Only warnings and errors: the suite opens a few dozen sessions and the info log would drown its report.
STOCKLOCK_LOG_LEVEL="${STOCKLOCK_LOG_LEVEL:-warn}" node dist/cli.js serve --http --no-auth \
  --host 127.0.0.1 --port "$port" --db "$db" --channel conformance >"$work/server.log" 2>&1 &
server_pid=$!

healthy() {
  node -e "fetch('$base/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
}
for _ in $(seq 1 100); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "conformance: the server exited before answering /healthz:" >&2
    cat "$work/server.log" >&2
    exit 2
  fi
  healthy && break
  sleep 0.1
done
if ! healthy; then
  echo "conformance: no answer from $base/healthz within 10 s:" >&2
  cat "$work/server.log" >&2
  exit 2
fi
echo "conformance: stocklock at $base/mcp (--no-auth, demo catalog), on $NODE_SPEC"

results="${CONFORMANCE_RESULTS:-$work/results}"
status=0
# One run of the suite: its package, the baseline, then the scenario selection.
run() {
  local spec="$1" baseline="$2" name="$3"
  shift 3
  echo "conformance: $spec $* (baseline $baseline)"
  # npm's EBADENGINE warnings come from installing the Node 22 suite with Node 20's npm; harmless.
  NPM_CONFIG_LOGLEVEL=error npx --yes -p "$NODE_SPEC" -p "$spec" \
    conformance server --url "$base/mcp" "$@" \
    --expected-failures "$baseline" --output-dir "$results/$name" || status=1
}
run "$SUITE_SPEC" conformance/baseline.yml all --suite all
run "$NEXT_SPEC" conformance/baseline-2026-07-28.yml 2026-07-28 --requirements 2026-07-28
run "$NEXT_SPEC" conformance/baseline-2025-11-25.yml 2025-11-25 --requirements 2025-11-25

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "conformance: the server died during the run:" >&2
  status=1
fi
if [[ "$status" -ne 0 ]]; then
  echo "conformance: failed (exit $status); server log:" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
