-- Vendor webhooks match events to sends by the vendor's message id (src/webhooks/lookup.rs).
create index send_ledger_provider_message on send_ledger (provider_message_id);
