-- The append-only event log: one global order, one stream per aggregate.
create table events (
    position bigserial primary key,
    transaction_id xid8 not null default pg_current_xact_id(),
    event_id text not null unique,
    org_id text not null,
    stream_id text not null,
    revision bigint not null,
    event_type text not null,
    event_version text not null,
    created text not null,
    data jsonb not null,
    metadata jsonb not null,
    unique (stream_id, revision)
);
create index events_catch_up on events (transaction_id, position);
create index events_org_position on events (org_id, position);

-- Each async projection's checkpoint; moved in the same transaction as its read-model change.
create table projection_checkpoints (
    name text primary key,
    tx_id bigint not null default 0,
    position bigint not null default 0,
    updated_at text not null
);

-- Create requests with an Idempotency-Key: the first response, replayed for 24 hours.
create table idempotency_keys (
    org_id text not null,
    key text not null,
    request_hash text not null,
    status bigint not null,
    body text not null,
    created_at text not null,
    primary key (org_id, key)
);

-- Campaign read model, written inline with the events that change it.
create table campaigns (
    org_id text not null,
    id text not null,
    name text not null,
    name_lower text not null,
    type text not null,
    status text not null,
    state text not null,
    channels text not null,
    version bigint not null,
    created_at text not null,
    updated_at text not null,
    doc text not null,
    primary key (org_id, id)
);
create index campaigns_org_created on campaigns (org_id, created_at, id);
create index campaigns_org_updated on campaigns (org_id, updated_at, id);
create index campaigns_org_name on campaigns (org_id, name_lower, id);

-- Async projection: campaign counts per org and status (dashboard tiles).
create table campaign_status_index (
    org_id text not null,
    campaign_id text not null,
    status text not null,
    deleted bigint not null,
    primary key (org_id, campaign_id)
);
create table campaign_status_counts (
    org_id text not null,
    status text not null,
    count bigint not null,
    primary key (org_id, status)
);
