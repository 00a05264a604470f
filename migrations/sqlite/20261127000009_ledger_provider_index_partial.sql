-- Only sends through a real vendor carry the vendor's message id; sandbox sends (the bulk of a
-- benchmark, and of tests) leave it null. Indexing only the rows that have one spares every
-- sandbox send an index insertion; lookups by `provider_message_id = $n` still use it.
drop index send_ledger_provider_message;
create index send_ledger_provider_message on send_ledger (provider_message_id)
    where provider_message_id is not null;
