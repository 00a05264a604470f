-- The contact activity log is read newest first by the time each activity happened (`at`), not
-- by when it was recorded: a conversion reported late with an earlier `occurredAt` sorts below
-- a later open. Position and seq break ties between activities of the same instant.
create index contact_activities_by_time on contact_activities (org_id, contact_id, at, position, seq);
