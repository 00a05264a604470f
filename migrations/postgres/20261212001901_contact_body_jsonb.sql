-- Contacts as jsonb beside their text, so an audience filter runs as one SQL predicate
-- (docs/dynamic-query.md, ADR 16). Generated, so every writer (commands, imports, replay) keeps
-- it in step. `null` for other kinds, and for a contact whose text holds an escaped NUL, which
-- jsonb refuses: reach checks such rows with the evaluator.
create function herald_contact_body(kind text, doc text) returns jsonb
    language sql immutable parallel safe
    as $$ select case when kind = 'contact' and strpos(doc, E'\\u0000') = 0 then doc::jsonb end $$;

alter table documents add column body jsonb generated always as (herald_contact_body(kind, doc)) stored;
