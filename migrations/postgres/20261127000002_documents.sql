-- Read model of contacts, audiences, templates and connections, written inline with their events.
create table documents (
    org_id text not null,
    kind text not null,
    id text not null,
    lookup text,
    version bigint not null,
    created_at text not null,
    updated_at text not null,
    doc text not null,
    primary key (org_id, kind, id)
);
create index documents_lookup on documents (org_id, kind, lookup);
create index documents_created on documents (org_id, kind, created_at, id);

-- Connection credentials, encrypted (ChaCha20-Poly1305); never in the log or a response.
create table connection_secrets (
    org_id text not null,
    id text not null,
    nonce text not null,
    ciphertext text not null,
    primary key (org_id, id)
);
