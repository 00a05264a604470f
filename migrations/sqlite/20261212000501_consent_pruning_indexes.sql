-- The reconcile pass prunes frequency counters of periods long past and soft bounces older
-- than 30 days (docs/consent.md), a batch at a time: these find the old rows by time.
create index frequency_counts_updated_at on frequency_counts (updated_at);
create index soft_bounces_at on soft_bounces (at);
