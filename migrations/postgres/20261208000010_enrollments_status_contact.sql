-- The per-campaign status index also keys the contact, so the step sender's updates
-- (`... and status = 'active' and contact_id in (...)`) find their rows through it whichever
-- index the planner picks, instead of reading every active row of the campaign: before the
-- first analyze of a fresh table, PostgreSQL chose (org_id, campaign_id, status) and filtered a
-- million rows per statement.
drop index enrollments_status;
create index enrollments_status on enrollments (org_id, campaign_id, status, contact_id);
