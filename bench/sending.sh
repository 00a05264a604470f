#!/usr/bin/env bash
# Benchmark for scheduling and sending (issue: scheduling, launch and sending), on PostgreSQL.
#   bench/sending.sh       # needs: release build, python3, psql, PostgreSQL on 127.0.0.1:5432
# 1. fills an org with N contacts (HERALD_BENCH_CONTACTS, default 1 000 000): one imported through
#    the API, the rest copied from it in SQL (sending reads only the `documents` read model);
# 2. schedules a one-shot email campaign (sandbox connection, a template with a tracked link)
#    to all of them, HERALD_BENCH_LEAD seconds ahead (default 5);
# 3. reports the launch delay (the `Launched` event's time minus `startAt`), sends per second
#    end to end (ledger rows over the time from the `Launched` event to the last row), the
#    ledger count sampled every second, and the server's peak RSS (sampled, and VmHWM).
# Consent (issue 14): HERALD_BENCH_SUPPRESSED=N lists N email addresses on the org's suppression
# list, every tenth one a recipient (the rest unrelated addresses); HERALD_BENCH_CAP=N sets a
# frequency cap of N sends per contact and day on every channel. Suppressed recipients get no
# ledger row; the figure counts ledger rows (sends and capped rows) over the launch's time.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_sending
PORT="${HERALD_BENCH_PORT:-18082}"
TOTAL="${HERALD_BENCH_CONTACTS:-1000000}"
LEAD="${HERALD_BENCH_LEAD:-5}"
TIMEOUT="${HERALD_BENCH_TIMEOUT:-1800}"
SUPPRESSED="${HERALD_BENCH_SUPPRESSED:-0}"
CAP="${HERALD_BENCH_CAP:-}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

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
# sqlx logs every statement over 1 s with its 500 parameters: keep the output readable.
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn,sqlx::query=error
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status; }
peak() { awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status; }
api() {
  curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' \
    -H 'content-type: application/json' ${3:+-d "$3"}
}
sql() { psql "$DATABASE_URL" -Atc "$1"; }

api POST /crm/integrations/connections '{"platform": "email", "vendor": "sandbox", "label": "Bench"}' >/dev/null
api POST /crm/marketing/templates '{"id": "tpl-bench", "name": "Bench", "email": {"subject": "News for {{ contact.firstName }}",
  "html": "<html><body><p>Hi {{ contact.firstName }},</p><p><a href=\"https://acme.test/news?utm=bench\">Read on</a></p><p><a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></p></body></html>",
  "text": "Hi {{ contact.firstName }}, read on at https://acme.test/news"}}' >/dev/null
api POST /crm/audiences '{"id": "aud-bench", "name": "Everyone", "filter": {"datatype": "contact", "where": {"tags": "news"}}}' >/dev/null
api POST /crm/contacts/import '[{"id": "ct-0000000", "email": "person0@example.com", "firstName": "First0", "tags": ["news"]}]' >/dev/null

echo "== filling the org to $TOTAL contacts (copies of the imported one, in SQL)"
START=$(date +%s.%N)
sql "insert into documents (org_id, kind, id, lookup, version, created_at, updated_at, doc)
  select t.org_id, t.kind, 'ct-' || lpad(g::text, 7, '0'), 'person' || g || '@example.com', t.version,
         t.created_at, t.updated_at,
         jsonb_set(jsonb_set(jsonb_set(t.doc::jsonb,
           '{id}', to_jsonb('ct-' || lpad(g::text, 7, '0'))),
           '{email}', to_jsonb('person' || g || '@example.com')),
           '{firstName}', to_jsonb('First' || g))::text
  from documents t, generate_series(1, $TOTAL - 1) g
  where t.org_id = 'bench' and t.kind = 'contact' and t.id = 'ct-0000000'" >/dev/null
sql "analyze documents" >/dev/null
echo "org holds $(sql "select count(*) from documents where org_id = 'bench' and kind = 'contact'") contacts ($(echo "$(date +%s.%N) - $START" | bc) s)"

