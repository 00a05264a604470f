#!/usr/bin/env bash
# First paint of the dashboard (issue 16, speed), on PostgreSQL:
#   bench/dashboard.sh     # needs: a release build, chromium + chromium-driver, python3, PostgreSQL
# 1. `herald demo --org demo` fills the org through the API, as a user would;
# 2. the log grows to HERALD_BENCH_EVENTS engagement events of that org (default 10 000 000),
#    spread over its campaigns and the last 30 days, with their daily rollups summed in SQL (what
#    the analytics projection writes; bench/engagement.sh does the same);
# 3. bench/first_paint.py loads `/#/` in headless Chromium, cache disabled, HERALD_BENCH_RUNS
#    times (default 7) and prints the first contentful paint and the moment the tiles are painted
#    with the API's numbers, and the bytes the page and its calls transferred.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_dashboard
PORT="${HERALD_BENCH_PORT:-18084}"
EVENTS="${HERALD_BENCH_EVENTS:-10000000}"
RUNS="${HERALD_BENCH_RUNS:-7}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -n "${HERALD_BENCH_SKIP_BUILD:-}" ] || cargo build --release -q
psql "$ADMIN_URL" -qc "drop database if exists $DB with (force)" -qc "create database $DB"
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
export HERALD_TRACKING_SECRET=bench-tracking-secret-bench-tracking
export HERALD_SECRETS_KEY=bench-secrets-key-bench-secrets-key-00
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn HERALD_SIGNIN_LINK=off

echo "== herald demo --org demo"
$BIN migrate >/dev/null
# A rerun writes nothing new and waits again: on a busy machine the first may time out waiting.
$BIN demo --org demo --quiet >/dev/null || $BIN demo --org demo --quiet >/dev/null
HAVE=$(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'")
echo "the demo recorded $HAVE engagement events; growing the log to $EVENTS"
START=$(date +%s)
# Each generated event belongs to one of the demo's sent campaigns, on its first channel, on one
# of the last 30 days; a third each open, click and delivery.
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "create temp table bench_campaigns as
    select row_number() over (order by id) - 1 as n, id, split_part(channels, ',', 2) as channel
    from campaigns where org_id = 'demo' and split_part(channels, ',', 2) <> ''" -c "
  insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
  select gen_random_uuid()::text, 'demo', 'delivery-demo:' || c.id || ':bench:ct-b' || g || ':' || c.channel, 0,
         'EngagementRecorded', '1', to_char(now() - (((g / 7) % 30) || ' days')::interval, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
         jsonb_build_object('campaignId', c.id, 'contactId', 'ct-b' || g, 'channel', c.channel,
           'type', (array['open', 'click', 'delivery'])[1 + g % 3], 'classification', 'human', 'source', 'bench',
           'occurredAt', to_char(now() - (((g / 7) % 30) || ' days')::interval, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
         '{\"actor\": \"bench\", \"orgId\": \"demo\", \"requestId\": \"\", \"correlationId\": \"\", \"causationId\": \"\"}'::jsonb
  from generate_series(1, greatest($EVENTS - $HAVE, 0)) g
  join bench_campaigns c on c.n = g % (select count(*) from bench_campaigns)" -c "
  insert into analytics_daily (org_id, campaign_id, channel, day, opens, clicks, deliveries, updated_at)
      select org_id, data->>'campaignId', data->>'channel', substr(data->>'occurredAt', 1, 10),
             count(*) filter (where data->>'type' = 'open'), count(*) filter (where data->>'type' = 'click'),
             count(*) filter (where data->>'type' = 'delivery'), to_char(now(), 'YYYY-MM-DD')
      from events where event_type = 'EngagementRecorded' and data->>'source' = 'bench' group by 1, 2, 3, 4
      on conflict (org_id, campaign_id, channel, day) do update set opens = analytics_daily.opens + excluded.opens,
        clicks = analytics_daily.clicks + excluded.clicks, deliveries = analytics_daily.deliveries + excluded.deliveries" \
  -c "update projection_checkpoints set tx_id = (select max(transaction_id)::text::bigint from events),
        position = (select max(position) from events)"
echo "log: $(psql "$DATABASE_URL" -Atc "select count(*) from events where event_type = 'EngagementRecorded'") engagement events, $(psql "$DATABASE_URL" -Atc "select count(*) from events") in all ($(( $(date +%s) - START )) s to write)"

$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$($BIN token --org demo --role admin --ttl 1h)
echo "== first paint of $BASE/#/ in headless Chromium, $RUNS runs after a warm-up, cache disabled"
python3 bench/first_paint.py "$BASE" "$TOKEN" demo "$RUNS"
echo "RSS of the server: $(awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status) MB"
