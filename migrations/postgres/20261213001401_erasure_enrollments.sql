-- Erasure (docs/consent.md, ADR 15) also rewrites a contact's drip and milestone enrollments:
-- its rows, found by org and contact, and the enrollment events of those campaigns, found by
-- campaign. An enrollment event is a batch of a campaign's contacts (up to a page), so this
-- index holds one entry per batch, not per contact; the contact is then picked out of the
-- campaign's batches.
create index enrollments_contact on enrollments (org_id, contact_id);
create index events_enrollment_campaign on events (org_id, (data->>'campaignId'))
    where event_type in ('ContactsEnrolled', 'EnrollmentsExited');
