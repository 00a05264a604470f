-- Short, heartbeat-renewed job leases (docs/scheduling.md, "Claiming, leases, failover").
-- `lease_generation` grows by one at every claim: a node may write a page of sends only while
-- the job's generation is still the one it claimed, so a node that stalled past its lease and
-- woke up after another node took the job over cannot send for it again.
alter table jobs add column lease_generation bigint not null default 0;

-- Counters behind `herald_job_takeovers_total` and `herald_job_lease_renewals_failed_total`,
-- moved by whichever node sees the event, so every process reports the same figures.
create table job_counters (
    name text primary key,
    n bigint not null
);
insert into job_counters (name, n) values ('takeovers', 0), ('lease_renewals_failed', 0);
