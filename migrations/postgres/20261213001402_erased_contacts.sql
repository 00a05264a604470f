-- The contacts erased (docs/consent.md, ADR 15), by id only, no personal data: an engagement
-- recorded after the erasure (a late click on an old message, a vendor's late bounce report)
-- has its link and reason replaced before it is stored. Written by the erasure job, read by the
-- engagement recorder once per batch that holds a link or a reason.
create table erased_contacts (
    org_id text not null,
    contact_id text not null,
    erased_at text not null,
    primary key (org_id, contact_id)
);
