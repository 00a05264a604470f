-- Erasure (docs/consent.md, ADR 15) finds a contact's rows by index, never by reading every
-- payload: the engagement events that name the contact (other events of a contact are on its
-- own streams, found by stream id), the sandbox outbox's messages to it and its short links.
-- The first two are partial, so the rows without a contact cost nothing.
create index events_engagement_contact on events (org_id, (data->>'contactId'))
    where event_type = 'EngagementRecorded';
create index sandbox_messages_contact on sandbox_messages (org_id, contact_id)
    where contact_id is not null;
create index short_links_contact on short_links (org_id, contact_id);