if [ "$SUPPRESSED" -gt 0 ]; then
  # Every tenth listed address is a recipient's; the others belong to nobody in the org.
  sql "insert into suppressions (org_id, channel, address, reason, source, at)
    select 'bench', 'email', case when g % 10 = 0 then 'person' || (g / 10) || '@example.com'
                                  else 'gone' || g || '@elsewhere.test' end,
           'unsubscribe', 'bench', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
    from generate_series(1, $SUPPRESSED) g on conflict do nothing" >/dev/null
  sql "analyze suppressions" >/dev/null
  echo "suppression list: $(sql "select count(*) from suppressions where org_id = 'bench'") addresses"
fi
if [ -n "$CAP" ]; then
  api PUT /crm/marketing/settings "{\"frequencyCaps\": [{\"channel\": \"*\", \"max\": $CAP, \"per\": \"day\"}]}" >/dev/null
  echo "frequency cap: $CAP per contact and day, every channel"
fi

START_AT=$(python3 -c "import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=$LEAD)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z')")
api POST /crm/marketing/campaigns "{\"id\": \"camp-bench\", \"name\": \"Bench\", \"type\": \"one-shot\", \"channels\": [\"email\"],
  \"audienceId\": \"aud-bench\", \"templateId\": \"tpl-bench\", \"schedule\": {\"startAt\": \"$START_AT\"}, \"status\": \"scheduled\"}" >/dev/null
echo "== campaign scheduled at $START_AT; sampling the send ledger every second"
PEAK_SAMPLED=0
DEADLINE=$(( $(date +%s) + LEAD + TIMEOUT ))
while :; do
  NOW=$(rss); [ "$NOW" -gt "$PEAK_SAMPLED" ] && PEAK_SAMPLED=$NOW
  STATUS=$(api GET /crm/marketing/campaigns/camp-bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  SENT=$(sql "select count(*) from send_ledger where org_id = 'bench'")
  echo "$(date +%T) status=$STATUS ledger=$SENT rss=${NOW}MB"
  [ "$STATUS" = completed ] && break
  [ "$(date +%s)" -lt "$DEADLINE" ] || { echo "timed out after ${TIMEOUT}s" >&2; exit 1; }
  sleep 1
done

LAUNCHED=$(api GET /crm/marketing/campaigns/camp-bench/events | python3 -c '
import json, sys
print(next(e["created"] for e in json.load(sys.stdin)["items"] if e["eventType"] == "Launched"))')
read -r COUNT FIRST LAST < <(sql "select count(*), min(created_at), max(created_at) from send_ledger where org_id = 'bench'" | tr '|' ' ')
python3 - "$START_AT" "$LAUNCHED" "$COUNT" "$FIRST" "$LAST" <<'EOF'
import sys
from datetime import datetime
start_at, launched, count, first, last = sys.argv[1:]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
count = int(count)
print(f"launch delay: {(t(launched) - t(start_at)).total_seconds():.3f} s (Launched at {launched}, startAt {start_at})")
end_to_end = (t(last) - t(launched)).total_seconds()
steady = (t(last) - t(first)).total_seconds()
print(f"sends: {count} in {end_to_end:.2f} s from the launch = {count / end_to_end:.0f} sends/s end to end")
if steady > 0:
    print(f"       {count / steady:.0f} sends/s from the first ledger row to the last ({steady:.2f} s)")
EOF
echo "skipped as suppressed: $(sql "select count(*) from suppressions s where org_id = 'bench' and address like 'person%'"); capped ledger rows: $(sql "select count(*) from send_ledger where org_id = 'bench' and state = 'capped'")"
echo "outbox: $(sql "select count(*) from sandbox_messages where org_id = 'bench'") messages, $(sql "select count(distinct contact_id) from sandbox_messages where org_id = 'bench'") contacts"
echo "server RSS: peak sampled ${PEAK_SAMPLED} MB, VmHWM $(peak) MB"
