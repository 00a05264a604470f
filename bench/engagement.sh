#!/usr/bin/env bash
# Benchmark for engagement ingest and analytics (issue: engagement tracking and analytics), on PostgreSQL.
#   bench/engagement.sh    # needs: release build, wrk, python3, PostgreSQL on 127.0.0.1:5432
# 1. launches a campaign to HERALD_BENCH_RECIPIENTS sandbox contacts (default 20 000, issue 19)
#    and collects their open-pixel paths, in a shuffled order;
# 2. ingest: wrk, 128 connections, opens on that ONE campaign (each answered after its commit),
#    with the projection lag sampled meanwhile; then /healthz the same way, and the ratio of the
#    two rates (issue 19's bar: ingest >= 0.25x /healthz, p99 <= 50 ms);
# 3. durability: bench/ingest_client.rs (128 tasks, own request ids) while the server is killed
#    with SIGKILL; after a restart every answered request id must be in the log;
# 4. analytics: grows the log to HERALD_BENCH_EVENTS engagement events (default 10 000 000) and
#    the rollups to 100 campaigns x 30 days, then wrk on aggregated-metrics and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/open_ingest.sh

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_engagement
PORT="${HERALD_BENCH_PORT:-18082}"
DURATION="${HERALD_BENCH_DURATION:-20s}"
EVENTS="${HERALD_BENCH_EVENTS:-10000000}"
RECIPIENTS="${HERALD_BENCH_RECIPIENTS:-20000}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=
SAMPLER=
trap 'kill -9 $SERVER 2>/dev/null || true; kill $SAMPLER 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -z "${HERALD_BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -q
  cargo build --release -q --example ingest_client
fi
CLIENT="${HERALD_BENCH_CLIENT:-target/release/examples/ingest_client}"
[ -x "$CLIENT" ] || { echo "no load client at $CLIENT: cargo build --release --example ingest_client" >&2; exit 1; }
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
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
start_server() {
  $BIN serve & SERVER=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
}
api() { bench_api "$1" "$2" ${3:+-d "$3"}; }
start_server

echo "== set-up: $RECIPIENTS sandbox contacts, one campaign launched now"
hot_campaign "$WORK/paths"
echo "sent $SENT messages; $(wc -l < "$WORK/paths") open-pixel paths"

