#!/usr/bin/env bash
# Benchmark for the campaign core (issue: event-sourced campaign core), on PostgreSQL.
#   bench/core.sh            # needs: a release build, wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432
# Prints figures to record in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench
DURATION="${HERALD_BENCH_DURATION:-20s}"
PORT="${HERALD_BENCH_PORT:-18080}"
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
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn
export HERALD_BENCH_TOKEN=$($BIN token --org bench --role admin --ttl 1h)

$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status; }
peak() { awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status; }

echo "== POST /crm/marketing/campaigns, 64 connections, $DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -s bench/post_campaign.lua "http://127.0.0.1:$PORT/crm/marketing/campaigns" | grep -E "BENCH|Non-2xx|Socket errors" || true
echo "RSS after POST load: $(rss) MB (peak $(peak) MB)"

psql "$DATABASE_URL" -Atc "select id from campaigns where org_id = 'bench' order by random() limit 10000" > "$WORK/ids"
export HERALD_BENCH_IDS="$WORK/ids"
# Warm-up: the first reads of each id fill the process's campaign cache; the figure is the
# steady state after it.
wrk -t2 -c64 -d5s -s bench/get_campaign.lua "http://127.0.0.1:$PORT" >/dev/null
echo "== GET /crm/marketing/campaigns/:id, 64 connections, $DURATION ($(wc -l < "$WORK/ids") ids, after a 5 s warm-up)"
wrk -t2 -c64 -d"$DURATION" --latency -s bench/get_campaign.lua "http://127.0.0.1:$PORT" | grep -E "BENCH|Non-2xx|Socket errors" || true
echo "RSS after GET load: $(rss) MB (peak $(peak) MB)"
kill $SERVER; wait $SERVER 2>/dev/null || true

# Grow the log for the replay figure: each created campaign copied under new ids, and every
# copy edited four times, so streams look like real ones (Created + 4 Updated = 5 events).
COPIES="${HERALD_BENCH_REPLAY_COPIES:-20}"
psql "$DATABASE_URL" -qc "insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
  select gen_random_uuid()::text, org_id, stream_id || '-c' || g, r,
         case when r = 0 then 'Created' else 'Updated' end, event_version, created,
         case when r = 0 then jsonb_set(data, '{id}', to_jsonb(split_part(stream_id, ':', 2) || '-c' || g))
              else jsonb_build_object('spec', jsonb_set(data->'spec', '{name}', to_jsonb('Edit ' || r))) end,
         metadata
  from events, generate_series(1, $COPIES) g, generate_series(0, 4) r
  where stream_id like 'campaign-%' and event_type = 'Created'"
EVENTS=$(psql "$DATABASE_URL" -Atc "select count(*) from events")
echo "== herald replay --projection campaigns over $EVENTS events"
START=$(date +%s.%N)
$BIN replay --projection campaigns
END=$(date +%s.%N)
echo "replay: $EVENTS events in $(echo "$END - $START" | bc) s = $(echo "$EVENTS / ($END - $START)" | bc) events/s"
