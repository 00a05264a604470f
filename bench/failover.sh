#!/usr/bin/env bash
# Failover benchmark (issue 22), on PostgreSQL: two `herald serve` on one database, a one-shot
# campaign to N sandbox contacts (HERALD_BENCH_CONTACTS, default 200 000), and the process
# holding the run's send job stopped mid-run, first with SIGKILL, then (on a second campaign,
# the killed process restarted) with SIGTERM.
#   bench/failover.sh      # needs: release build, python3, psql, PostgreSQL on 127.0.0.1:5432
# Reports, for each signal: the seconds from the signal to the survivor's claim of the job and
# to its first message in the outbox (goals: <= 5 s after a kill, <= 1 s after a graceful stop),
# whether every contact got exactly one message, and the run's sends per second.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_failover
PORTS=("${HERALD_BENCH_PORT:-18090}" "$(( ${HERALD_BENCH_PORT:-18090} + 1 ))")
TOTAL="${HERALD_BENCH_CONTACTS:-200000}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
WORK=$(mktemp -d)
PIDS=("" "")
trap 'for p in "${PIDS[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT

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
export HERALD_DATA_DIR=$WORK RUST_LOG=warn,sqlx::query=error
$BIN migrate 2>/dev/null
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
sql() { psql "$DATABASE_URL" -Atc "$1"; }

# start I: process I on its port; waits until it answers /readyz and records its scheduler node.
NODES=("" "")
start() {
  local before; before=$(sql "select string_agg(node_id, ',') from scheduler_nodes")
  HERALD_BIND=127.0.0.1:${PORTS[$1]} $BIN serve 2>>"$WORK/node-$1.log" & PIDS[$1]=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:${PORTS[$1]}/readyz" >/dev/null && break; sleep 0.05; done
  NODES[$1]=$(sql "select node_id from scheduler_nodes where position(node_id in '${before}') = 0 order by started_at desc limit 1")
}
api() {
  curl -sf -X "$1" "http://127.0.0.1:${PORTS[$2]}$3" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' \
    -H 'content-type: application/json' ${4:+-d "$4"}
}
now() { python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))'; }

start 0
start 1
api POST 0 /crm/integrations/connections '{"platform": "email", "vendor": "sandbox", "label": "Bench"}' >/dev/null
api POST 0 /crm/marketing/templates '{"id": "tpl-bench", "name": "Bench", "email": {"subject": "News for {{ contact.firstName }}",
  "html": "<html><body><p>Hi {{ contact.firstName }},</p><p><a href=\"https://acme.test/news?utm=bench\">Read on</a></p></body></html>"}}' >/dev/null
api POST 0 /crm/audiences '{"id": "aud-bench", "name": "Everyone", "filter": {"datatype": "contact", "where": {"tags": "news"}}}' >/dev/null
api POST 0 /crm/contacts/import '[{"id": "ct-0000000", "email": "person0@example.com", "firstName": "First0", "tags": ["news"]}]' >/dev/null
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
echo "== $(sql "select count(*) from documents where org_id = 'bench' and kind = 'contact'") contacts; nodes ${NODES[0]} ${NODES[1]}"

# run CAMPAIGN SIGNAL: launches CAMPAIGN, stops its sender with SIGNAL once a fifth is out,
# and measures the survivor.
run() {
  local campaign=$1 signal=$2
  api POST 0 /crm/marketing/campaigns "{\"id\": \"$campaign\", \"name\": \"Bench\", \"type\": \"one-shot\", \"channels\": [\"email\"],
    \"audienceId\": \"aud-bench\", \"templateId\": \"tpl-bench\", \"status\": \"running\"}" >/dev/null
  local run_sql="select run_id from jobs where kind = 'send' and campaign_id = '$campaign'"
  until [ "$(sql "select count(*) from send_ledger where run_id = ($run_sql)")" -ge $(( TOTAL / 5 )) ]; do sleep 0.05; done
  local holder; holder=$(sql "select locked_by from jobs where kind = 'send' and campaign_id = '$campaign'")
  local victim=0; [ "$holder" = "${NODES[1]}" ] && victim=1
  local survivor=$(( 1 - victim ))
  local at; at=$(now)
  kill -"$signal" "${PIDS[$victim]}"
  local before; before=$(sql "select count(*) from sandbox_messages where campaign_id = '$campaign'")
  # Polls every 20 ms for the survivor's claim and for the stopped process's exit (a zombie,
  # not yet reaped, counts as gone).
  local claimed="" stopped_at="" pid=${PIDS[$victim]}
  for _ in $(seq 1 2000); do
    [ -n "$claimed" ] || claimed=$(sql "select updated_at from jobs where campaign_id = '$campaign' and kind = 'send' and locked_by = '${NODES[$survivor]}'")
    if [ -z "$stopped_at" ] && { [ ! -e /proc/$pid ] || grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; }; then
      stopped_at=$(now)
    fi
    [ -n "$claimed" ] && [ -n "$stopped_at" ] && break
    sleep 0.02
  done
  wait "$pid" 2>/dev/null || true
  PIDS[$victim]=""
  until [ "$(api GET $survivor /crm/marketing/campaigns/$campaign | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = completed ]; do sleep 0.5; done
  local first; first=$(sql "select min(sent_at) from sandbox_messages where campaign_id = '$campaign' and sent_at >= '$claimed'")
  read -r count contacts start end < <(sql "select count(*), count(distinct contact_id), min(sent_at), max(sent_at) from sandbox_messages where campaign_id = '$campaign'" | tr '|' ' ')
  python3 - "$signal" "$at" "$claimed" "$first" "$stopped_at" "$before" "$count" "$contacts" "$TOTAL" "$start" "$end" <<'EOF'
import sys
from datetime import datetime
signal, at, claimed, first, stopped, before, count, contacts, total, start, end = sys.argv[1:]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
print(f"SIG{signal}: {before} of {total} sent at the signal")
print(f"  survivor claimed the job {(t(claimed) - t(at)).total_seconds():.3f} s after the signal")
print(f"  survivor's first message {(t(first) - t(at)).total_seconds():.3f} s after the signal")
print(f"  the stopped process was gone {(t(stopped) - t(at)).total_seconds():.3f} s after the signal")
print(f"  outbox: {count} messages to {contacts} contacts (exactly once: {count == contacts == total})")
print(f"  run: {int(count) / (t(end) - t(start)).total_seconds():.0f} sends/s from its first message to its last, failover included")
EOF
  start "$victim"
}

run camp-kill KILL
run camp-term TERM
grep -h 'took over a job' "$WORK"/node-*.log | head -3 || true