# Projection lag: every 100 ms, the log head and the analytics checkpoint. A sample's lag is the
# time until the checkpoint reached that sample's head. One psql session reads the queries from
# a pipe: a psql per sample (Debian's is a Perl wrapper) took about a tenth of the machine from
# the server it measures. Each query is its own transaction, so no snapshot is held.
sample_lag() {
  while [ ! -e "$WORK/stop-sampler" ]; do
    echo "select extract(epoch from clock_timestamp()), (select coalesce(max(position), 0) from events),
      coalesce((select position from projection_checkpoints where name = 'analytics'), 0);"
    sleep 0.1
  done | psql "$DATABASE_URL" -Atq 2>/dev/null | tr '|' ' '
}
sample_lag > "$WORK/lag" & SAMPLER=$!
echo "== ingest: open pixel on ONE campaign, 128 connections, $DURATION"
BEFORE=$(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'")
HERALD_BENCH_PATHS="$WORK/paths" wrk -t2 -c128 -d"$DURATION" --latency -s bench/open_pixel.lua "$BASE" | grep -E "BENCH|Socket errors" | tee "$WORK/ingest.out" || true
sleep 3
touch "$WORK/stop-sampler"; wait $SAMPLER 2>/dev/null || true; SAMPLER=
AFTER=$(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'")
echo "events recorded during the run: $((AFTER - BEFORE))"
awk '{ t[NR] = $1; head[NR] = $2; cp[NR] = $3 }
     END { for (i = 1; i <= NR; i++) { for (j = i; j <= NR && cp[j] < head[i]; j++); if (j <= NR) print t[j] - t[i] } }' "$WORK/lag" \
  | sort -n | awk '{ v[NR] = $1 } END { if (NR > 0) { p99 = int(NR * 0.99); if (p99 < 1) p99 = 1;
      printf "projection lag over %d samples: p50 %.3f s, p99 %.3f s, max %.3f s\n", NR, v[int(NR / 2) + 1], v[p99], v[NR] } }'
echo "== /healthz, 128 connections, $DURATION (for comparison)"
echo "/healthz" > "$WORK/healthz"
HERALD_BENCH_PATHS="$WORK/healthz" wrk -t2 -c128 -d"$DURATION" --latency -s bench/open_pixel.lua "$BASE" | grep -E "BENCH|Socket errors" | tee "$WORK/healthz.out" || true
INGEST_RATE=$(wrk_rate < "$WORK/ingest.out"); HEALTHZ_RATE=$(wrk_rate < "$WORK/healthz.out")
[ -n "$INGEST_RATE" ] && [ -n "$HEALTHZ_RATE" ] && \
  echo "ratio (open ingest / /healthz, same run; bar >= 0.25): $(ingest_ratio "$INGEST_RATE" "$HEALTHZ_RATE")"

echo "== durability: SIGKILL during ingest"
$CLIENT "$BASE" "$WORK/paths" 128 12 "$WORK/answered" & LOAD=$!
sleep 6
kill -9 $SERVER; wait $SERVER 2>/dev/null || true
wait $LOAD || true
start_server
psql "$DATABASE_URL" -qc "create temp table answered (id text)" -c "\copy answered from '$WORK/answered'" \
  -c "select count(*) as answered, count(e.position) as in_log, count(*) - count(e.position) as missing
      from answered a left join events e on e.metadata->>'requestId' = a.id and e.event_type = 'EngagementRecorded'"

[ -n "${HERALD_BENCH_INGEST_ONLY:-}" ] && exit 0
echo "== analytics: growing the log to $EVENTS engagement events and rollups to 100 campaigns x 30 days"
kill $SERVER; wait $SERVER 2>/dev/null || true
HAVE=$(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'")
psql "$DATABASE_URL" -qc "insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
  select gen_random_uuid()::text, 'bench', 'delivery-bench:camp-' || (g % 100) || ':-:ct-' || g || ':email', 0,
         'EngagementRecorded', '1', to_char(now() - (((g / 100) % 30) || ' days')::interval, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
         jsonb_build_object('campaignId', 'camp-' || (g % 100), 'contactId', 'ct-' || g, 'channel', 'email',
           'type', (array['open', 'click', 'delivery'])[1 + g % 3], 'classification', 'human', 'source', 'bench',
           'occurredAt', to_char(now() - (((g / 100) % 30) || ' days')::interval, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
         '{\"actor\": \"bench\", \"orgId\": \"bench\", \"requestId\": \"\", \"correlationId\": \"\", \"causationId\": \"\"}'::jsonb
  from generate_series(1, greatest($EVENTS - $HAVE, 0)) g"
echo "log now holds $(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'") engagement events"
if [ -n "${HERALD_BENCH_REPLAY:-}" ]; then
  START=$(date +%s.%N)
  $BIN replay --projection analytics
  END=$(date +%s.%N)
  echo "replay of analytics: $(echo "$END - $START" | bc) s"
else
  # The rollups of the generated events, summed in SQL, and the checkpoint moved past them:
  # what the projection would write, without waiting for it (HERALD_BENCH_REPLAY=1 replays).
  psql "$DATABASE_URL" -qc "insert into analytics_daily (org_id, campaign_id, channel, day, opens, clicks, deliveries, updated_at)
      select org_id, data->>'campaignId', data->>'channel', substr(data->>'occurredAt', 1, 10),
             count(*) filter (where data->>'type' = 'open'), count(*) filter (where data->>'type' = 'click'),
             count(*) filter (where data->>'type' = 'delivery'), to_char(now(), 'YYYY-MM-DD')
      from events where event_type = 'EngagementRecorded' and data->>'source' = 'bench' group by 1, 2, 3, 4
      on conflict (org_id, campaign_id, channel, day) do update set opens = analytics_daily.opens + excluded.opens,
        clicks = analytics_daily.clicks + excluded.clicks, deliveries = analytics_daily.deliveries + excluded.deliveries" \
    -c "update projection_checkpoints set tx_id = (select max(transaction_id)::text::bigint from events),
        position = (select max(position) from events) where name = 'analytics'"
  # The status counts and the scheduler have nothing to do for engagement events; had the events
  # arrived through the API they would have been followed as they came. Without this, both would
  # spend the measurement reading ten million events.
  psql "$DATABASE_URL" -qc "update projection_checkpoints set tx_id = (select max(transaction_id)::text::bigint from events),
      position = (select max(position) from events) where name in ('campaign-status-counts', 'scheduler')"
fi
start_server
for i in $(seq 0 99); do
  api POST /crm/marketing/campaigns "{\"id\": \"camp-$i\", \"name\": \"Bench $i\", \"type\": \"one-shot\", \"channels\": [\"email\"]}" >/dev/null 2>&1 || true
done
echo "rollup rows: $(psql "$DATABASE_URL" -Atc "select count(*) from analytics_daily")"
FROM=$(date -u -d '29 days ago' +%F); TO=$(date -u +%F)
IDS=$(python3 -c 'import json; print(json.dumps(["camp-%d" % i for i in range(100)]))')
cat > "$WORK/agg.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"campaignIds": $IDS, "range": {"start": "$FROM", "end": "$TO"}}'
wrk.headers["authorization"] = "Bearer $TOKEN"
wrk.headers["orgid"] = "bench"
wrk.headers["content-type"] = "application/json"
LUA
sed -n '/^done = /,$p' bench/open_pixel.lua >> "$WORK/agg.lua"
echo "== POST /crm/marketing/campaigns/aggregated-metrics (100 campaigns, 30 days), 16 connections, $DURATION"
wrk -t2 -c16 -d"$DURATION" --latency -s "$WORK/agg.lua" "$BASE/crm/marketing/campaigns/aggregated-metrics" | grep -E "BENCH|Socket errors" || true
cat > "$WORK/dash.lua" <<LUA
wrk.headers["authorization"] = "Bearer $TOKEN"
wrk.headers["orgid"] = "bench"
LUA
sed -n '/^done = /,$p' bench/open_pixel.lua >> "$WORK/dash.lua"
echo "== GET /crm/marketing/dashboard, 16 connections, $DURATION"
wrk -t2 -c16 -d"$DURATION" --latency -s "$WORK/dash.lua" "$BASE/crm/marketing/dashboard" | grep -E "BENCH|Socket errors" || true
