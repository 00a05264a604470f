-- Engagement and analytics (docs/analytics.md).

-- Idempotency keys of recorded engagements (`externalId`, a vendor's event id): written in the
-- transaction that appends the `EngagementRecorded` event, so a repeat records nothing.
create table engagement_keys (
    org_id text not null,
    key text not null,
    created_at text not null,
    primary key (org_id, key)
);

-- Daily rollups per org, campaign and channel (the `analytics` projection). Revenue is kept in
-- micro-units (value x 1 000 000) as an integer: sums are exact.
create table analytics_daily (
    org_id text not null,
    campaign_id text not null,
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
    primary key (org_id, campaign_id, channel, day)
);
create index analytics_daily_org_day on analytics_daily (org_id, day);

-- First human open / click per (campaign, channel, contact): what makes an open unique.
create table analytics_uniques (
    org_id text not null,
    campaign_id text not null,
    channel text not null,
    contact_id text not null,
    kind text not null,
    primary key (org_id, campaign_id, channel, contact_id, kind)
);

-- The contact activity log (`GET /crm/contacts/:id/activities`), newest first by position.
create table contact_activities (
    org_id text not null,
    contact_id text not null,
    position bigint not null,
    seq bigint not null,
    type text not null,
    campaign_id text not null,
    channel text not null,
    at text not null,
    detail text not null,
    primary key (org_id, contact_id, position, seq)
);
