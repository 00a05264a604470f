-- Signature tokens of accepted Mailgun posts (issue 15.2). Mailgun's signature covers only a
-- timestamp and a one-use token, not the events, so a captured signature could carry forged
-- events; a token seen here within the signature window is refused. Keyed by a SHA-256 of
-- vendor and token; rows older than the window are deleted as new ones arrive.
create table webhook_tokens (
    token text primary key,
    seen_at text not null
);
create index webhook_tokens_seen_at on webhook_tokens (seen_at);
