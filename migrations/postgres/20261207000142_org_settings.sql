-- Each org's marketing settings (docs/consent.md): the read model of its SettingsUpdated
-- events, `settings` the JSON of the last one, `updated_at` that event's `created`.
create table org_settings (
    org_id text primary key,
    settings text not null,
    updated_at text not null
);
