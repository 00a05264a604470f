-- Drip and milestone enrollments (docs/strategies.md): one row per (campaign, contact, milestone
-- date; '' for a drip), the contact's durable step timer. `poll_at` is when the scheduler next
-- looks at the row (its next step's due time, or a claim's lease); `step_due_at` is the next
-- step's own due time, from which the following step's delay counts. `skipped` has bit i set
-- when step i was skipped by its `when`. `starts_at` is what the first step's delay counts from
-- (the enrollment, or the milestone), and `zone` the time zone its local times were read in.
create table enrollments (
    org_id text not null,
    campaign_id text not null,
    contact_id text not null,
    milestone text not null default '',
    enrolled_at text not null,
    status text not null,
    exit_reason text,
    next_step bigint not null default 0,
    skipped bigint not null default 0,
    starts_at text not null,
    step_due_at text,
    poll_at text,
    held bigint not null default 0,
    zone text not null default 'UTC',
    locked_by text,
    updated_at text not null,
    primary key (org_id, campaign_id, contact_id, milestone)
);
-- The scheduler's poll: due, active, unheld rows only, so waiting rows of paused campaigns and
-- finished ones cost nothing.
create index enrollments_due on enrollments (poll_at) where status = 'active' and held = 0;
create index enrollments_status on enrollments (org_id, campaign_id, status);
