#!/usr/bin/env bash
# Benchmark for erasure (issue 14, point 4; ADR 15), on PostgreSQL. Bar: erasing one contact with
# 1 000 events in a 10 000 000-event log takes <= 5 s, and ingest continues meanwhile.
#   bench/erase.sh    # needs: release build, python3, psql, PostgreSQL on 127.0.0.1:5432
# 1. 1 000 sandbox contacts, one campaign sent to them (open-pixel paths for the ingest load);
# 2. the log grown to HERALD_BENCH_EVENTS events (default 10 000 000) of other contacts'
#    engagements, plus HERALD_BENCH_CONTACT_EVENTS (default 1 000) engagements of the target
#    contact (each with a click link and an activity row), written in SQL;
# 3. ingest (bench/ingest_client.rs, 64 tasks, open pixels) runs while the target is erased;
#    prints the job's time (requestedAt to finishedAt, and by the wall clock), the opens
#    answered during the erasure, and checks that none of the target's values is left.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${HERALD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=herald_bench_erase
PORT="${HERALD_BENCH_PORT:-18084}"
EVENTS="${HERALD_BENCH_EVENTS:-10000000}"
CONTACT_EVENTS="${HERALD_BENCH_CONTACT_EVENTS:-1000}"
BIN="${HERALD_BENCH_BIN:-target/release/herald}"
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=
LOAD=
trap 'kill -9 $SERVER 2>/dev/null || true; kill $LOAD 2>/dev/null || true; rm -rf "$WORK"' EXIT

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
export HERALD_RATE_LIMIT_ORG=0 HERALD_TRACKING_MAX_PER_TOKEN=0
# The erasure logs its phases ("erasure timings": delete, first pass, total).
export HERALD_BIND=127.0.0.1:$PORT HERALD_DATA_DIR=$WORK RUST_LOG="${HERALD_BENCH_LOG:-warn,herald::erasure=info}" NO_COLOR=1
TOKEN=$($BIN token --org bench --role admin --ttl 2h)
start_server() {
  $BIN serve & SERVER=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
}
api() { curl -sf -X "$1" "$BASE$2" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' ${3:+-d "$3"}; }
start_server

echo "== set-up: 1 000 sandbox contacts and the target, one campaign sent to them"
api POST /crm/integrations/connections '{"platform": "email", "vendor": "sandbox", "label": "bench"}' >/dev/null
api POST /crm/marketing/templates '{"id": "tpl-bench", "name": "Bench", "email": {"subject": "Hi {{ contact.firstName }}", "html": "<p>Hi <a href=\"https://example.com/offer\">offer</a></p>"}}' >/dev/null
api POST /crm/audiences '{"id": "aud-all", "name": "All", "type": "dynamic", "filter": {"datatype": "contact", "where": {}}}' >/dev/null
python3 -c 'import json; print(json.dumps([{"id": "ct-%04d" % i, "email": "c%d@bench.test" % i, "firstName": "C%d" % i} for i in range(1000)]
  + [{"id": "ct-target", "email": "Target.Person@Bench.test", "phone": "+14155550199", "firstName": "Targetina",
      "lastName": "Benchmarkova", "attributes": {"code": "TGT-4242-XQ"}}]))' > "$WORK/contacts.json"
curl -sf -X POST "$BASE/crm/contacts/import" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' --data-binary @"$WORK/contacts.json" >/dev/null
api POST /crm/marketing/campaigns '{"id": "camp-hot", "name": "Hot", "type": "one-shot", "channels": ["email"], "audienceId": "aud-all", "templateId": "tpl-bench", "status": "running"}' >/dev/null
for _ in $(seq 1 300); do
  SENT=$(psql "$DATABASE_URL" -Atc "select count(*) from sandbox_messages where campaign_id = 'camp-hot'")
  [ "$SENT" -ge 1001 ] && break; sleep 0.2
done
psql "$DATABASE_URL" -Atc "select tracking::jsonb->>'open' from sandbox_messages where campaign_id = 'camp-hot' and contact_id <> 'ct-target'" \
  | sed -E 's#^https?://[^/]+##' > "$WORK/paths"
