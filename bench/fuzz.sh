#!/usr/bin/env bash
# Schemathesis for longer than the test suite's 40 s per database (issue 15, point 11): a
# `herald serve` on a fresh database, fuzzed from its own /openapi.json with the checks for no
# server error, response schema conformance and content-type conformance.
#   bench/fuzz.sh                       # SQLite, 10 minutes
#   HERALD_FUZZ_SECONDS=3600 HERALD_FUZZ_POSTGRES=1 bench/fuzz.sh   # PostgreSQL, an hour
# Needs the venv .ci/run installs (or HERALD_PY_VENV); exits non-zero on any failure, which
# schemathesis prints with a curl line to reproduce it.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_BUDGET="${HERALD_FUZZ_SECONDS:-600}"
PORT="${HERALD_FUZZ_PORT:-18090}"
VENV="${HERALD_PY_VENV:-$HOME/.cache/herald/venv}"
BIN="${HERALD_FUZZ_BIN:-target/debug/herald}"
[ -x "$VENV/bin/schemathesis" ] || {
  echo "fuzz: $VENV/bin/schemathesis is missing; run .ci/run, or:" >&2
  echo "  python3 -m venv $VENV && $VENV/bin/pip install -r .ci/python-requirements.txt" >&2
  exit 1
}
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -n "${HERALD_FUZZ_SKIP_BUILD:-}" ] || cargo build -q
if [ -n "${HERALD_FUZZ_POSTGRES:-}" ]; then
  ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  psql "$ADMIN_URL" -qc "drop database if exists herald_fuzz with (force)" -qc "create database herald_fuzz"
  export DATABASE_URL="${ADMIN_URL%/*}/herald_fuzz"
else
  export DATABASE_URL="sqlite://$WORK/herald.db?mode=rwc"
fi
export HERALD_JWT_SECRET=fuzz-secret-fuzz-secret-fuzz-secret-4242
export HERALD_TRACKING_SECRET=fuzz-tracking-secret-fuzz-tracking-00
export HERALD_SECRETS_KEY=fuzz-secrets-key-fuzz-secrets-key-0000
# The fuzzer sends far more than a client would; limits are tested elsewhere.
export HERALD_RATE_LIMIT_ORG=0 HERALD_TRACKING_MAX_PER_TOKEN=0 HERALD_SIGNIN_LINK=off
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn
TOKEN=$($BIN token --org acme --role admin --ttl 24h)

$BIN serve > "$WORK/server.log" 2>&1 & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

cd "$WORK"
status=0
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" --url "http://127.0.0.1:$PORT" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-time "$SECONDS_BUDGET" --generation-database none \
  -H "Authorization: Bearer $TOKEN" -H "orgid: acme" || status=$?
if grep -qi "panicked" "$WORK/server.log"; then
  echo "fuzz: the server logged a panic:" >&2
  grep -i -m5 "panicked" "$WORK/server.log" >&2
  status=1
fi
exit "$status"
