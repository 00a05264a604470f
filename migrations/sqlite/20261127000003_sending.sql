-- Scheduler jobs, derived from the campaign events (docs/scheduling.md): `launch` wakes a campaign
-- at its nextRunAt, `send` fans one run out to its audience. Claimed by the single writer.
create table jobs (
    id text primary key,
    org_id text not null,
    campaign_id text not null,
    kind text not null,
    run_id text,
    run_at text not null,
    state text not null,
    attempts bigint not null default 0,
    locked_by text,
    locked_until text,
    last_error text,
    payload text not null default '{}',
    created_at text not null,
    updated_at text not null
);
create index jobs_due on jobs (kind, state, run_at);
create index jobs_campaign on jobs (org_id, campaign_id, kind, state);

-- The send ledger: one row per (run, contact, channel), written with the sandbox record or before a
-- vendor call, so a second attempt finds it and sends nothing.
create table send_ledger (
    org_id text not null,
    run_id text not null,
    contact_id text not null,
    channel text not null,
    campaign_id text not null,
    state text not null,
    attempts bigint not null default 0,
    provider_message_id text,
    last_error text,
    created_at text not null,
    updated_at text not null,
    primary key (org_id, run_id, contact_id, channel)
);
create index send_ledger_campaign on send_ledger (org_id, campaign_id);

-- Latest send outcomes per org and channel, moved in the same transaction as the ledger (health).
create table channel_stats (
    org_id text not null,
    channel text not null,
    last_success_at text,
    last_failure_at text,
    consecutive_failures bigint not null default 0,
    primary key (org_id, channel)
);

-- The sandbox vendor's outbox: what would have been sent.
create table sandbox_messages (
    id text primary key,
    org_id text not null,
    campaign_id text not null,
    run_id text not null,
    channel text not null,
    contact_id text,
    to_address text not null,
    subject text,
    html text,
    text_body text,
    body text,
    headers text not null,
    tracking text not null,
    sent_at text not null
);
create index sandbox_messages_org on sandbox_messages (org_id, id);
create index sandbox_messages_campaign on sandbox_messages (org_id, campaign_id, id);

-- One row per process running the scheduler, with its heartbeat (any node can read them).
create table scheduler_nodes (
    node_id text primary key,
    workers bigint not null,
    started_at text not null,
    heartbeat_at text not null
);
