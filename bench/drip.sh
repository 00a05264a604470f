#!/usr/bin/env bash
# Benchmark for drip sequences (issue 13), on PostgreSQL.
#   bench/drip.sh       # needs: release build, python3, psql, bc, PostgreSQL on 127.0.0.1:5432
# 1. fills an org with N contacts (HERALD_BENCH_CONTACTS, default 1 000 000), as bench/sending.sh;
# 2. measures the idle server: its CPU time and the database's transactions per second over
#    HERALD_BENCH_WINDOW seconds (default 20), with nothing pending;
# 3. launches a drip to all of them: step `first` (delay 0) and step `second` (delay 0, `at` the
#    next whole UTC minute at least HERALD_BENCH_SECOND_AFTER seconds after the launch, default
#    240), so every contact's second step falls due at the same moment;
# 4. reports the enrollment time (the `Launched` event to the last `ContactsEnrolled` event), the
#    first step's sends per second end to end (ledger rows of its run over the time from the
#    launch to the last row), the same window of server CPU and transactions per second with
#    1 000 000 second steps pending and not yet due, the second step's sends per second from its
#    due time to its last ledger row, and the server's peak RSS (sampled every second, and VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_drip
PORT="${HERALD_BENCH_PORT:-18083}"
TOTAL="${HERALD_BENCH_CONTACTS:-1000000}"
WINDOW="${HERALD_BENCH_WINDOW:-20}"
SECOND_AFTER="${HERALD_BENCH_SECOND_AFTER:-240}"
TIMEOUT="${HERALD_BENCH_TIMEOUT:-1800}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
WORK=$(mktemp -d)
SERVER=
SAMPLER=
trap '[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null; [ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

[ -n "${HERALD_BENCH_SKIP_BUILD:-}" ] || cargo build --release -q
psql "$ADMIN_URL" -qc "drop database if exists $DB with (force)" -qc "create database $DB"
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
export HERALD_TRACKING_SECRET=bench-tracking-secret-bench-tracking
export HERALD_SECRETS_KEY=bench-secrets-key-bench-secrets-key-00
export HERALD_RATE_LIMIT_ORG=1000000 HERALD_TRACKING_MAX_PER_TOKEN=1000000
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG=warn,sqlx::query=error
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
$BIN serve & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status; }
peak() { awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status; }
# The server's CPU time so far, in clock ticks (user + system).
ticks() { awk '{print $14 + $15}' /proc/$SERVER/stat; }
api() {
  curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' \
    -H 'content-type: application/json' ${3:+-d "$3"}
}
sql() { psql "$DATABASE_URL" -Atc "$1"; }
commits() { sql "select xact_commit + xact_rollback from pg_stat_database where datname = '$DB'"; }
# Server CPU (% of one core) and database transactions per second over $WINDOW seconds.
quiet() {
  local t0 c0 t1 c1 hz
  hz=$(getconf CLK_TCK)
  t0=$(ticks); c0=$(commits)
  sleep "$WINDOW"
  t1=$(ticks); c1=$(commits)
  echo "$1: server CPU $(echo "scale=2; ($t1 - $t0) * 100 / $hz / $WINDOW" | bc) % of a core," \
    "$(echo "scale=1; ($c1 - $c0) / $WINDOW" | bc) database transactions/s (the sampler's own queries excluded: it is paused)"
}

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
sleep 2
quiet "idle, nothing pending"

# Step `second`: the first whole UTC minute at least SECOND_AFTER seconds from now.
SECOND_DUE=$(python3 -c "
import datetime
t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=$SECOND_AFTER + 59)
print(t.replace(second=0, microsecond=0).strftime('%Y-%m-%dT%H:%M:%SZ'))")
SECOND_AT=${SECOND_DUE:11:5}
api POST /crm/marketing/campaigns "{\"id\": \"camp-drip\", \"name\": \"Bench drip\", \"type\": \"drip\", \"channels\": [\"email\"],
  \"audienceId\": \"aud-bench\", \"templateId\": \"tpl-bench\", \"schedule\": {\"timezone\": \"UTC\"},
  \"steps\": [{\"id\": \"first\", \"delay\": \"PT0S\"}, {\"id\": \"second\", \"delay\": \"PT0S\", \"at\": \"$SECOND_AT\"}]}" >/dev/null
