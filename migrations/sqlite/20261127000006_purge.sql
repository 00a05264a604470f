-- Org purge jobs (`POST /crm/marketing/purge`): permanently remove soft-deleted campaigns.
create table purge_jobs (
    id text primary key,
    org_id text not null,
    state text not null,
    requested_by text not null,
    requested_at text not null,
    finished_at text,
    result text,
    error text
);
create index purge_jobs_state on purge_jobs (state);
