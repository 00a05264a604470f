# Sourced by bench/engagement.sh and bench/ingest_ab.sh: what both measure open ingest with.

# bench_api METHOD PATH [curl arguments]: the API at $BASE as $TOKEN, org `bench`.
bench_api() { curl -sf -X "$1" "$BASE$2" -H "authorization: Bearer $TOKEN" -H 'orgid: bench' -H 'content-type: application/json' "${@:3}"; }

# hot_campaign PATHS: a sandbox email connection, a template with one tracked link, an audience
# of everyone and $RECIPIENTS contacts, then the one-shot `camp-hot` launched now; waits until
# every message is in the sandbox outbox ($DATABASE_URL) and writes their open-pixel paths to
# PATHS, shuffled. Sets SENT.
hot_campaign() {
  local paths=$1 contacts
  contacts=$(mktemp)
  bench_api POST /crm/integrations/connections -d '{"platform": "email", "vendor": "sandbox", "label": "bench"}' >/dev/null
  bench_api POST /crm/marketing/templates -d '{"id": "tpl-bench", "name": "Bench", "email": {"subject": "Hi", "html": "<p>Hi <a href=\"https://example.com/offer\">offer</a></p>"}}' >/dev/null
  bench_api POST /crm/audiences -d '{"id": "aud-all", "name": "All", "type": "dynamic", "filter": {"datatype": "contact", "where": {}}}' >/dev/null
  python3 -c 'import json, sys; n = int(sys.argv[1]); print(json.dumps([{"id": "ct-%06d" % i, "email": "c%d@bench.test" % i, "firstName": "C%d" % i} for i in range(n)]))' "$RECIPIENTS" > "$contacts"
  bench_api POST /crm/contacts/import --data-binary @"$contacts" >/dev/null
  rm -f "$contacts"
  bench_api POST /crm/marketing/campaigns -d '{"id": "camp-hot", "name": "Hot", "type": "one-shot", "channels": ["email"], "audienceId": "aud-all", "templateId": "tpl-bench", "status": "running"}' >/dev/null
  SENT=0
  for _ in $(seq 1 1500); do
    SENT=$(psql "$DATABASE_URL" -Atc "select count(*) from sandbox_messages where campaign_id = 'camp-hot'")
    [ "$SENT" -ge "$RECIPIENTS" ] && break; sleep 0.2
  done
  psql "$DATABASE_URL" -Atc "select tracking::jsonb->>'open' from sandbox_messages where campaign_id = 'camp-hot' order by random()" \
    | sed -E 's#^https?://[^/]+##' > "$paths"
}

# wrk_rate: the req/s of the BENCH line (bench/open_pixel.lua) on stdin.
wrk_rate() { sed -nE 's/.*BENCH rate=([0-9]+).*/\1/p' | head -1; }

# ingest_ratio INGEST HEALTHZ: open ingest over /healthz, the figure issue 19's bar (>= 0.25) is on.
ingest_ratio() { echo "scale=3; $1 / $2" | bc; }
