#!/usr/bin/env bash
# Open ingest, before against after, on one database (issue 19: compare on the same day).
#   HERALD_BENCH_BINS="/tmp/herald-before target/release/herald" bench/ingest_ab.sh
# Sets up, for each binary, its own database the same way (one campaign sent to
# HERALD_BENCH_RECIPIENTS sandbox contacts, default 20 000), then for HERALD_BENCH_ROUNDS rounds
# (default 3) runs each binary in turn on its database: a checkpoint, so every run starts from
# the same WAL state; wrk on the open pixel (128 connections, HERALD_BENCH_DURATION, default
# 15s); wrk on /healthz for as long; and prints both rates and their ratio (bar >= 0.25). Single
# runs of engagement.sh spread by +-20 % from one to the next; alternating the binaries puts the
# difference between them above that spread. One database each, so binaries with different
# migrations compare too.
# HERALD_BENCH_FLOOR=1 adds, after the rounds, the database's own ceiling for the same
# appends: pgbench on a copy of the first database, three clients (the recorder's three
# committers) each committing 20-row inserts of open events shaped like Herald's into `events`
# with all its indexes, no HTTP and no projection; printed as rows/s and as a ratio to the last
# round's `/healthz`.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/open_ingest.sh

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_ingest_ab
PORT="${HERALD_BENCH_PORT:-18083}"
DURATION="${HERALD_BENCH_DURATION:-15s}"
ROUNDS="${HERALD_BENCH_ROUNDS:-3}"
RECIPIENTS="${HERALD_BENCH_RECIPIENTS:-20000}"
read -r -a BINS <<< "${HERALD_BENCH_BINS:?set HERALD_BENCH_BINS to two or more herald binaries}"
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=
trap 'kill -9 $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
export HERALD_TRACKING_SECRET=bench-tracking-secret-bench-tracking
export HERALD_SECRETS_KEY=bench-secrets-key-bench-secrets-key-00
export HERALD_RATE_LIMIT_ORG=1000000 HERALD_TRACKING_MAX_PER_TOKEN=1000000
export HERALD_BIND=127.0.0.1:$PORT RUST_LOG=warn

# Binary i runs on database ${DB}_i with data directory $WORK/i.
use() {
  export DATABASE_URL="${ADMIN_URL%/*}/${DB}_$1" HERALD_DATA_DIR="$WORK/$1"
  mkdir -p "$HERALD_DATA_DIR"
}
start_server() {
  "${BINS[$1]}" serve & SERVER=$!
  for _ in $(seq 1 200); do curl -sf "$BASE/readyz" >/dev/null && return; sleep 0.1; done
  echo "${BINS[$1]} did not get ready" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }

TOKEN=$("${BINS[0]}" token --org bench --role admin --ttl 2h)
echo "/healthz" > "$WORK/healthz"
for i in "${!BINS[@]}"; do
  psql "$ADMIN_URL" -qc "drop database if exists ${DB}_$i with (force)" -qc "create database ${DB}_$i"
  use "$i"
  start_server "$i"
  echo "== set-up of ${BINS[$i]}: $RECIPIENTS sandbox contacts, one campaign launched now"
  hot_campaign "$WORK/paths-$i"
  stop_server
done

for round in $(seq 1 "$ROUNDS"); do
  for i in "${!BINS[@]}"; do
    use "$i"
    start_server "$i"
    psql "$DATABASE_URL" -qc checkpoint
    INGEST=$(HERALD_BENCH_PATHS="$WORK/paths-$i" wrk -t2 -c128 -d"$DURATION" --latency -s bench/open_pixel.lua "$BASE" | grep BENCH)
    HEALTHZ=$(HERALD_BENCH_PATHS="$WORK/healthz" wrk -t2 -c128 -d"$DURATION" --latency -s bench/open_pixel.lua "$BASE" | grep BENCH)
    I=$(wrk_rate <<< "$INGEST"); H=$(wrk_rate <<< "$HEALTHZ")
    echo "round $round ${BINS[$i]}: ingest $INGEST | healthz $H req/s | ratio $(ingest_ratio "$I" "$H")"
    stop_server
  done
done

if [ -n "${HERALD_BENCH_FLOOR:-}" ]; then
  FLOOR_URL="${ADMIN_URL%/*}/${DB}_floor"
  psql "$ADMIN_URL" -qc "drop database if exists ${DB}_floor with (force)" -qc "create database ${DB}_floor template ${DB}_0"
  # One transaction: 20 open events on 20 new delivery streams (pgbench's prepared mode sends
  # the statement once; the payloads are Herald's, with the colons pgbench would read as
  # variables left out).
  ROW="(gen_random_uuid()::text, 'bench', 'delivery-bench-camp-hot-run-' || gen_random_uuid()::text || '-email', 0, 'EngagementRecorded', '1', '2026-12-07T031550.011874712Z', cast('{\"type\": \"open\", \"runId\": \"run-01a24e76-69f0-748e-b413-652947cc051c\", \"source\": \"tracking\", \"channel\": \"email\", \"contactId\": \"ct-016184\", \"campaignId\": \"camp-hot\", \"occurredAt\": \"2026-12-07T031550.011874712Z\", \"classification\": \"human\"}' as jsonb), cast('{\"actor\": \"tracking-open\", \"orgId\": \"bench\", \"requestId\": \"3888ce52-a673-47a1-a518-c3f1e94c06a4\", \"causationId\": \"3888ce52-a673-47a1-a518-c3f1e94c06a4\", \"correlationId\": \"3888ce52-a673-47a1-a518-c3f1e94c06a4\"}' as jsonb))"
  {
    echo "BEGIN;"
    printf 'insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata) values %s' "$ROW"
    for _ in $(seq 2 20); do printf ', %s' "$ROW"; done
    printf ' returning position;\nCOMMIT;\n'
  } > "$WORK/floor.sql"
  psql "$FLOOR_URL" -qc checkpoint
  TPS=$(pgbench -n -M prepared -c 3 -j 2 -T "${DURATION%s}" -f "$WORK/floor.sql" "$FLOOR_URL" 2>&1 | sed -nE 's/^tps = ([0-9]+).*/\1/p')
  ROWS=$((TPS * 20))
  echo "floor: the database alone appends $ROWS open events/s (20 a commit, 3 clients) | last healthz $H req/s | ratio $(ingest_ratio "$ROWS" "$H")"
  psql "$ADMIN_URL" -qc "drop database ${DB}_floor with (force)"
fi
