-- Frequency caps (docs/consent.md): how many marketing sends each contact had in one local
-- period, per cap channel (`email`, `sms` or `*`). `period` is `day:YYYY-MM-DD` or
-- `week:YYYY-Www` in the contact's zone. Counted in the transaction that writes a page's ledger
-- rows, under a row lock taken in key order; only keys of caps in force are counted.
create table frequency_counts (
    org_id text not null,
    contact_id text not null,
    channel text not null,
    period text not null,
    n bigint not null,
    updated_at text not null,
    primary key (org_id, contact_id, channel, period)
);

-- The `capped` metric: sends the caps held back.
alter table analytics_daily add column capped bigint not null default 0;
alter table analytics_step_days add column capped bigint not null default 0;
