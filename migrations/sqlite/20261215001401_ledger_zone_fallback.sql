-- A local-time run's contacts sent in a zone not their own (issue 14, point 3) are marked on
-- their ledger row, in the send's own transaction, so the run's `zoneFallbacks` is counted from
-- the ledger like `capped`: a pass a crash cut short loses none of them, and a contact held by
-- quiet hours and sent by a later pass is counted once. 1 = fell back, 0 otherwise.
alter table send_ledger add column zone_fallback integer not null default 0;
