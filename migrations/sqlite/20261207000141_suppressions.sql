-- The suppression list (docs/consent.md): one row per (org, channel, normalised address), the
-- read model of the SuppressionAdded/SuppressionRemoved events. Its key is what makes two
-- writers of one address wait for each other, and what every send checks.
create table suppressions (
    org_id text not null,
    channel text not null,
    address text not null,
    reason text not null,
    source text not null,
    at text not null,
    primary key (org_id, channel, address)
);
