-- The activity log's key is the event's position and the activity's place in it (unique on its
-- own, always growing); reads by contact go through `contact_activities_by_time`. SQLite cannot
-- change a primary key in place: the table is copied.
create table contact_activities_new (
    org_id text not null,
    contact_id text not null,
    position bigint not null,
    seq bigint not null,
    type text not null,
    campaign_id text not null,
    channel text not null,
    at text not null,
    detail text not null,
    primary key (position, seq)
);
insert into contact_activities_new (org_id, contact_id, position, seq, type, campaign_id, channel, at, detail)
select org_id, contact_id, position, seq, type, campaign_id, channel, at, detail from contact_activities;
drop table contact_activities;
alter table contact_activities_new rename to contact_activities;
create index contact_activities_by_time on contact_activities (org_id, contact_id, at, position, seq);
