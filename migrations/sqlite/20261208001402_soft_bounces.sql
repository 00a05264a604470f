-- Soft bounces (docs/consent.md): one row per message a vendor reported as temporarily
-- undeliverable (Mailgun `failed` with `severity: temporary`, SendGrid `deferred` or a `blocked`
-- bounce), keyed by the address and the message's send key, so repeated reports of one message
-- count once. The third message within 30 days puts the address on the suppression list.
create table soft_bounces (
    org_id text not null,
    channel text not null,
    address text not null,
    message_key text not null,
    at text not null,
    primary key (org_id, channel, address, message_key)
);
