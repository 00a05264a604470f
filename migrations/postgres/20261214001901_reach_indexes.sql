-- Reach on PostgreSQL (ADR 16, amendment). Its sample is the ten oldest matches in code-point
-- order (`collate "C"`), which documents_created, in the database's collation, cannot give: a
-- partial index in that order lets the sample walk from the oldest contact and stop at the
-- tenth match, instead of sorting every match; ties of created_at (an import chunk shares one)
-- are sorted by id as they come. Without id the index stays small (equal keys are stored once)
-- and costs imports nothing measurable; with it, 100 000-row imports took 11 % longer. The
-- second finds, without a scan, the contacts
-- without a jsonb body (an escaped NUL), which the evaluator must see; it is almost always
-- empty.
create index documents_contacts_oldest on documents (org_id, created_at collate "C")
    where kind = 'contact';
create index documents_contacts_without_body on documents (org_id)
    where kind = 'contact' and body is null;
