-- A counter per org, moved in the transaction of every change to the org's analytics rollups
-- (projection batches, rebuilds, purges): the analytics endpoints cache their sums under it.
create table analytics_versions (
    org_id text primary key,
    version bigint not null
);
