-- Per-step rollups of drip and milestone campaigns (the `analytics` projection): the counters of
-- `analytics_daily` for the sends and engagement of each step's ledger run (`step-…`), per
-- channel and day. `GET …/analytics` maps the runs to their steps (docs/analytics.md).
create table analytics_step_days (
    org_id text not null,
    campaign_id text not null,
    run_id text not null,
    channel text not null,
    day text not null,
    sends bigint not null default 0,
    failures bigint not null default 0,
    deliveries bigint not null default 0,
    opens bigint not null default 0,
    unique_opens bigint not null default 0,
    machine_opens bigint not null default 0,
    clicks bigint not null default 0,
    unique_clicks bigint not null default 0,
    machine_clicks bigint not null default 0,
    replies bigint not null default 0,
    bounces bigint not null default 0,
    complaints bigint not null default 0,
    unsubscribes bigint not null default 0,
    conversions bigint not null default 0,
    revenue_micros bigint not null default 0,
    impressions bigint not null default 0,
    interactions bigint not null default 0,
    updated_at text not null,
    primary key (org_id, campaign_id, run_id, channel, day)
);