echo "sent $SENT messages"

echo "== growing the log to $EVENTS events, $CONTACT_EVENTS of them the target's"
kill $SERVER; wait $SERVER 2>/dev/null || true
HAVE=$(psql "$DATABASE_URL" -Atc "select count(*) from events")
META='{"actor": "bench", "orgId": "bench", "requestId": "", "correlationId": "", "causationId": ""}'
psql "$DATABASE_URL" -qc "insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
  select gen_random_uuid()::text, 'bench', 'delivery-bench:camp-hot:-:ct-' || (g % 1000) || '-' || g || ':email', 0,
         'EngagementRecorded', '1', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
         jsonb_build_object('campaignId', 'camp-hot', 'contactId', 'ct-' || lpad((g % 1000)::text, 4, '0'), 'channel', 'email',
           'type', 'open', 'classification', 'human', 'source', 'bench',
           'occurredAt', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
         '$META'::jsonb
  from generate_series(1, greatest($EVENTS - $HAVE - $CONTACT_EVENTS, 0)) g"
psql "$DATABASE_URL" -qc "insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata)
  select gen_random_uuid()::text, 'bench', 'delivery-bench:camp-hot:-:ct-target:email', g - 1,
         'EngagementRecorded', '1', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
         jsonb_build_object('campaignId', 'camp-hot', 'contactId', 'ct-target', 'channel', 'email',
           'type', 'click', 'classification', 'human', 'source', 'bench', 'link', 'https://example.com/offer?code=TGT-4242-XQ',
           'occurredAt', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
         '$META'::jsonb
  from generate_series(1, $CONTACT_EVENTS) g" \
  -c "insert into contact_activities (org_id, contact_id, position, seq, type, campaign_id, channel, at, detail)
      select org_id, 'ct-target', position, 0, 'click', 'camp-hot', 'email', to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
             '{\"link\": \"https://example.com/offer?code=TGT-4242-XQ\", \"source\": \"bench\"}'
      from events where stream_id = 'delivery-bench:camp-hot:-:ct-target:email'"
# The followers have nothing to do for generated events (the target's activities are written
# above); without this they would spend the measurement reading ten million events.
psql "$DATABASE_URL" -qc "update projection_checkpoints set tx_id = (select max(transaction_id)::text::bigint from events),
    position = (select max(position) from events)" -qc "analyze"
echo "log now holds $(psql "$DATABASE_URL" -Atc "select count(*) from events") events"
start_server

echo "== erasing ct-target while 64 tasks record opens"
$CLIENT "$BASE" "$WORK/paths" 64 20 "$WORK/answered" & LOAD=$!
sleep 3
START=$(date +%s.%N)
JOB=$(api POST /crm/contacts/ct-target/erase | python3 -c 'import json, sys; print(json.load(sys.stdin)["jobId"])')
STATUS=
for _ in $(seq 1 1200); do
  BODY=$(api GET "/crm/contacts/erasures/$JOB")
  STATUS=$(echo "$BODY" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
  [ "$STATUS" = done ] || [ "$STATUS" = failed ] && break
  sleep 0.05
done
END=$(date +%s.%N)
wait $LOAD || true; LOAD=
echo "job $JOB: $STATUS; $BODY"
echo "erasure by the wall clock (request to seeing it done, 50 ms polls): $(echo "$END - $START" | bc) s"
python3 -c 'import json, sys, datetime
b = json.loads(sys.argv[1])
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
print("erasure by the job (requestedAt to finishedAt): %.3f s" % (t(b["finishedAt"]) - t(b["requestedAt"])).total_seconds())' "$BODY"
echo "opens answered during the 20 s load (the erasure ran inside it): $(wc -l < "$WORK/answered")"
LEFT=$(psql "$DATABASE_URL" -Atc "select count(*) from events where org_id = 'bench' and data::text ~* '(TGT-4242-XQ|Target.Person@Bench|Targetina|Benchmarkova|4155550199)'")
echo "events still holding the target's values: $LEFT (must be 0)"
