#!/usr/bin/env bash
# Benchmark for contacts and audiences (issue: integrations, contacts, audiences, templates), on PostgreSQL.
#   bench/audiences.sh     # needs: release build, python3, PostgreSQL on 127.0.0.1:5432
# 1. imports 100 000 contacts through POST /crm/contacts/import (NDJSON), timed;
# 2. grows the org to 1 000 000 contacts, then times the reach of a three-condition filter
#    (tags $in, an attribute range, $exists) and samples the server's peak RSS;
# 3. beside it, in the same run, the reference (issue 19): the query a listmonk user writes by
#    hand (`attribs->'tags' ?| array[...] and ...`) over a JSONB copy of the same rows, count and
#    ten-row sample, and prints Herald's figure, the reference and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="${HERALD_BENCH_DB:-herald_bench_audiences}"
PORT="${HERALD_BENCH_PORT:-18081}"
TOTAL="${HERALD_BENCH_CONTACTS:-1000000}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -n "${HERALD_BENCH_SKIP_BUILD:-}" ] || cargo build --release -q
psql "$ADMIN_URL" -qc "drop database if exists $DB with (force)" -qc "create database $DB"
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
export HERALD_TRACKING_SECRET=bench-tracking-secret-bench-tracking
export HERALD_SECRETS_KEY=bench-secrets-key-bench-secrets-key-00
# Limits on but far above what this drives (they must not cost throughput; issue 15); set
# HERALD_BENCH_RATE_LIMIT_ORG=0 HERALD_BENCH_TRACKING_MAX_PER_TOKEN=0 to compare with them off.
export HERALD_RATE_LIMIT_ORG="${HERALD_BENCH_RATE_LIMIT_ORG:-1000000}"
export HERALD_TRACKING_MAX_PER_TOKEN="${HERALD_BENCH_TRACKING_MAX_PER_TOKEN:-1000000}"
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn,sqlx::query=error
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
peak() { awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status; }
import() {
  curl -sf -X POST "http://127.0.0.1:$PORT/crm/contacts/import" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' \
    -H 'content-type: application/x-ndjson' --data-binary @"$1"
}

python3 bench/gen_contacts.py 100000 0 > "$WORK/first.ndjson"
echo "== import 100 000 contacts ($(du -h "$WORK/first.ndjson" | cut -f1) NDJSON)"
START=$(date +%s.%N)
import "$WORK/first.ndjson" | head -c 200; echo
END=$(date +%s.%N)
echo "import: $(echo "$END - $START" | bc) s; peak RSS $(peak) MB"

done_rows=100000
while [ "$done_rows" -lt "$TOTAL" ]; do
  python3 bench/gen_contacts.py 100000 "$done_rows" > "$WORK/more.ndjson"
  START=$(date +%s.%N)
  import "$WORK/more.ndjson" >/dev/null
  LAST="import of 100 000 into an org of $done_rows contacts: $(echo "$(date +%s.%N) - $START" | bc) s"
  done_rows=$((done_rows + 100000))
done
[ -n "${LAST:-}" ] && echo "$LAST"
echo "org now holds $(psql "$DATABASE_URL" -Atc "select count(*) from documents where kind = 'contact'") contacts; peak RSS $(peak) MB"

# Reach on a fresh server process, so its peak RSS (VmHWM) is the reach's own, not the imports'.
kill $SERVER; wait $SERVER 2>/dev/null || true
$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "== reach on a restarted server (RSS $(awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status) MB at start)"
FILTER='{"filter": {"datatype": "contact", "where": {"tags": {"$in": ["vip", "prospect"]}, "attributes.score": {"$gte": 40, "$lt": 90}, "phone": {"$exists": true}}}}'
for i in 1 2 3; do
  START=$(date +%s.%N)
  RESULT=$(curl -sf -X POST "http://127.0.0.1:$PORT/crm/audiences/preview" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' -d "$FILTER" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  END=$(date +%s.%N)
  echo "reach run $i: count=$RESULT in $(echo "$END - $START" | bc) s; peak RSS $(peak) MB"
done

# The reference: a JSONB copy of the same contacts in a listmonk-shaped table, and the SQL a
# listmonk user writes by hand for the same filter (count, then the ten oldest).
psql "$DATABASE_URL" -qc "drop table if exists subscribers" \
  -qc "create table subscribers as select id, created_at, doc::jsonb as attribs from documents where kind = 'contact'" \
  -qc "vacuum analyze subscribers"
REFERENCE_SQL="select count(*) from subscribers where attribs->'tags' ?| array['vip', 'prospect']
    and (attribs->'attributes'->>'score')::numeric >= 40 and (attribs->'attributes'->>'score')::numeric < 90
    and attribs ? 'phone';
  select attribs from subscribers where attribs->'tags' ?| array['vip', 'prospect']
    and (attribs->'attributes'->>'score')::numeric >= 40 and (attribs->'attributes'->>'score')::numeric < 90
    and attribs ? 'phone' order by created_at, id limit 10;"
best() { sort -n | head -1; }
HERALD_TIMES=()
REFERENCE_TIMES=()
for i in 1 2 3; do
  START=$(date +%s.%N)
  curl -sf -X POST "http://127.0.0.1:$PORT/crm/audiences/preview" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' -d "$FILTER" >/dev/null
  HERALD_TIMES+=("$(echo "$(date +%s.%N) - $START" | bc)")
  START=$(date +%s.%N)
  REFERENCE_COUNT=$(psql "$DATABASE_URL" -Atc "$REFERENCE_SQL" | head -1)
  REFERENCE_TIMES+=("$(echo "$(date +%s.%N) - $START" | bc)")
done
HERALD_BEST=$(printf '%s\n' "${HERALD_TIMES[@]}" | best)
REFERENCE_BEST=$(printf '%s\n' "${REFERENCE_TIMES[@]}" | best)
echo "== reach beside the hand-written JSONB query (best of 3 each, interleaved)"
echo "herald reach (count + sample): $HERALD_BEST s, count=$RESULT; peak RSS $(peak) MB"
echo "reference (listmonk-style SQL over a JSONB copy, count + sample): $REFERENCE_BEST s, count=$REFERENCE_COUNT"
echo "ratio (reference time / Herald time, >= 1.0 is as fast or faster): $(echo "scale=2; $REFERENCE_BEST / $HERALD_BEST" | bc)"
