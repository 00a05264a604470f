-- Short links of SMS bodies (docs/scheduling.md): `GET /connect/s/<code>` answers 302 to
-- `target`, the message's signed click URL (or, for Herald's own links such as the unsubscribe
-- URL, that URL itself). Codes are random, written with the send (sandbox) or before the vendor
-- call, so a link is live by the time the message is out.
create table short_links (
    code text primary key,
    org_id text not null,
    campaign_id text not null,
    run_id text not null,
    contact_id text not null,
    channel text not null,
    target text not null,
    created_at text not null
);
create index short_links_campaign on short_links (org_id, campaign_id);
