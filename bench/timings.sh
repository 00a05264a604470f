#!/usr/bin/env bash
# Timings the tests no longer assert (issue 17.8: tests check what happened, not how fast), on a
# release build with embedded SQLite:
#   bench/timings.sh     # needs: a release build, curl, python3
# 1. aggregated-metrics refuses 10 000 campaign ids and a 20-year range (target: well under 2 s);
# 2. an audience preview with the catastrophic pattern `(a+)+$` against an attribute of 50 000 `a`s
#    and a `b` (linear engine; target: well under 2 s);
# 3. the scheduler heartbeat age in /metrics of an idle server (beats every second; target < 10 s).
# The adapter rate limit is timed exactly on tokio's paused clock in tests/vendors/rate_limit.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${HERALD_BENCH_PORT:-18083}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -n "${HERALD_BENCH_SKIP_BUILD:-}" ] || cargo build --release -q
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn
unset DATABASE_URL
TOKEN=$($BIN token --org bench --role admin --ttl 1h)
$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"

# Prints the status and the time of a POST of the JSON file $2 to path $1.
timed_post() {
  curl -s -o /dev/null -w '%{http_code} in %{time_total} s' -X POST "$BASE$1" \
    -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' \
    --data-binary @"$2"
}

python3 -c 'import json; print(json.dumps({"campaignIds": ["camp-%d" % i for i in range(10000)]}))' > "$WORK/ids.json"
echo '{"campaignIds": ["camp-1"], "range": {"start": "2006-01-01", "end": "2026-01-01"}}' > "$WORK/range.json"
echo "== aggregated-metrics refusals"
echo "10 000 campaign ids: $(timed_post /crm/marketing/campaigns/aggregated-metrics "$WORK/ids.json")"
echo "a 20-year range:     $(timed_post /crm/marketing/campaigns/aggregated-metrics "$WORK/range.json")"

python3 -c 'import json; print(json.dumps([{"id": "ct-long", "email": "long@acme.test", "attributes": {"note": "a" * 50000 + "b"}}]))' > "$WORK/contact.json"
echo "import: $(curl -s -X POST "$BASE/crm/contacts/import" -H "authorization: Bearer $TOKEN" -H "orgid: bench" -H "content-type: application/json" --data-binary @"$WORK/contact.json" | head -c 300)"
echo '{"filter": {"datatype": "contact", "where": {"attributes.note": {"$regex": "(a+)+$"}}}}' > "$WORK/regex.json"
echo "== audience preview, (a+)+\$ against 50 000 a's and a b"
echo "preview: $(timed_post /crm/audiences/preview "$WORK/regex.json") (count $(curl -s -X POST "$BASE/crm/audiences/preview" -H "authorization: Bearer $TOKEN" -H "orgid: bench" -H "content-type: application/json" --data-binary @"$WORK/regex.json" | python3 -c "import json,sys; print(json.load(sys.stdin).get(\"count\"))"))"

sleep 2
AGE=$(curl -sf "$BASE/metrics" | awk '/^herald_scheduler_heartbeat_age_seconds / {print $2}')
echo "== heartbeat age of an idle server: ${AGE:-absent} s"
