-- The outbox is read by org (`where org_id = $1 ... order by id`) and by campaign; nothing looks
-- a message up by its id alone. Keying it by (org_id, id) serves the org listing with the primary
-- key and spares every sandbox send the separate (org_id, id) index. (SQLite keeps its layout:
-- it cannot change a table's primary key in place, and its outbox is small.)
alter table sandbox_messages drop constraint sandbox_messages_pkey;
drop index sandbox_messages_org;
alter table sandbox_messages add primary key (org_id, id);