api POST /crm/marketing/campaigns/camp-drip/launch >/dev/null
echo "== drip launched; step second due at $SECOND_DUE; sampling every second"

# Samples RSS and progress every second into $WORK/samples until told to stop.
sample() {
  while :; do
    [ -f "$WORK/pause" ] && { sleep 0.2; continue; }
    echo "$(date +%T) enrolled=$(sql "select count(*) from enrollments where org_id = 'bench'") sent=$(sql "select count(*) from send_ledger where org_id = 'bench'") rss=$(rss)MB"
    sleep 1
  done
}
sample > "$WORK/samples" 2>&1 & SAMPLER=$!
tail -f "$WORK/samples" & TAIL=$!
DEADLINE=$(( $(date +%s) + TIMEOUT ))
until [ "$(sql "select count(*) from send_ledger where org_id = 'bench'")" -ge "$TOTAL" ]; do
  [ "$(date +%s)" -lt "$DEADLINE" ] || { echo "timed out: first step" >&2; exit 1; }
  sleep 1
done
# First step done; every second step pending and not yet due.
if [ "$(python3 -c "import datetime; print(int((datetime.datetime.fromisoformat('$SECOND_DUE'.replace('Z', '+00:00')) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()))")" -gt $((WINDOW + 5)) ]; then
  touch "$WORK/pause"; sleep 1
  quiet "$(sql "select count(*) from enrollments where org_id = 'bench' and status = 'active'") steps pending, none due"
  rm -f "$WORK/pause"
else
  echo "no quiet window measured: step second falls due too soon (raise HERALD_BENCH_SECOND_AFTER)"
fi
until [ "$(sql "select count(*) from send_ledger where org_id = 'bench'")" -ge $((2 * TOTAL)) ]; do
  [ "$(date +%s)" -lt "$DEADLINE" ] || { echo "timed out: second step" >&2; exit 1; }
  sleep 1
done
for _ in $(seq 1 60); do
  [ "$(api GET /crm/marketing/campaigns/camp-drip | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = completed ] && break
  sleep 1
done
kill $SAMPLER $TAIL 2>/dev/null; SAMPLER=
PEAK_SAMPLED=$(grep -o 'rss=[0-9]*' "$WORK/samples" | cut -d= -f2 | sort -n | tail -1)

LAUNCHED=$(api GET /crm/marketing/campaigns/camp-drip/events | python3 -c '
import json, sys
print(next(e["created"] for e in json.load(sys.stdin)["items"] if e["eventType"] == "Launched"))')
ENROLLED=$(sql "select count(*) || ' ' || max(created) from events where event_type = 'ContactsEnrolled'")
sql "select run_id, count(*), min(created_at), max(created_at) from send_ledger where org_id = 'bench' group by run_id order by min(created_at)" > "$WORK/runs"
python3 - "$LAUNCHED" "$ENROLLED" "$SECOND_DUE" "$WORK/runs" <<'EOF'
import sys
from datetime import datetime
launched, enrolled, second_due, runs = sys.argv[1:]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
events, last_enrolled = enrolled.split(" ", 1)
print(f"enrollment: {(t(last_enrolled) - t(launched)).total_seconds():.2f} s from the Launched event to the last of {events} ContactsEnrolled events")
rows = [line.split("|") for line in open(runs).read().split()]
(first_run, first_n, first_min, first_max), (second_run, second_n, second_min, second_max) = rows
n = int(first_n)
span = (t(first_max) - t(launched)).total_seconds()
print(f"step first: {n} sends in {span:.2f} s from the launch = {n / span:.0f} sends/s end to end")
n = int(second_n)
span = (t(second_max) - t(second_due)).total_seconds()
print(f"step second: {n} sends in {span:.2f} s from its due time = {n / span:.0f} sends/s"
      f" (first row {(t(second_min) - t(second_due)).total_seconds():.2f} s after it fell due)")
EOF
echo "enrollments: $(sql "select status || '=' || count(*) from enrollments where org_id = 'bench' group by status" | tr '\n' ' ')"
echo "server RSS: peak sampled ${PEAK_SAMPLED} MB, VmHWM $(peak) MB"
