#!/usr/bin/env bash
# Benchmark for the campaign core (issue: event-sourced campaign core), on PostgreSQL.
#   bench/core.sh            # needs: a release build, wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432
#   HERALD_BENCH_REPLAY_ONLY=1 bench/core.sh   # no wrk: seeds campaigns with curl, replay figures only
# Prints figures to record in docs/benchmarks.md. The replay figure comes with its reference from
# the same run (issue 19): 1 000-row batched inserts into a table shaped like `events`, and the
# ratio of the two.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="${HERALD_BENCH_DB:-herald_bench}"
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

if [ -z "${HERALD_BENCH_REPLAY_ONLY:-}" ]; then
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
else
  # The body of bench/post_campaign.lua, sent one at a time.
  SEED="${HERALD_BENCH_SEED:-200}"
  for _ in $(seq 1 "$SEED"); do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/crm/marketing/campaigns" \
      -H "Authorization: Bearer $HERALD_BENCH_TOKEN" -H "orgid: bench" -H "Content-Type: application/json" \
      -d '{"name":"Bench campaign","type":"one-shot","channels":["email","sms"],"audienceId":"aud-bench","templateId":"tpl-bench","status":"draft"}'
  done
  echo "seeded $SEED campaigns through the API (no wrk load)"
fi
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
$BIN replay --quiet --projection campaigns
END=$(date +%s.%N)
REPLAY_RATE=$(echo "$EVENTS / ($END - $START)" | bc)
echo "replay: $EVENTS events in $(echo "$END - $START" | bc) s = $REPLAY_RATE events/s"

# The reference, in the same run: what this PostgreSQL does with 1 000-row batched inserts into
# a table shaped like `events` (same columns, defaults, keys and indexes, payloads the size of
# a real event's), one transaction per batch, generated server-side (`insert … select` from
# `generate_series`). As many rows as the replay read events, up to HERALD_BENCH_REF_ROWS.
REF_ROWS="${HERALD_BENCH_REF_ROWS:-1000000}"
REF_BATCHES=$(( (EVENTS < REF_ROWS ? EVENTS : REF_ROWS) / 1000 ))
[ "$REF_BATCHES" -ge 1 ] || REF_BATCHES=1
psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
  -c "create sequence ref_events_position" \
  -c "create table ref_events (like events including all)" \
  -c "alter table ref_events alter column position set default nextval('ref_events_position')"
for b in $(seq 1 "$REF_BATCHES"); do
  echo "insert into ref_events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
    select gen_random_uuid()::text, 'bench', 'campaign-bench:ref-$b-' || (g / 5), g % 5, 'Updated', '1',
           '2026-12-06T00:00:00.000000Z', p.data, p.metadata
    from generate_series(0, 999) g, ref_payload p;"
done > "$WORK/ref.sql"
# The temporary payload table lives in one session: run the batches in it, each its own commit.
REF_START=$(date +%s.%N)
psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
  -c "create temporary table ref_payload as
      select data, metadata from events where event_type = 'Created' order by position limit 1" \
  -f "$WORK/ref.sql"
REF_END=$(date +%s.%N)
REF_ROWS_DONE=$(( REF_BATCHES * 1000 ))
REF_RATE=$(echo "$REF_ROWS_DONE / ($REF_END - $REF_START)" | bc)
psql "$DATABASE_URL" -qc "drop table ref_events" -c "drop sequence ref_events_position"
echo "== reference: $REF_ROWS_DONE rows in 1 000-row batched inserts into a table shaped like events"
echo "reference: $REF_ROWS_DONE rows in $(echo "$REF_END - $REF_START" | bc) s = $REF_RATE rows/s"
echo "replay / reference: $(echo "scale=2; $REPLAY_RATE / $REF_RATE" | bc)x (bar >= 0.6x, goal >= 0.9x)"
